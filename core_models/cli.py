# SPDX-License-Identifier: GPL-3.0-or-later
"""Command line: ``python -m core_models <command>``."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

SHIPPED_COMPACT = Path(__file__).resolve().parent / "assets" / "compact"   # the weight set the extension ships


def clip_summary(path: str | Path, overrides: dict | None = None, unit: str = "auto") -> dict:
    """Frames, fps, duration, joint mapping and clean-mocap metrics of one motion file."""
    from . import metrics
    from .io import load_body_clip

    clip = load_body_clip(path, overrides=overrides, unit=unit)
    moving = clip.joints.shape[0] >= 2          # foot skating compares frames: a still pose has none
    fsr = metrics.foot_skating_ratio(clip.joints, fps=clip.fps) if moving else None
    summary = {
        "file": str(path),
        "source_frames": int(clip.source_frames),
        "source_fps": round(float(clip.source_fps), 4),
        "frames": int(clip.joints.shape[0]),
        "fps": float(clip.fps),
        "duration_s": round(clip.joints.shape[0] / clip.fps, 3),
        "unit_scale_to_m": float(clip.unit_scale),
        "rig_profile": clip.mapping.profile,
        "joints_mapped": dict(clip.mapping.source_for),
        "joints_synthesised": dict(clip.mapping.synthesised),
        "source_bones_unused": list(clip.mapping.unmapped_source),
        "fsr": round(float(fsr["mean"]), 5) if moving else None,
        "fsr_left": round(float(fsr["left"]), 5) if moving else None,
        "fsr_right": round(float(fsr["right"]), 5) if moving else None,
        "jitter": round(float(metrics.jitter(clip.joints, fps=clip.fps)), 4) if clip.joints.shape[0] >= 4 else None,
    }
    return summary


def _print_summary(s: dict) -> None:
    print(f"{s['file']}")
    print(f"  frames      {s['source_frames']} at {s['source_fps']} fps -> {s['frames']} at {s['fps']:g} fps "
          f"({s['duration_s']:.2f} s)")
    print(f"  rig         {s['rig_profile']} (unit scale {s['unit_scale_to_m']:g} to metres)")
    mapped = ", ".join(f"{k}<-{v}" for k, v in s["joints_mapped"].items())
    print(f"  mapped      {len(s['joints_mapped'])}/22: {mapped}")
    if s["joints_synthesised"]:
        print("  synthesised " + "; ".join(f"{k}: {v}" for k, v in s["joints_synthesised"].items()))
    if s["source_bones_unused"]:
        print(f"  not used    {', '.join(s['source_bones_unused'])}")
    jit = "n/a (fewer than 4 frames)" if s["jitter"] is None else f"{s['jitter']:.3f} (x10 m/s^3)"
    if s["fsr"] is None:
        print(f"  FSR         n/a (the clip is a single pose of {s['frames']} frame: foot skating needs motion)")
    else:
        print(f"  FSR         {100 * s['fsr']:.2f} % (left {100 * s['fsr_left']:.2f} %, right "
              f"{100 * s['fsr_right']:.2f} %)")
    print(f"  jitter      {jit}")


def mapping_template_note(exc, source) -> str:
    """The note that names the bone-mapping template written for an unmappable rig ("" otherwise)."""
    from .io.mapping_template import template_note

    return template_note(exc, source)


def _cmd_info(args) -> int:
    overrides = json.loads(Path(args.mapping).read_text()) if args.mapping else None
    rows = []
    for path in args.files:
        try:
            s = clip_summary(path, overrides=overrides, unit=args.unit)
        except (ValueError, FileNotFoundError) as exc:
            print(f"error: {exc}{mapping_template_note(exc, path)}", file=sys.stderr)
            return 2
        rows.append(s)
        if not args.json:
            _print_summary(s)
    if args.json:
        print(json.dumps(rows if len(rows) > 1 else rows[0], indent=2))
    elif len(rows) > 1:
        fsr = np.mean([r["fsr"] for r in rows if r["fsr"] is not None] or [np.nan])
        jit = np.mean([r["jitter"] for r in rows if r["jitter"] is not None])
        frames = sum(r["frames"] for r in rows)
        print(f"corpus: {len(rows)} clips, {frames} frames at 30 fps, mean FSR {100 * fsr:.2f} %, "
              f"mean jitter {jit:.3f}")
    return 0


def _cmd_demo(args) -> int:
    """Motion-core demo: a clip (given or synthesised) through mapping, features, IK and metrics."""
    from . import metrics
    from .features import features_to_joints, joints_to_features
    from .io import load_body_clip
    from .io.bvh import bvh_from_rotations, write_bvh
    from .kinematics import fit_skeleton, forward_kinematics, inverse_kinematics
    from .skeleton import BODY_JOINT_NAMES, default_skeleton

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.clip:
        clip_path = Path(args.clip)
    else:
        clip_path = out / "synthetic_dance.bvh"
        _write_synthetic_dance(clip_path)
    summary = clip_summary(clip_path)
    _print_summary(summary)
    joints = load_body_clip(clip_path).joints
    feats, canon = joints_to_features(joints, return_joints=True)
    feat_err = float(np.abs(features_to_joints(feats) - canon[:-1]).max())
    skel = fit_skeleton(joints, default_skeleton(body_only=True))
    rot, root = inverse_kinematics(joints, skel)
    ik_err = float(np.abs(forward_kinematics(rot, root, skel) - joints).max())
    exported = out / "body_22_joints.bvh"
    write_bvh(exported, bvh_from_rotations(list(BODY_JOINT_NAMES), list(skel.parents), skel.offsets, rot, root,
                                           1.0 / 30.0))
    report = {"clip": summary, "features_shape": list(feats.shape), "features_round_trip_max_error_m": feat_err,
              "ik_fk_max_error_m": ik_err, "exported_bvh": str(exported),
              "pfc": float(metrics.pfc(joints)) if joints.shape[0] > 3 else None}
    (out / "demo_report.json").write_text(json.dumps(report, indent=2))
    print(f"  264-d       {feats.shape}, joints -> 264 -> joints max error {feat_err:.2e} m")
    print(f"  IK -> FK    max error {ik_err:.2e} m; exported {exported}")
    print(f"  report      {out / 'demo_report.json'}")
    return 0


def _write_synthetic_dance(path: Path, seconds: float = 8.0) -> None:
    """A stepping, swaying figure on the default skeleton, written as BVH (no external data needed)."""
    from .io.bvh import bvh_from_rotations, write_bvh
    from .rotations import axis_angle_to_quat
    from .skeleton import BODY_JOINT_NAMES, default_skeleton

    skel = default_skeleton(body_only=True)
    frames = int(seconds * 30)
    t = np.arange(frames) / 30.0
    beat = 2 * np.pi * 2.0 * t                       # 120 bpm: one step per beat
    aa = np.zeros((frames, 22, 3))
    aa[:, 0, 1] = 0.4 * np.sin(beat / 4)             # pelvis yaw sway
    aa[:, 1, 0] = -0.5 * np.clip(np.sin(beat / 2), 0, None)      # left hip flexion on alternate beats
    aa[:, 4, 0] = 1.0 * np.clip(np.sin(beat / 2), 0, None)       # left knee
    aa[:, 2, 0] = -0.5 * np.clip(-np.sin(beat / 2), 0, None)
    aa[:, 5, 0] = 1.0 * np.clip(-np.sin(beat / 2), 0, None)
    aa[:, 16, 2] = -1.1 + 0.5 * np.sin(beat)         # arms down from the T-pose, pumping on the beat
    aa[:, 17, 2] = 1.1 - 0.5 * np.sin(beat)
    aa[:, 18, 1] = 0.8 + 0.4 * np.sin(beat)
    aa[:, 19, 1] = -0.8 - 0.4 * np.sin(beat)
    aa[:, 9, 2] = 0.15 * np.sin(beat / 2)
    root = np.stack([0.1 * np.sin(beat / 4), skel.offsets[0, 1] - 0.03 * np.abs(np.sin(beat / 2)),
                     np.zeros(frames)], axis=-1)
    write_bvh(path, bvh_from_rotations(list(BODY_JOINT_NAMES), list(skel.parents), skel.offsets,
                                       axis_angle_to_quat(aa), root, 1.0 / 30.0))


def skeleton_bvh(skeleton, rotations: np.ndarray, root: np.ndarray, fps: float):
    """A motion on a whole skeleton (a generated dance, a take: 55 SMPL-X joints, metres) as a BVH clip."""
    from .io.bvh import bvh_from_rotations

    return bvh_from_rotations(list(skeleton.names), list(skeleton.parents), skeleton.offsets, rotations, root,
                              1.0 / fps)


def save_generation(result, out: Path, params: dict | None = None) -> None:
    """A generated dance as BVH (55 SMPL-X joints, metres, 30 fps) or as a take .npz (rotations, joints,
    tokens, the music span and ``params``: what ``edit`` needs to go on from it), written atomically."""
    from .editing import save_take, take_from_generation
    from .io.bvh import write_bvh

    motion = result.motion
    suffix = out.suffix.lower()
    if suffix == ".bvh":
        write_bvh(out, skeleton_bvh(motion.skeleton, motion.rotations, motion.root_translation, motion.fps))
    elif suffix == ".npz":
        save_take(take_from_generation(result, params), out)
    else:
        raise ValueError(f"output '{out}': use a .bvh or .npz file name")


def _span_and_sampling_problem(args) -> str:
    """What is wrong with --start/--end and the sampling options, in the user's terms ("" when nothing)."""
    from .sampling import SamplingConfig

    if not np.isfinite(args.start) or args.start < 0:
        return f"--start {args.start:g} s: the start of the music span must be 0 s or later"
    if args.end is not None and not args.end > args.start:
        return (f"--end {args.end:g} s is {'at' if args.end == args.start else 'before'} --start {args.start:g} s: "
                "the end of the music span must come after its start (leave --end out to dance to the end)")
    overrides = {k: v for k, v in (("temperature", args.temperature), ("top_k", args.top_k), ("top_p", args.top_p))
                 if v is not None}
    try:
        SamplingConfig(**overrides)
    except ValueError as exc:
        return "--" + str(exc).replace("_", "-", 1)
    return ""


def _cmd_generate(args) -> int:
    from .generation import Job, Runtime, Span, generate, sampling_with
    from .progress import Cancelled

    out = Path(args.out)
    if out.suffix.lower() not in (".bvh", ".npz"):
        print(f"error: --out must end in .bvh or .npz, got '{out}'", file=sys.stderr)
        return 2
    if not out.parent.is_dir():
        print(f"error: the output folder '{out.parent}' does not exist", file=sys.stderr)
        return 2
    problem = _span_and_sampling_problem(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    last = [None]

    def progress(stage, done, total):
        if args.quiet:
            return
        pct = int(100 * done / total) if total else 0
        if (stage, pct // 10) != last[0]:
            last[0] = (stage, pct // 10)
            print(f"  {stage:15s} {pct:3d} %", file=sys.stderr, flush=True)

    try:
        from .starter_library import open_libraries

        library = open_libraries(args.library, with_shipped=not args.no_starter_library)
        if not library.libraries:
            library = None
        references = None if args.no_references else (list(args.pin) if args.pin else "auto")
        result = generate(args.music, args.genre, args.weights, span=Span(args.start, args.end),
                          sampling=sampling_with(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p),
                          seed=args.seed, references=references, library=library,
                          runtime=Runtime(args.device, args.precision, args.backend), job=Job(progress),
                          window_mode=args.window_mode, allow_untrained_genre=args.allow_untrained_genre)
        save_generation(result, out, {"weight_set": result.weight_set, "music": str(args.music),
                                      "sampling": sampling_with(temperature=args.temperature, top_k=args.top_k,
                                                                top_p=args.top_p).to_dict(),
                                      "window_mode": result.window_mode})
    except (ValueError, FileNotFoundError, RuntimeError, Cancelled) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report = {"out": str(out), "frames": result.num_frames, "fps": result.fps, "genre": result.genre,
              "seed": result.seed, "music_span_s": [result.start_s, result.end_s], "device": result.device,
              "dtype": result.dtype, "weight_set": result.weight_set, "window_mode": result.window_mode,
              "fk_error_m": result.fk_error_m, "stage": result.stage, "timings": {k: round(v, 4) for k, v in result.timings.items()},
              "references": result.references, "notes": result.notes}
    if args.report:
        Path(args.report).write_text(json.dumps(report, indent=2))
    print(f"{out}: {result.num_frames} frames ({result.num_frames / result.fps:.2f} s) of {result.genre}, seed "
          f"{result.seed}; {result.timings['frames_per_s']:.0f} frames/s on {result.device}")
    for note in result.notes:
        print(f"  note: {note}")
    return 0


def _cmd_library(args) -> int:
    from .library import Library, LibraryError, import_official
    from .starter_library import build_starter

    try:
        if args.action == "create":
            lib = Library.create(args.folder, exist_ok=True)
            print(f"library at {lib.path} ({len(lib)} clips)")
        elif args.action == "starter":
            report = build_starter(args.folder, weights=args.weights, max_seconds=args.max_seconds)
            print(f"{len(report['added'])} clips added to {args.folder}"
                  + (f", derived data for {args.weights}" if args.weights else ""))
            for name, why in report["skipped"].items():
                print(f"  skipped {name}: {why}")
        elif args.action == "add":
            lib = Library(args.folder)
            for path in args.files:
                name = args.name if args.name and len(args.files) == 1 else Path(path).stem
                info = lib.add(name, args.genre, args.subgenre, path=path, licence=args.licence, replace=args.replace)
                print(f"added {info.name}: {info.genre}/{info.subgenre or '-'}, {info.duration:.1f} s")
        elif args.action == "remove":
            if not args.name:
                raise LibraryError("remove needs --name CLIP (see 'library list')")
            Library(args.folder).remove(args.name)
            print(f"removed {args.name}")
        elif args.action == "repair":
            lib, done = Library.repair_at(args.folder)
            for line in done:
                print(line)
            print(f"{lib.path}: {len(lib)} clips indexed")
        elif args.action == "list":
            clips = Library(args.folder).clips(args.genre, args.subgenre)
            if args.json:
                print(json.dumps([{"name": c.name, "genre": c.genre, "subgenre": c.subgenre,
                                   "seconds": round(c.duration, 2), "source": c.source, "licence": c.licence}
                                  for c in clips], indent=2))
            for c in [] if args.json else clips:
                print(f"{c.name:40s} {c.genre:8s} {c.subgenre or '-':12s} {c.duration:7.1f} s  {c.licence[:40]}")
        elif args.action == "search":
            from .audio import load_audio
            from .generation import query_features
            from .weights import load_weight_set

            if not args.music or not args.weights:
                raise LibraryError("search needs --music FILE and --weights DIR")
            ws = load_weight_set(args.weights, args.device)
            samples, sr = load_audio(args.music)
            rows = Library(args.folder).retrieve(ws, query_features(ws, samples, sr), args.genre, args.top_k)
            for k, row in enumerate(rows):
                print(f"window {k} ({6.4 * k:.1f} s): " + ", ".join(f"{m.name}@{m.start / 30:.1f}s {m.score:.3f}"
                                                                   for m in row))
        elif args.action == "import-official":
            from .weights import load_weight_set

            ws = load_weight_set(args.weights, args.device) if args.weights else None
            report = import_official(Library.create(args.folder, exist_ok=True), args.embeddings, args.features,
                                     args.style_map, args.tokens, ws)
            print(f"{len(report['added'])} clips imported, {len(report['skipped'])} skipped")
    except (LibraryError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _write_json_atomic(path: Path, data: dict) -> None:
    import os
    import tempfile

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _canonical_body_bvh(joints: np.ndarray, fps: float):
    """The 22 canonical body joints as a BVH clip (IK onto a skeleton fitted to the joints)."""
    from .io.bvh import bvh_from_rotations
    from .io.motion_file import body_motion_from_joints

    body = body_motion_from_joints(joints, fps, source="fix-feet").body()
    return bvh_from_rotations(list(body.skeleton.names), list(body.skeleton.parents), body.skeleton.offsets,
                              body.rotations, body.root_translation, 1.0 / fps)


def _shipped_frdm_or_error(given) -> str | None:
    """--weights, else the shipped FRDM set; None (with the error printed) when neither is there."""
    if given:
        return given
    shipped = Path(__file__).resolve().parent / "assets" / "frdm"
    if not (shipped / "config.json").is_file():
        print(f"error: no FRDM weights: the shipped set {shipped} is missing; give --weights or use "
              "--method ik_lock", file=sys.stderr)
        return None
    return str(shipped)


def _fix_take_feet(args, src: Path, out: Path, report_path: Path | None) -> int:
    """fix-feet on a take .npz: a new take (.npz) or its whole skeleton as BVH; the beats kept by default."""
    from .editing import EditError, load_take, save_take
    from .editing.feet import fix_take_feet
    from .footfix import DEFAULT_STEPS, FootFixError
    from .io.bvh import write_bvh
    from .progress import Cancelled
    from .runtime.backends import load_frdm

    weights = _shipped_frdm_or_error(args.weights) if args.method == "frdm" else args.weights
    if args.method == "frdm" and weights is None:
        return 2
    try:
        take = load_take(src)
        overrides = json.loads(Path(args.contacts).read_text()) if args.contacts else None
        options = dict(method=args.method, mode=args.mode, overrides=overrides, strength=args.strength,
                       weights=weights, device=args.device, steps=args.steps or DEFAULT_STEPS, seed=args.seed,
                       backend=args.backend, load_weights=load_frdm,
                       orientation="ignore" if args.no_orientation_check else "check")
        if args.beats != "auto":
            options["beats"] = args.beats
        new, report = fix_take_feet(take, **options)
        ignored = [flag for flag, given in (("--mapping", args.mapping), ("--unit", args.unit != "auto"),
                                            ("--up", args.up != "y")) if given]
        if ignored:
            report["notes"].append(f"{', '.join(ignored)} ignored: a take is already Choreo's own body "
                                   "(metres, Y up)")
        if out.suffix.lower() == ".npz":
            save_take(new, out)
        else:
            write_bvh(out, skeleton_bvh(new.skeleton, new.rotations, new.root, new.fps))
        report = dict(report, input=str(src), output=str(out), edits=new.edits)
        if report_path is not None:
            _write_json_atomic(report_path, report)
    except (EditError, ValueError, FileNotFoundError, RuntimeError, Cancelled, FootFixError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    _print_fix_summary(out, report)
    return 0


def _print_fix_summary(out: Path, report: dict) -> None:
    b, a = report["fsr_before"], report["fsr_after"]
    fsr = f"FSR {100 * b['mean']:.1f} % -> {100 * a['mean']:.1f} %" if b else "FSR n/a"
    jit = (f", jitter {report['jitter_before']:.1f} -> {report['jitter_after']:.1f}"
           if report["jitter_before"] is not None else "")
    weights_note = f" (weights {report['weights']})" if report.get("weights") else ""
    if report.get("unchanged"):
        print(f"{out}: {report['frames']} frames, method {report['method']}{weights_note}: nothing to fix, the motion "
              f"is written unchanged; {fsr}")
    else:
        print(f"{out}: {report['frames']} frames fixed with {report['method']}{weights_note} ({report['mode']}); {fsr}{jit}; "
              f"largest root move {100 * report['max_root_displacement_m']:.1f} cm, foot move "
              f"{100 * report['max_foot_displacement_m']:.1f} cm; upper body changed by {report['upper_body_change_m']:g} m")
    for note in report["notes"]:
        print(f"  note: {note}")


def _cmd_fix_feet(args) -> int:
    """Foot fix of one motion file: the original rig's BVH with a corrected root and legs, and a report."""
    from .footfix import DEFAULT_STEPS, FootFixError, fix_feet
    from .runtime.backends import load_frdm
    from .io import load_body_clip, read_bvh, write_bvh
    from .io.rig_fix import RigFixError, apply_fix_to_bvh, upper_body_channels_identical
    from .progress import Cancelled
    from .editing.take import is_take_file

    src, out = Path(args.input), Path(args.out)
    take_input = is_take_file(src)
    if out.suffix.lower() not in ((".bvh", ".npz") if take_input else (".bvh",)):
        print(f"error: --out must be a .bvh file{' or a take .npz' if take_input else ''}, got '{out}'",
              file=sys.stderr)
        return 2
    if not out.parent.is_dir():
        print(f"error: the output folder '{out.parent}' does not exist", file=sys.stderr)
        return 2
    if out.exists() and src.exists() and out.resolve() == src.resolve():
        print("error: --out is the input file; write the repaired motion to a new file (nothing was overwritten)",
              file=sys.stderr)
        return 2
    report_path = Path(args.report) if args.report else None
    if report_path is not None and not report_path.parent.is_dir():
        print(f"error: the report folder '{report_path.parent}' does not exist", file=sys.stderr)
        return 2
    if take_input:
        return _fix_take_feet(args, src, out, report_path)
    try:
        overrides = json.loads(Path(args.contacts).read_text()) if args.contacts else None
        mapping = json.loads(Path(args.mapping).read_text()) if args.mapping else None
        clip = load_body_clip(src, overrides=mapping, unit=args.unit, up_axis=args.up.upper())
        weights = _shipped_frdm_or_error(args.weights) if args.method == "frdm" else args.weights
        if args.method == "frdm" and weights is None:
            return 2
        result = fix_feet(clip, method=args.method, mode=args.mode, overrides=overrides, strength=args.strength,
                          weights=weights, device=args.device, steps=args.steps or DEFAULT_STEPS,
                          seed=args.seed, backend=args.backend, load_weights=load_frdm,
                          orientation="ignore" if args.no_orientation_check else "check", beats=args.beats)
        report = dict(result.report, input=str(src), output=str(out), rig_profile=clip.mapping.profile)
        rig_notes: list[str] = []
        if src.suffix.lower() == ".bvh":
            original = read_bvh(src)
            try:
                fixed, rig_notes = apply_fix_to_bvh(original, clip, result.joints)
                report["output_rig"] = "source"
                report["upper_body_channels_identical"] = upper_body_channels_identical(original, fixed, clip)
            except RigFixError as exc:
                rig_notes = [f"{exc}; wrote the canonical 22-joint body instead"]
                fixed = _canonical_body_bvh(result.joints, clip.fps)
                report["output_rig"] = "canonical"
        else:
            rig_notes = ["the input is not a BVH rig; wrote the canonical 22-joint body"]
            fixed = _canonical_body_bvh(result.joints, clip.fps)
            report["output_rig"] = "canonical"
        report["notes"] = list(result.notes) + rig_notes
        write_bvh(out, fixed)
        if report_path is not None:
            _write_json_atomic(report_path, report)
    except (ValueError, FileNotFoundError, RuntimeError, Cancelled, FootFixError) as exc:
        print(f"error: {exc}{mapping_template_note(exc, src)}", file=sys.stderr)
        return 2
    _print_fix_summary(out, report)
    return 0


def _cmd_eval(args) -> int:
    from .evaluate import main_eval

    try:
        return main_eval(args)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core_models", description="Choreo core tools")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("info", help="summarise motion files: frames, fps, joint mapping, FSR, jitter")
    p.add_argument("files", nargs="+", help="BVH, AMASS .npz or official SMPL-X .pkl files")
    p.add_argument("--mapping", help='JSON file of canonical->source bone names, e.g. {"left_knee": "LKnee"}')
    p.add_argument("--unit", default="auto", help="source unit: auto, m, cm, mm, in or a scale factor")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=_cmd_info)
    p = sub.add_parser("demo", help="run the motion core end to end on a clip")
    p.add_argument("--clip", help="motion file (default: a synthesised dance)")
    p.add_argument("--out", default="demo_output", help="output folder")
    p.set_defaults(func=_cmd_demo)
    p = sub.add_parser("generate", help="generate a dance for a music file")
    p.add_argument("--music", required=True, help="audio file (WAV, FLAC, OGG, MP3)")
    p.add_argument("--genre", default="Popular", help="Ballet, Popular, Latin, Modern, Folk or Classic")
    p.add_argument("--weights", default=str(SHIPPED_COMPACT),
                   help="weight-set folder (config.json + safetensors); default: the compact set shipped with Choreo")
    p.add_argument("--out", required=True, help="output .bvh or .npz")
    p.add_argument("--start", type=float, default=0.0, help="start of the music span in seconds")
    p.add_argument("--end", type=float, default=None, help="end of the music span in seconds (default: the end)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--temperature", type=float, default=None)
    p.add_argument("--top-k", type=int, default=None)
    p.add_argument("--top-p", type=float, default=None)
    p.add_argument("--window-mode", choices=["full", "official"], default="full")
    p.add_argument("--no-references", action="store_true", help="generate without reference dances")
    p.add_argument("--allow-untrained-genre", action="store_true",
                   help="generate a genre the weight set was not trained on (the report notes it)")
    p.add_argument("--library", help="your reference library folder (references are retrieved from it and from the "
                                     "starter library that ships with Choreo)")
    p.add_argument("--no-starter-library", action="store_true",
                   help="do not retrieve from the starter library shipped with Choreo")
    p.add_argument("--pin", action="append", default=[], help="library clip to use as reference (repeatable)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--precision", default=None, help="fp32, bf16 or fp16 (default: bf16 on CUDA, fp32 on CPU)")
    p.add_argument("--backend", choices=["auto", "torch", "onnx"], default="auto",
                   help="torch, or onnx (onnxruntime; needs export-onnx first); auto: torch when installed")
    p.add_argument("--report", help="write a JSON report (timings, references, notes) here")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=_cmd_generate)
    p = sub.add_parser("library", help="the reference library: create, starter, add, remove, list, search, ...")
    p.add_argument("action", choices=["create", "starter", "add", "remove", "repair", "list", "search",
                                       "import-official"])
    p.add_argument("folder", help="library folder")
    p.add_argument("files", nargs="*", help="motion files to add (BVH, SMPL-X .npz/.pkl)")
    p.add_argument("--name", help="clip name (add: default the file name; remove: required)")
    p.add_argument("--genre", help="Ballet, Popular, Latin, Modern, Folk or Classic")
    p.add_argument("--subgenre", help="e.g. K-pop, HipHop, Salsa, Dai")
    p.add_argument("--licence", default="unknown", help="licence of the added clips")
    p.add_argument("--replace", action="store_true", help="add: replace a clip of the same name")
    p.add_argument("--json", action="store_true")
    p.add_argument("--max-seconds", type=float, default=40.0, help="starter: cut longer clips")
    p.add_argument("--music", help="search: audio file")
    p.add_argument("--weights", help="search / import-official: weight-set folder; starter: also compute its "
                                     "derived data (tokens, embeddings) into the library")
    p.add_argument("--top-k", type=int, default=10)
    p.add_argument("--device", default="auto")
    p.add_argument("--embeddings", help="import-official: retrievalnet_motion_embeddings.npz")
    p.add_argument("--features", help="import-official: folder of the released 264-d features (<clip>.npy)")
    p.add_argument("--style-map", help="import-official: all_style_map.json")
    p.add_argument("--tokens", help="import-official: folder of the 3-layer token files")
    p.set_defaults(func=_cmd_library)
    p = sub.add_parser("fix-feet", help="repair foot skating of a motion file (FRDM or IK lock)")
    p.add_argument("input", help="BVH, AMASS .npz, official SMPL-X .pkl file, or a take .npz (generate / edit)")
    p.add_argument("--out", required=True, help="output .bvh (the input's rig when it is a BVH); for a take also "
                                                "a new take .npz")
    p.add_argument("--report", help="write the JSON report here")
    p.add_argument("--method", choices=["frdm", "ik_lock"], default="frdm")
    p.add_argument("--weights", help="FRDM weight-set folder (default: the shipped set core_models/assets/frdm)")
    p.add_argument("--mode", choices=["auto", "grounding"], default="auto",
                   help="auto: plant the feet; grounding: keep them on the floor but allow spins and slides")
    p.add_argument("--strength", type=float, default=1.0, help="0 (unchanged) .. 1 (full repair)")
    p.add_argument("--contacts", help='JSON list of overrides, e.g. [{"foot": "left", "start": 10, "end": 40, '
                                      '"contact": true}] (frames at 30 fps, end exclusive)')
    p.add_argument("--steps", type=int, default=None, help="FRDM sampling steps (default: footfix.DEFAULT_STEPS)")
    p.add_argument("--backend", choices=["auto", "torch", "onnx"], default="auto",
                   help="FRDM on torch or onnx (onnxruntime); auto: torch when installed")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--unit", default="auto", help="source unit: auto, m, cm, mm, in or a scale factor")
    p.add_argument("--mapping", help="JSON file of canonical->source bone names")
    p.add_argument("--up", choices=["y", "z"], default="y", help="the source's up axis (z: a Z-up file)")
    p.add_argument("--beats", choices=["auto", "keep", "free"], default="auto",
                   help="keep: the fix does not move the motion's beats (a generated dance); free: it may (capture); "
                        "auto: free for a motion file, keep for a take")
    p.add_argument("--no-orientation-check", action="store_true",
                   help="fix even a clip that looks upside down or lying (floor work)")
    p.set_defaults(func=_cmd_fix_feet)
    p = sub.add_parser("eval", help="BAS, FSR, jitter, Div and FID of a weight set on real music vs held-out mocap")
    p.add_argument("--weights", required=True, help="weight-set folder")
    p.add_argument("--music", nargs="*", help="music files (default: ../shared/data/music)")
    p.add_argument("--seconds", type=float, default=30.0, help="seconds of each track")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--genre", nargs="*", help="genres to evaluate (default: those the weight set was trained on)")
    p.add_argument("--out", help="write the table as JSON here")
    p.set_defaults(func=_cmd_eval)
    p = sub.add_parser("export-onnx", help="export a compact or FRDM weight set to ONNX (into the set, with sha256)")
    p.add_argument("--weights", required=True, help="weight-set folder (compact family or FRDM)")
    p.add_argument("--out", default=None, help="write here instead (a copy of the set plus its ONNX files)")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default 18)")
    p.set_defaults(func=_cmd_export_onnx)
    from .editing.command import add_parser as add_edit_parser

    add_edit_parser(sub)
    from .rig.command import add_parser as add_retarget_parser

    add_retarget_parser(sub)
    args = parser.parse_args(argv)
    return args.func(args)


def _cmd_export_onnx(args) -> int:
    from .onnx_export import OPSET, export_onnx

    try:
        export_onnx(args.weights, args.out, args.opset or OPSET)
    except (ValueError, ImportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
