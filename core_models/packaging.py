# SPDX-License-Identifier: GPL-3.0-or-later
"""The offline extension zip: the add-on plus the wheels it needs to run without torch, listed in
Blender's manifest (``wheels = [...]``, ``platforms = [...]``), and the shipped compact and FRDM weights
with their ONNX exports.

    make extension-offline            # downloads the wheels into build/wheels, then:
    python -m core_models.packaging --wheels build/wheels --out dist --platform linux-x64

The wheels are never committed: ``make extension-offline`` fetches them with pip for the target platform.
The repository is staged into ``build/offline`` (the files the plain zip holds, plus ``wheels/`` and a
manifest that lists them), and Blender's own builder makes the zip from there. numpy is left out: Blender
bundles its own. A shipped weight set without a current ONNX export stops the build with the command that
makes one.
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHIPPED = ("core_models/assets/compact", "core_models/assets/frdm")
BLENDER_BUNDLED = ("numpy",)           # Blender's Python has these; a second copy would clash
STAGE_IGNORE = (".git", ".venv", ".venv-lts", "build", "dist", "runs", "demo_output", "__pycache__",
                ".pytest_cache", "*.egg-info", "wheels", "library")


class PackagingError(RuntimeError):
    pass


def check_exports(repo: Path = REPO) -> None:
    from .onnx_backend import OnnxBackendError, load_onnx_weight_set
    from .runtime.backends import load_onnx_frdm

    for rel in SHIPPED:
        folder = repo / rel
        try:
            (load_onnx_frdm if rel.endswith("frdm") else load_onnx_weight_set)(folder, "cpu")
        except (OnnxBackendError, ValueError) as exc:
            raise PackagingError(f"{rel}: {exc}") from exc


def manifest_with_wheels(text: str, wheels: list[str], platforms: list[str]) -> str:
    """The manifest with ``platforms`` and ``wheels`` as top-level keys (before the first [table])."""
    lines = text.splitlines()
    first_table = next((i for i, line in enumerate(lines) if line.strip().startswith("[")), len(lines))
    if any(line.split("=")[0].strip() in ("wheels", "platforms") for line in lines[:first_table]):
        raise PackagingError("blender_manifest.toml already lists wheels or platforms; remove them (the offline "
                             "build adds them)")
    added = ["platforms = [" + ", ".join(f'"{p}"' for p in platforms) + "]", "wheels = ["]
    added += [f'  "./wheels/{w}",' for w in wheels] + ["]", ""]
    return "\n".join(lines[:first_table] + added + lines[first_table:]) + "\n"


def stage(wheel_dir: Path, stage_dir: Path, platforms: list[str], repo: Path = REPO) -> Path:
    wheels = sorted(p for p in Path(wheel_dir).glob("*.whl")
                    if p.name.split("-")[0].lower() not in BLENDER_BUNDLED)
    if not any(p.name.startswith("onnxruntime-") for p in wheels):
        raise PackagingError(f"no onnxruntime wheel in {wheel_dir}: run make extension-offline (it downloads them)")
    if stage_dir.exists():
        shutil.rmtree(stage_dir)
    shutil.copytree(repo, stage_dir, ignore=shutil.ignore_patterns(*STAGE_IGNORE))
    (stage_dir / "wheels").mkdir()
    for w in wheels:
        shutil.copyfile(w, stage_dir / "wheels" / w.name)
    manifest = stage_dir / "blender_manifest.toml"
    manifest.write_text(manifest_with_wheels(manifest.read_text(), [w.name for w in wheels], platforms))
    return stage_dir


def build(stage_dir: Path, out: Path) -> Path:
    import bpy  # noqa: F401  (Blender's extension builder ships with the bpy module)
    from bl_pkg import bl_extension_cli

    out.mkdir(parents=True, exist_ok=True)
    for args in (["validate", str(stage_dir)], ["build", "--source-dir", str(stage_dir), "--output-dir", str(out)]):
        if bl_extension_cli.cli_extension_handler(args) not in (0, None):
            raise PackagingError(f"Blender's extension builder failed: {' '.join(args[:1])}")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m core_models.packaging", description=__doc__.split("\n")[0])
    ap.add_argument("--wheels", required=True, help="folder of downloaded wheels (make extension-offline)")
    ap.add_argument("--out", default="dist")
    ap.add_argument("--platform", action="append", default=None, help="Blender platform, e.g. linux-x64")
    ap.add_argument("--stage", default=str(REPO / "build" / "offline"))
    args = ap.parse_args(argv)
    try:
        check_exports()
        staged = stage(Path(args.wheels), Path(args.stage), args.platform or ["linux-x64"])
        build(staged, Path(args.out))
    except PackagingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
