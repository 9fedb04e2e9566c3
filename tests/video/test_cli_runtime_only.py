"""``ivos segment`` on a runtime-only install (``pip install .[cpu]``: no torch, no PyAV, no
OpenCV): a folder of frames is segmented with the parent OSVOS network, and the command says
what it skipped. Run in a fresh interpreter where importing those packages FAILS."""
import json
import subprocess
import sys

import numpy as np

SCRIPT = r"""
import sys
for name in ("torch", "cv2", "av", "tensorrt"):
    sys.modules[name] = None  # as if not installed
from ivos.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_segment_folder_without_torch_or_pyav(tmp_path, make_clip, osvos_bundle, click_bundle):
    from PIL import Image

    frames, _ = make_clip(n=4)
    (tmp_path / "f").mkdir()
    for i, f in enumerate(frames):
        Image.fromarray(f).save(tmp_path / "f" / f"frame{i * 3}.png")  # frame0, frame3, frame6, frame9
    out = subprocess.run([sys.executable, "-c", SCRIPT, "segment", str(tmp_path / "f"), "--click", "20,20",
                          "--out", str(tmp_path / "o"), "--osvos-bundle", str(osvos_bundle),
                          "--click-bundle", str(click_bundle), "--backend", "ort", "--threads", "1"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "torch is not installed" in out.stderr and "skipping overlay.mp4" in out.stderr
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["finetuned"] is False and "overlay" not in summary["outputs"]
    assert sorted(p.name for p in (tmp_path / "o" / "masks").iterdir()) == [
        "frame0.png", "frame3.png", "frame6.png", "frame9.png"]  # named after the input frames
    doc = json.loads((tmp_path / "o" / "masks.json").read_text())
    assert [f.get("name") for f in doc["frames"]] == ["frame0", "frame3", "frame6", "frame9"]
    assert np.asarray(Image.open(tmp_path / "o" / "masks" / "frame0.png")).shape == frames[0].shape[:2]
