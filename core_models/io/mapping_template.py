# SPDX-License-Identifier: GPL-3.0-or-later
"""What an animator reads when a rig's body is not found: the message, and a bone mapping file to fill in.

The file is the JSON the CLI's ``--mapping`` and :func:`~core_models.io.retarget.load_mapping_file` read:
one key per canonical joint (the confident automatic pick, or "" for "choose for me"), plus '_'-keys the
loader ignores: how to use it, the candidates per joint with their scores, and every bone of the rig.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..skeleton import BODY_JOINT_NAMES
from .bone_map import ARM, LEG, name_candidates

__all__ = ["write_mapping_template", "template_note", "TEMPLATE_HELP", "joint_words", "unmapped_message"]

TEMPLATE_HELP = ("Bone mapping for Choreo. For each body joint write the name of the rig's bone whose head sits at "
                 "that joint (see '_candidates' for the best guesses and '_bones' for every bone). Leave \"\" to let "
                 "Choreo choose, write null for a joint the rig does not have (it is then made up from its "
                 "neighbours). Then run again with --mapping THIS_FILE.json.")


def write_mapping_template(path, names, result, min_confidence: float = 0.5) -> Path:
    """Write a JSON mapping to fill in: every canonical joint with the confident automatic pick (or ""),
    the candidates per joint and every bone name. ``result``: a BoneMapping, an AutoMapping or None."""
    names = [str(n) for n in names]
    picks, candidates = {}, {}
    if result is not None:
        candidates = dict(getattr(result, "candidates", {}) or {})
        confidence = getattr(result, "confidence", {}) or {}
        chosen = getattr(result, "source_for", None)
        if chosen is None:
            chosen = {c: names[j] for c, j in getattr(result, "chosen", {}).items()}
        picks = {c: b for c, b in chosen.items() if confidence.get(c, 1.0) >= min_confidence}
    if not candidates:
        candidates = name_candidates(names)
    doc = {"_how_to_use": TEMPLATE_HELP,
           "_candidates": {c: [[n, s] for n, s in candidates.get(c, [])] for c in BODY_JOINT_NAMES},
           "_bones": names}
    doc.update({c: picks.get(c, "") for c in BODY_JOINT_NAMES})
    path = Path(path)
    path.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


_JOINT_WORDS = {"pelvis": "hips (pelvis)", "spine1": "lower spine", "spine2": "middle spine", "spine3": "chest",
                "neck": "neck", "head": "head", "hip": "thigh (hip)", "knee": "knee", "ankle": "ankle",
                "foot": "toes", "collar": "collarbone", "shoulder": "upper arm (shoulder)", "elbow": "elbow",
                "wrist": "wrist (hand)"}


def joint_words(canonical: str) -> str:
    """'left_knee' -> 'left knee', 'left_collar' -> 'left collarbone': the joint as an animator says it."""
    side, _, kind = canonical.partition("_")
    if side in ("left", "right"):
        return f"{side} {_JOINT_WORDS[kind]}"
    return _JOINT_WORDS.get(canonical, canonical)


def unmapped_message(missing, problems, profile_hint: str = "") -> str:
    """What is missing and how to fix it, in animator words, for a rig whose body was not found."""
    # the arms are looked for from the legs, the neck from the arms: name the first group that failed
    for what, kinds in (("legs", LEG), ("arms", ARM), ("body", None)):
        group = [c for c in missing if kinds is None or c.split("_")[-1] in kinds]
        if group:
            missing = group
            break
    lines = [f"Choreo could not find the {what} of this rig: no bone found for the "
             + ", ".join(f"{joint_words(c)} [{c}]" for c in missing) + "."]
    lines += [p[0].upper() + p[1:] + "." for p in dict.fromkeys(problems)]
    if profile_hint:
        lines.append(profile_hint)
    lines.append("To fix it, say which bones they are: in Blender pick them in the Bone Map panel; on the command "
                 "line pass a bone mapping file with --mapping FILE.json, a JSON object such as "
                 "{\"left_knee\": \"MyKneeBone\"} (one joint is enough, the others are then found automatically).")
    return " ".join(lines)


def template_note(exc, motion_file, option: str = "--mapping") -> str:
    """For a rig whose body was not found (an ``UnmappableRigError``): write a bone mapping to fill in next to
    ``motion_file`` (else in the current folder) and say where, so the error names the file to pass with
    ``option``. "" for any other error, or when no folder could be written."""
    if not hasattr(exc, "bone_names") or not hasattr(exc, "mapping"):   # only an unmappable rig has them
        return ""
    name = Path(motion_file).stem + ".mapping.json"
    for folder in (Path(motion_file).parent, Path.cwd()):
        try:
            path = write_mapping_template(folder / name, exc.bone_names, exc.mapping)
        except OSError:
            continue
        return (f"\nA bone mapping to fill in, with the best candidates for every joint, was written to {path}; "
                f"complete it and run again with {option} {path}")
    return ""
