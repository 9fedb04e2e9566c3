"""A tiny click network exported to a bundle once per test session (random weights: the
tests check plumbing, parity and validation, not accuracy)."""
import pytest

torch = pytest.importorskip("torch", reason="exporting a test bundle needs torch (pip install 'ivos[export]')")
pytest.importorskip("onnxruntime", reason="needs onnxruntime (pip install 'ivos[cpu]')")


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory):
    from ivos.export.models import ClickNetConfig, build_model
    from ivos.export.onnx_export import export_click_bundle

    torch.manual_seed(0)
    config = ClickNetConfig(name="tiny", widths=(8, 8, 16, 16), blocks=(1, 1, 1, 1), stem_width=8,
                            head_width=8, skip_width=8, decoder_width=8)
    model = build_model(config)
    out = tmp_path_factory.mktemp("bundle") / "tiny"
    export_click_bundle(model, out, name="tiny", version="test", click_encoding="gaussian", click_sigma=5.0,
                        click_channels=1, working_size=64, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225),
                        n_checks=2)
    return out
