"""Tiny random-weight bundles (an OSVOS bundle and a click bundle) exported once per test
session, and a small generated clip: the tests check plumbing, I/O and validation, not
accuracy."""
import dataclasses

import pytest

torch = pytest.importorskip("torch", reason="exporting test bundles needs torch (pip install 'ivos[export]')")
pytest.importorskip("onnxruntime", reason="needs onnxruntime (pip install 'ivos[cpu]')")

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
TINY = dict(widths=(8, 8, 16, 16), blocks=(1, 1, 1, 1), stem_width=8, head_width=8, skip_width=8, decoder_width=8)


@pytest.fixture(scope="session")
def osvos_bundle(tmp_path_factory):
    from ivos.export.models import ClickNetConfig, build_model
    from ivos.export.osvos import OSVOS_CONFIGS, build_osvos
    from ivos.export.osvos_export import export_osvos_bundle

    torch.manual_seed(0)
    click = build_model(ClickNetConfig(name="tiny", **TINY))
    config = dataclasses.replace(OSVOS_CONFIGS["osvos-cpu"], name="osvos-tiny", working_size=(64, 96))
    net = build_osvos(config, click)
    out = tmp_path_factory.mktemp("bundles") / "osvos-tiny"
    export_osvos_bundle(net, out, version="test", mean=MEAN, std=STD)
    return out


@pytest.fixture(scope="session")
def click_bundle(tmp_path_factory):
    from ivos.export.models import ClickNetConfig, build_model
    from ivos.export.onnx_export import export_click_bundle

    torch.manual_seed(0)
    model = build_model(ClickNetConfig(name="tiny", **TINY))
    out = tmp_path_factory.mktemp("bundles") / "click-tiny"
    export_click_bundle(model, out, name="tiny", version="test", click_encoding="gaussian", click_sigma=5.0,
                        click_channels=1, working_size=64, mean=MEAN, std=STD, n_checks=1)
    return out


@pytest.fixture(scope="session")
def predictor(osvos_bundle, click_bundle):
    import ivos
    from ivos.osvos_finetune import FinetuneConfig
    from ivos.video_predictor import VideoPredictor

    return VideoPredictor(ivos.load(osvos_bundle, backend="ort", threads=1),
                          ivos.load(click_bundle, backend="ort", threads=1),
                          finetune_config=FinetuneConfig(steps=5, augmentations=3))
