"""A runtime-only install (``pip install .[cpu]``, no torch) can load a bundle and click:
run the whole click path in a fresh interpreter where importing torch (or cv2) FAILS."""
import subprocess
import sys
from pathlib import Path

import pytest

from ivos.runtime.model import SHIPPED_MODELS

SCRIPT = r"""
import sys
for name in ("torch", "cv2", "tensorrt"):
    sys.modules[name] = None  # as if not installed: `import torch` raises ImportError
import numpy as np, ivos
model = ivos.load(sys.argv[1], backend="auto")
assert model.backend.startswith("onnxruntime:"), model.backend
p = ivos.ImagePredictor(model, crf=True)
image = np.random.default_rng(0).integers(0, 255, (90, 150, 3), dtype=np.uint8)
p.set_image(image)
r = p.add_click(75, 45, True)
r = p.add_click(10, 10, False)
assert r.mask.shape == (90, 150)
print("ok", model.backend)
"""


def _run(bundle: Path) -> str:
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(bundle)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def test_click_path_never_imports_torch(tiny_bundle):
    assert "ok onnxruntime" in _run(tiny_bundle)


@pytest.mark.skipif(not (SHIPPED_MODELS / "ivos-cpu" / "model.json").is_file(), reason="no shipped ivos-cpu bundle")
def test_shipped_bundle_clicks_without_torch():
    assert "ok onnxruntime" in _run(SHIPPED_MODELS / "ivos-cpu")
