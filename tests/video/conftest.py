"""The suite's tiny random-weight bundles (``tests/conftest.py``: ``tiny_bundles``) under the
names the video tests use, and a predictor on them: the tests check plumbing, I/O and
validation, not accuracy."""
import pytest

torch = pytest.importorskip("torch", reason="exporting test bundles needs torch (pip install 'ivos[export]')")
pytest.importorskip("onnxruntime", reason="needs onnxruntime (pip install 'ivos[cpu]')")


@pytest.fixture(scope="session")
def osvos_bundle(tiny_bundles):
    return tiny_bundles["osvos"]


@pytest.fixture(scope="session")
def click_bundle(tiny_bundles):
    return tiny_bundles["click"]


@pytest.fixture(scope="session")
def predictor(osvos_bundle, click_bundle):
    import ivos
    from ivos.settings import FinetuneConfig
    from ivos.video.predictor import VideoPredictor

    return VideoPredictor(ivos.load(osvos_bundle, backend="ort", threads=1),
                          ivos.load(click_bundle, backend="ort", threads=1),
                          finetune_config=FinetuneConfig(steps=5, augmentations=3))
