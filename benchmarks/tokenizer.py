# SPDX-License-Identifier: GPL-3.0-or-later
"""How well a weight set's tokenizer keeps real dance: encode -> decode round trips of real clips.

    python benchmarks/tokenizer.py [--weights core_models/assets/compact] [--out results/tokenizer.json]

Clips: the starter library shipped with Choreo (CMU dance, by genre) and, when ``../shared/data`` is there,
held-out Bandai clips (the everyday motion the tokenizer also learnt from). Per clip and per group (JSON):
how far the clip's normalised features lie from the set's statistics (mean |z|: about 0.8 inside the
training distribution), the mean root-relative error of the decoded joints for the legs (knees, ankles),
the arms (elbows, wrists) and the head, and what an animator sees of the arms: the wrists' mean distance
from the chest and the share of frames with a hand above it, real and decoded. Ratios decoded / real in
the same run. Everything generated passes through this decoder, so a gap here is a ceiling for Generate.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

LEGS, ARMS, HEAD = (4, 5, 7, 8), (18, 19, 20, 21), (15,)
CHEST, WRISTS = 9, (20, 21)


def arm_reach(joints: np.ndarray) -> tuple[float, float]:
    """Wrists' mean distance (m) from the chest and the share of frames with a wrist above the chest."""
    wrists = joints[:, list(WRISTS)]
    chest = joints[:, CHEST]
    distance = np.linalg.norm(wrists - chest[:, None], axis=-1).mean()
    raised = (wrists[..., 1] > chest[:, None, 1]).any(-1).mean()
    return float(distance), float(raised)


def round_trip(ws, features: np.ndarray) -> dict:
    from core_models.features import RIC, features_to_joints, normalize_features

    frames = features.shape[0] // ws.frames_per_latent * ws.frames_per_latent
    features = np.asarray(features[:frames], np.float64)
    z = normalize_features(features, ws.mean, ws.std)
    decoded = ws.decode_features(ws.encode_tokens(z))
    real, back = features_to_joints(features), features_to_joints(decoded)
    error = np.linalg.norm((real - real[:, :1]) - (back - back[:, :1]), axis=-1).mean(0)
    # the pose alone, in the body's own facing frame (the error above also holds the decoded turning, which
    # integrates over the clip)
    pose = np.linalg.norm((features[:, RIC] - decoded[:, RIC]).reshape(frames, -1, 3), axis=-1).mean()
    (real_reach, real_raised), (back_reach, back_raised) = arm_reach(real), arm_reach(back)
    return {"frames": int(frames), "mean_abs_z": float(np.abs(z).mean()), "pose_error_m": float(pose),
            "legs_error_m": float(error[list(LEGS)].mean()), "arms_error_m": float(error[list(ARMS)].mean()),
            "head_error_m": float(error[list(HEAD)].mean()),
            "wrist_to_chest_m": {"real": real_reach, "decoded": back_reach},
            "hands_above_chest": {"real": real_raised, "decoded": back_raised}}


def clips(max_bandai: int):
    """(group, name, 264-d features) of the starter library and of held-out Bandai clips when present."""
    from core_models.starter_library import shipped_library

    lib = shipped_library()
    for clip in lib.clips():
        yield f"starter library: {clip.genre}", clip.name, lib.features(clip.name)
    try:
        from core_models.data import mocap_dir
        from core_models.features import joints_to_features
        from core_models.io import load_body_clip
        from core_models.train.frdm import load_split

        folder = mocap_dir("bandai")
        names = load_split()["held_out"]["bandai"][:max_bandai] if folder is not None else []
    except (ValueError, OSError, KeyError):
        return
    paths = {p.name: p for p in folder.rglob("*.bvh")} if names else {}
    for name in names:
        path = paths.get(Path(name).name)
        if path is not None:
            yield "bandai held-out", name, joints_to_features(load_body_clip(path).joints)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--weights", default=str(REPO / "core_models" / "assets" / "compact"))
    ap.add_argument("--max-bandai", type=int, default=8)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "tokenizer.json"))
    args = ap.parse_args(argv)
    from core_models.weights import load_weight_set

    ws = load_weight_set(Path(args.weights), device="cpu")
    rows = defaultdict(list)
    for group, name, features in clips(args.max_bandai):
        rows[group].append({"clip": name, **round_trip(ws, features)})
    summary = {}
    for group, rs in rows.items():
        mean = lambda f: float(np.mean([f(r) for r in rs]))   # noqa: E731
        reach = (mean(lambda r: r["wrist_to_chest_m"]["real"]), mean(lambda r: r["wrist_to_chest_m"]["decoded"]))
        summary[group] = {"clips": len(rs), "mean_abs_z": mean(lambda r: r["mean_abs_z"]),
                          "pose_error_m": mean(lambda r: r["pose_error_m"]),
                          "legs_error_m": mean(lambda r: r["legs_error_m"]),
                          "arms_error_m": mean(lambda r: r["arms_error_m"]),
                          "head_error_m": mean(lambda r: r["head_error_m"]),
                          "wrist_to_chest_m": {"real": reach[0], "decoded": reach[1],
                                               "decoded_over_real": reach[1] / max(reach[0], 1e-9)},
                          "hands_above_chest": {"real": mean(lambda r: r["hands_above_chest"]["real"]),
                                                "decoded": mean(lambda r: r["hands_above_chest"]["decoded"])}}
    out = {"benchmark": "tokenizer", "weights": args.weights, "summary": summary, "clips": dict(rows)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(json.dumps({"benchmark": "tokenizer", "weights": args.weights, "summary": summary}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
