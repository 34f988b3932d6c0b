# SPDX-License-Identifier: GPL-3.0-or-later
"""Structure figures of the source tree: import cycles, private names imported across modules, long files.

    python tools/structure.py [--json] [--max-lines 700]

Imports inside functions count as imports (a cycle hidden in a function is still a cycle). Packages scanned:
``core_models`` and ``addon`` plus the top-level ``weights_fetch.py``. Exit status 1 when any figure is not zero.
"""
import argparse
import ast
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("core_models", "addon")
TOP_LEVEL = ("weights_fetch.py",)


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def source_files() -> list[Path]:
    files = [ROOT / f for f in TOP_LEVEL if (ROOT / f).is_file()]
    for pkg in PACKAGES:
        files += sorted(p for p in (ROOT / pkg).rglob("*.py") if "__pycache__" not in p.parts)
    return files


def resolve(module: str, is_package: bool, level: int, target: str | None) -> str:
    if level == 0:
        return target or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (level - 1)] if level > 1 else base
    return ".".join(base + ([target] if target else []))


def imports_of(path: Path, known: set[str]) -> tuple[set[str], list[tuple[str, str]]]:
    """Modules of ours that ``path`` imports (anywhere in the file) and (module, name) of private names."""
    module = module_name(path)
    is_package = path.name == "__init__.py"
    deps: set[str] = set()
    private: list[tuple[str, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in known:
                    deps.add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            target = resolve(module, is_package, node.level, node.module)
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if sub in known:
                    deps.add(sub)
                elif target in known:
                    deps.add(target)
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        private.append((target, alias.name))
    deps.discard(module)
    return deps, private


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def package_parents(name: str) -> set[str]:
    """A module's own packages: importing ``a.b.c`` runs ``a`` and ``a.b`` first, which is not a cycle."""
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


def figures(max_lines: int = 700) -> dict:
    files = source_files()
    known = {module_name(p) for p in files}
    graph: dict[str, set[str]] = {}
    private: list[str] = []
    long_files: list[str] = []
    for path in files:
        module = module_name(path)
        deps, priv = imports_of(path, known)
        graph[module] = deps - package_parents(module)
        private += [f"{module} imports {target}.{name}" for target, name in priv]
        lines = len(path.read_text().splitlines())
        if lines > max_lines:
            long_files.append(f"{path.relative_to(ROOT)} ({lines} lines)")
    found = cycles(graph)
    return {"modules": len(files), "import_cycles": len(found), "cycles": [" <-> ".join(c) for c in found],
            "private_imports": len(private), "private": private,
            f"files_over_{max_lines}_lines": len(long_files), "long_files": long_files}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", action="store_true")
    p.add_argument("--max-lines", type=int, default=700)
    args = p.parse_args(argv)
    f = figures(args.max_lines)
    if args.json:
        print(json.dumps(f, indent=2))
    else:
        print(f"{f['modules']} modules: {f['import_cycles']} import cycles, {f['private_imports']} private names "
              f"imported from another module, {f[f'files_over_{args.max_lines}_lines']} files over "
              f"{args.max_lines} lines")
        for key in ("cycles", "private", "long_files"):
            for line in f[key]:
                print(f"  {key}: {line}")
    bad = f["import_cycles"] + f["private_imports"] + f[f"files_over_{args.max_lines}_lines"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
