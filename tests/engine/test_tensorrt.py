"""TensorRT paths: import cleanly everywhere; build/run only where TensorRT and a GPU exist."""
import importlib.util

import numpy as np
import pytest

import ivos

HAS_TRT = importlib.util.find_spec("tensorrt") is not None
HAS_GPU = ivos.build_info()["machine"]["cuda_devices"] > 0


def test_modules_import_without_tensorrt():
    import ivos.export.tensorrt  # noqa: F401
    import ivos.runtime.backends.tensorrt  # noqa: F401


@pytest.mark.skipif(HAS_TRT, reason="checks the error raised where TensorRT is absent")
def test_missing_tensorrt_names_the_package(tiny_bundle):
    with pytest.raises(ivos.BackendUnavailable, match="tensorrt|TensorRT|cuda"):
        ivos.load(tiny_bundle, backend="tensorrt")


@pytest.mark.cuda
@pytest.mark.skipif(not (HAS_TRT and HAS_GPU), reason="needs TensorRT and an NVIDIA GPU")
def test_plan_matches_onnxruntime(tiny_bundle):
    from ivos.export.tensorrt import build_plan

    build_plan(tiny_bundle, fp16=False)
    image = np.random.default_rng(0).integers(0, 255, (100, 160, 3), dtype=np.uint8)
    out = []
    for backend in ("ort", "tensorrt"):
        p = ivos.ImagePredictor(ivos.load(tiny_bundle, backend=backend), crf=False)
        p.set_image(image)
        out.append(p.add_click(80, 50, True).probabilities)
    assert np.abs(out[0] - out[1]).max() < 1e-3
