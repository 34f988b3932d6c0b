# SPDX-License-Identifier: GPL-3.0-or-later
"""The installed extension generates a dance and fixes its feet on the ONNX Runtime backend in a Blender
process where torch cannot be imported (an import hook installed before anything else makes every
``import torch`` fail as if it were not installed; ``sys.modules["torch"] = None`` would also break
scipy, which looks torch up in ``sys.modules``)."""
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")
torch = pytest.importorskip("torch")

from generation_fixture import NO_TORCH_PRELUDE, write_drum_track, write_tiny_compact_weight_set  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def onnx_sets(tmp_path_factory):
    """A tiny compact set and a tiny FRDM set, both exported to ONNX here (torch is available in this process)."""
    from core_models import footfix
    from core_models.onnx_export import export_onnx

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("onnx_sets")
    compact = write_tiny_compact_weight_set(root / "compact")
    export_onnx(compact, progress=lambda *_: None)
    torch.manual_seed(0)
    cfg = footfix.FRDMConfig(d_model=32, layers=1, heads=2, ff=64, window=16, dropout=0.0, diffusion_steps=50)
    rng = np.random.default_rng(0)
    folder = footfix.save_frdm_weights(root / "frdm", footfix.FRDMDenoiser(cfg).eval(),
                                       rng.normal(0, 0.1, footfix.FRDM_DIM), rng.uniform(0.5, 1.5, footfix.FRDM_DIM),
                                       {"training_data": "none (test)"})
    export_onnx(folder, progress=lambda *_: None)
    return compact, folder


def test_generate_and_fix_feet_in_blender_without_torch(onnx_sets, tmp_path):
    compact, frdm_folder = onnx_sets
    music = write_drum_track(tmp_path / "drums.wav", 6.0)
    script = NO_TORCH_PRELUDE + textwrap.dedent(f"""
        os.environ["BLENDER_USER_RESOURCES"] = {str(tmp_path / "home")!r}
        os.environ["XDG_CACHE_HOME"] = {str(tmp_path / "cache")!r}
        import bpy
        from bl_pkg import bl_extension_cli
        bpy.ops.wm.read_factory_settings(use_empty=True)
        os.makedirs({str(tmp_path / "dist")!r}, exist_ok=True)
        rc = bl_extension_cli.cli_extension_handler(["build", "--source-dir", {str(REPO)!r}, "--output-dir",
                                                     {str(tmp_path / "dist")!r}])
        assert rc in (0, None), rc
        import glob
        zip_path = glob.glob({str(tmp_path / "dist" / "choreo-*.zip")!r})[0]
        assert bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default",
                                                        enable_on_install=True) == {{"FINISHED"}}
        prefs = bpy.context.preferences.addons["bl_ext.user_default.choreo"].preferences
        prefs.weights_path, prefs.frdm_weights_path = {str(compact)!r}, {str(frdm_folder)!r}
        prefs.device, prefs.backend = "cpu", "onnx"
        scene = bpy.context.scene
        scene.render.fps, scene.render.fps_base = 30, 1.0
        scene.choreo.music_source, scene.choreo.music_file = "FILE", {str(music)!r}
        before = set(bpy.data.objects)
        gen = bpy.ops.choreo.generate()
        gen_report = scene.choreo.last_report
        dancers = [o for o in bpy.data.objects if o not in before and o.type == "ARMATURE"]
        dancer = dancers[0]
        action = dancer.animation_data.action
        info = dict(action["choreo_generation"])
        for o in bpy.context.view_layer.objects:
            o.select_set(o == dancer)
        bpy.context.view_layer.objects.active = dancer
        dancer.choreo.foot_method = "FRDM"
        fix = bpy.ops.choreo.fix_feet()
        fixed = dancer.animation_data.action
        fix_report = json.loads(fixed["choreo_foot_fix"]) if "choreo_foot_fix" in fixed else {{}}
        print("RESULT " + json.dumps({{
            "generate": sorted(gen), "fix": sorted(fix), "dancers": len(dancers), "action": action.name,
            "frames": int(action["choreo_frames"]), "device": info.get("device"), "report": gen_report,
            "fixed_action": fixed.name, "fix_method": fix_report.get("method"),
            "fix_backend": fix_report.get("backend"), "fix_text": scene.choreo.last_report,
            "torch_loaded": "torch" in sys.modules}}))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    assert out.returncode == 0 and lines, (out.stdout + out.stderr)[-4000:]
    got = json.loads(lines[-1][len("RESULT "):])
    assert got["generate"] == ["FINISHED"] and got["fix"] == ["FINISHED"], got
    assert got["dancers"] == 1 and got["frames"] == 180 and got["action"].startswith("Choreo Popular")
    assert got["device"] == "onnxruntime CPUExecutionProvider"
    assert "onnxruntime CPUExecutionProvider" in got["report"]            # the panel says what ran
    assert got["fixed_action"] == f"{got['action']} feet fixed"
    assert got["fix_method"] == "frdm" and (got["fix_backend"] == "onnxruntime CPUExecutionProvider" or (
        got["fix_backend"] is None and "already clean" in got["fix_text"]))      # nothing slid: no model ran
    assert got["torch_loaded"] is False
