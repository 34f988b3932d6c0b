# SPDX-License-Identifier: GPL-3.0-or-later
"""``python -m core_models retarget SOURCE --onto RIG.bvh --out OUT.bvh [--mapping m.json] [--report r.json]``.

Writes SOURCE's motion (BVH, generated take ``.npz``, SMPL-X ``.npz``/``.pkl``) on RIG's hierarchy, rest offsets
and channel layout at the source's frame rate (:func:`core_models.rig.retarget.retarget`). A rig whose body is
not found gets the animator-words message, the name of the option to pass and a bone mapping to fill in,
written next to that rig's file; nothing else is written on an error, and the output is written atomically.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

__all__ = ["add_parser", "run"]


def add_parser(sub) -> None:
    """The ``retarget`` subcommand on an ``argparse`` subparsers object."""
    p = sub.add_parser("retarget", help="put a motion onto another rig (BVH): its bones, proportions and channels, "
                                        "feet planted where the source's are")
    p.add_argument("source", help="motion file: .bvh, a generated take .npz, SMPL-X .npz/.pkl")
    p.add_argument("--onto", required=True, help="the target rig as a BVH file (its hierarchy, rest offsets, channels)")
    p.add_argument("--out", required=True, help="output .bvh")
    p.add_argument("--mapping", help='bone mapping of the target rig, JSON {"left_knee": "MyKneeBone", ...}; '
                                     "one joint is enough, the others are found automatically")
    p.add_argument("--source-mapping", help="bone mapping of a BVH source rig (same format)")
    p.add_argument("--report", help="write the report (mapping, scale, foot lock, figures) as JSON here")
    p.add_argument("--no-foot-lock", action="store_true", help="do not plant the feet on the source's contacts")
    p.set_defaults(func=run)


def _same_file(a, b) -> bool:
    try:
        return Path(a).resolve() == Path(b).resolve() or (Path(a).exists() and os.path.samefile(a, b))
    except OSError:
        return False


def _write_report(path: Path, report: dict) -> None:
    from ..safe_files import atomic_write

    text = json.dumps(report, indent=2, default=str) + "\n"
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def run(args) -> int:
    """Run the ``retarget`` subcommand; returns the exit status (0 done, 2 bad input)."""
    from ..io.bvh import BvhError, write_bvh
    from ..io.mapping_template import template_note
    from ..io.retarget import RetargetError, UnmappableRigError, load_mapping_file
    from .retarget import retarget
    from .rigs import load_source, load_target

    out = Path(args.out)
    inputs = [args.source, args.onto] + [m for m in (args.mapping, args.source_mapping) if m]
    clash = next((i for i in inputs if _same_file(out, i)), None)
    if clash is not None:
        print(f"error: --out '{out}' is one of the inputs ('{clash}'); choose another output file", file=sys.stderr)
        return 2
    if args.report and any(_same_file(args.report, i) for i in inputs + [str(out)]):
        print(f"error: --report '{args.report}' is an input or the output; choose another file", file=sys.stderr)
        return 2
    if out.suffix.lower() != ".bvh":
        print(f"error: --out '{out}': the retargeted motion is written as BVH; use a .bvh file name", file=sys.stderr)
        return 2
    if not out.parent.is_dir():
        print(f"error: --out '{out}': folder '{out.parent}' does not exist", file=sys.stderr)
        return 2
    try:
        target_map = load_mapping_file(args.mapping) if args.mapping else None
        source_map = load_mapping_file(args.source_mapping) if args.source_mapping else None
    except RetargetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    # each rig on its own first, so that an unmappable one is named with the option that fixes it
    for what, loader, path, mapping, option in (("source", load_source, args.source, source_map, "--source-mapping"),
                                                ("target rig", load_target, args.onto, target_map,
                                                 "--mapping")):
        try:
            loaded = loader(path, mapping)
        except UnmappableRigError as exc:
            print(f"error: the {what} '{path}': {exc}{template_note(exc, path, option)}", file=sys.stderr)
            return 2
        except (ValueError, FileNotFoundError, OSError) as exc:
            print(f"error: the {what} '{path}': {exc}", file=sys.stderr)
            return 2
        if what == "source":
            source = loaded
        else:
            target = loaded
    try:
        result = retarget(source, target, foot_lock=not args.no_foot_lock)
        write_bvh(out, result.clip)
    except (ValueError, BvhError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report = dict(result.report, output=str(out))
    if args.report:
        _write_report(Path(args.report), report)
    f = report["figures"]
    print(f"{out}: {result.clip.num_frames} frames at {result.clip.fps:g} fps on '{Path(args.onto).name}' "
          f"({report['target']['bones']} bones, profile {report['target']['profile']}, scale x{report['scale']:g}); "
          f"bone directions {f['bone_direction_deg']:.1f} deg from the source, pelvis path {f['pelvis_path_legs']:.3f} "
          f"leg lengths, sliding on the source's contacts {100 * f['slide_source']:.1f} % -> {100 * f['slide_target']:.1f} %")
    for note in report["notes"]:
        print(f"  note: {note}")
    return 0

