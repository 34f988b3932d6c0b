# SPDX-License-Identifier: GPL-3.0-or-later
"""``python -m core_models edit TAKE.npz --music SONG (--regenerate S E | --key OTHER.npz:FRAME@TARGET |
--path path.json | --repeat S E --at T [--mirror]) --out NEW.npz --report r.json``.

Times are seconds in the song; FRAME and TARGET_FRAME are 30 fps frames of the takes. A path file is
``{"points": [[x, y, z], ...], "stage": [[x_min, z_min], [x_max, z_max]]}`` (metres, Y up; "stage" optional).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from .take import EditError, load_take, save_take


def add_parser(sub) -> None:
    p = sub.add_parser("edit", help="edit a generated take: regenerate a range, hold a key pose, follow a path, "
                                    "repeat or mirror a phrase")
    p.add_argument("take", help="the .npz written by 'generate --out TAKE.npz' (or by edit)")
    p.add_argument("--music", help="the song the take was generated for (needed by --regenerate)")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--regenerate", nargs=2, type=float, metavar=("START", "END"),
                      help="regenerate this range (seconds in the song; snapped to bars or beats)")
    what.add_argument("--key", metavar="OTHER.npz:FRAME@TARGET_FRAME",
                      help="hold the pose of OTHER's frame FRAME at this take's frame TARGET_FRAME")
    what.add_argument("--path", metavar="PATH.json", help="the root follows this curve")
    what.add_argument("--repeat", nargs=2, type=float, metavar=("START", "END"),
                      help="copy this phrase (seconds in the song) to --at")
    p.add_argument("--at", type=float, help="--repeat: where the copy starts (seconds in the song)")
    p.add_argument("--mirror", action="store_true", help="--repeat: mirror the copy left/right")
    p.add_argument("--seed", type=int, default=None, help="--regenerate: first candidate's seed")
    p.add_argument("--weights", default=None, help="--regenerate: weight set (default: the one that made the take)")
    p.add_argument("--backend", choices=["auto", "torch", "onnx"], default="auto")
    p.add_argument("--out", required=True, help="the new take (.npz); the input take is never changed")
    p.add_argument("--report", help="write the JSON report here")
    p.set_defaults(func=run)


def _key(spec: str):
    """'OTHER.npz:FRAME@TARGET' -> (other take, frame, target frame)."""
    try:
        source, target = spec.rsplit("@", 1)
        path, frame = source.rsplit(":", 1)
        return load_take(path), int(frame), int(target)
    except ValueError as exc:
        if isinstance(exc, EditError):
            raise
        raise EditError(f"--key '{spec}': write it as OTHER.npz:FRAME@TARGET_FRAME (30 fps frames), e.g. "
                        "other.npz:120@300") from exc


SHIPPED_COMPACT = Path(__file__).resolve().parents[1] / "assets" / "compact"


def _weights_of(take, given):
    """The weight set that made the take (recorded by generate), else the shipped one."""
    return given or take.params.get("weight_set") or str(SHIPPED_COMPACT)


def run(args) -> int:
    from .constraints import follow_path, hold_key_pose, key_error, key_for_body
    from .frames import mean_yaw
    from .phrases import repeat_phrase

    out = Path(args.out)
    try:
        take = load_take(args.take)
        if out.resolve() == Path(args.take).resolve():
            raise EditError("--out is the input take; write the edit to a new file (nothing was overwritten)")
        if not out.parent.is_dir():
            raise EditError(f"the output folder '{out.parent}' does not exist")
        if args.regenerate:
            if not args.music:
                raise EditError("--regenerate needs --music: the song the take was generated for")
            from .regenerate import regenerate_range
            from ..starter_library import open_libraries

            library = open_libraries(None, with_shipped=True)
            new, report = regenerate_range(take, args.music, args.regenerate[0], args.regenerate[1],
                                           _weights_of(take, args.weights), seed=args.seed,
                                           library=library if library.libraries else None, backend=args.backend)
        elif args.key:
            other, frame, target = _key(args.key)
            if not 0 <= frame < other.num_frames:
                raise EditError(f"--key: frame {frame} is outside '{args.key.rsplit(':', 1)[0]}' (frames 0-"
                                f"{other.num_frames - 1})")
            key, body_difference = key_for_body(take, other, frame, target)
            new, report = hold_key_pose(take, target, key, source=args.key)
            report["key_error_m"] = key_error(new, target, other.joints()[frame],
                                              mean_yaw(other.rotations[frame:frame + 1, 0]))
            report["key_reach_difference_m"] = body_difference
            report["range_frames"] = report["window_frames"]
        elif args.path:
            try:
                spec = json.loads(Path(args.path).read_text())
            except (OSError, ValueError) as exc:
                raise EditError(f"--path '{args.path}': cannot read it as JSON ({exc})") from exc
            new, report = follow_path(take, spec.get("points", []) if isinstance(spec, dict) else spec,
                                      stage=spec.get("stage") if isinstance(spec, dict) else None)
            report["range_frames"] = [0, take.num_frames]
        else:
            if args.at is None:
                raise EditError("--repeat needs --at: where the copy starts (seconds in the song)")
            start, end, at = (take.frame_of(x) for x in (*args.repeat, args.at))
            new, report = repeat_phrase(take, start, end, at, mirror=args.mirror)
        save_take(new, out)
    except (EditError, ValueError, FileNotFoundError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report = dict(report, take=str(args.take), out=str(out), edits=new.edits)
    if args.report:
        Path(args.report).write_text(json.dumps(report, indent=2, default=float))
    rf = report.get("range_frames")
    print(f"{out}: {new.edits[-1]['edit']} on frames {rf[0]}-{rf[1]} of {take.num_frames}")
    for note in report.get("notes", []):
        print(f"  note: {note}")
    return 0
