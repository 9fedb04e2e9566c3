"""Click networks: the I/O contract, the registry, the encodings and the weight files."""
import dataclasses

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from ivos.export.checkpoint import load_click_model, save_click_model
from ivos.export.click_encodings import DISTMAP_TRUNCATE, click_channels, distance_maps, encode_clicks
from ivos.export.models import MODEL_CONFIGS, build_model, zero_mask_weights
from ivos.network_io import CLICK_SIGMA, IMAGENET_MEAN, WORKING_SIZE


def _inputs(config, b=2, h=64, w=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(b, 3, h, w, generator=g),
            (torch.rand(b, 1, h, w, generator=g) > 0.5).float(),
            torch.rand(b, click_channels(config.click_encoding), h, w, generator=g) * 2 - 1)


@pytest.mark.parametrize("name", sorted(MODEL_CONFIGS))
def test_output_shape_matches_input(name):
    model = build_model(name).eval()
    with torch.no_grad():
        out = model(*_inputs(model.config))
    assert out.shape == (2, 1, 64, 96) and out.dtype == torch.float32
    assert torch.isfinite(out).all()


def test_paper_config_is_resnet101_psp_at_stride8():
    config = MODEL_CONFIGS["ivos-paper"]
    assert config.encoder == "resnet101" and config.blocks == (3, 4, 23, 3) and config.ppm_bins == (1, 2, 3, 6)
    model = build_model(config).eval()
    n_params = sum(p.numel() for p in model.encoder.parameters())
    assert 40e6 < n_params < 46e6  # ResNet-101 minus its fc layer is 42.5M
    with torch.no_grad():
        low, high = model.encoder(torch.cat(_inputs(config, b=1, h=64, w=64), dim=1))
    assert low.shape[-2:] == (16, 16) and high.shape[-2:] == (8, 8) and high.shape[1] == 2048


def test_cpu_config_is_small():
    n = sum(p.numel() for p in build_model("ivos-cpu").parameters())
    assert n < 2e6  # < 8 MB of fp32 weights


def test_nomask_model_ignores_the_mask():
    model = build_model("ivos-cpu-nomask").eval()
    image, mask, clicks = _inputs(model.config)
    with torch.no_grad():
        assert torch.equal(model(image, mask, clicks), model(image, torch.zeros_like(mask), clicks))


def test_mask_model_uses_the_mask_and_zeroing_restores_stage1_function():
    stage1 = build_model("ivos-cpu-nomask").eval()
    model = build_model("ivos-cpu").eval()
    model.load_state_dict(stage1.state_dict())
    image, mask, clicks = _inputs(model.config)
    with torch.no_grad():
        assert not torch.allclose(model(image, mask, clicks), stage1(image, mask, clicks))
        zero_mask_weights(model)
        assert torch.allclose(model(image, mask, clicks), stage1(image, mask, clicks), atol=1e-5)


def test_unknown_names_rejected():
    with pytest.raises(KeyError):
        build_model("nope")
    with pytest.raises(ValueError):
        build_model(dataclasses.replace(MODEL_CONFIGS["ivos-cpu"], encoder="vgg"))
    with pytest.raises(ValueError):
        click_channels("disks")


def test_distance_maps_values():
    clicks = np.array([[10, 5, 1], [30, 20, 0]], np.float32)
    maps = distance_maps(40, 50, clicks)
    assert maps.shape == (2, 40, 50) and maps.dtype == np.float32
    assert maps[0, 5, 10] == 0 and maps[1, 20, 30] == 0
    assert maps[0, 5, 13] == pytest.approx(3 / DISTMAP_TRUNCATE, abs=1e-4)
    assert maps[1, 24, 33] == pytest.approx(5 / DISTMAP_TRUNCATE, abs=1e-3)
    empty = distance_maps(40, 50, np.zeros((0, 3), np.float32))
    assert np.all(empty == 1.0)


def test_distance_maps_truncate_and_strokes():
    maps = distance_maps(10, 400, np.array([[0, 0, 1]], np.float32), strokes=[(np.array([[0, 9], [9, 9]], np.float32), 0)])
    assert maps[0, 0, 399] == 1.0  # 399 px away: truncated at 255
    assert maps[1, 9, 5] == 0 and maps[1, 0, 5] == pytest.approx(9 / DISTMAP_TRUNCATE, abs=1e-4)


def test_gaussian_encoding_is_render_clicks():
    import ivos

    clicks = np.array([[10, 12, 1], [30, 20, 0]], np.float32)
    enc = encode_clicks(32, 48, clicks, "gaussian")
    assert enc.shape == (1, 32, 48)
    np.testing.assert_array_equal(enc[0], ivos.render_clicks(32, 48, clicks, sigma=CLICK_SIGMA))
    assert enc[0, 12, 10] == pytest.approx(1.0) and enc[0, 20, 30] == pytest.approx(-1.0)


def test_checkpoint_roundtrip(tmp_path):
    model = build_model("ivos-cpu-distmap").eval()
    save_click_model(tmp_path / "m.pt", model, {"steps": 3})
    loaded, config, meta = load_click_model(tmp_path / "m.pt")
    assert config == model.config and not loaded.training
    assert meta["steps"] == 3 and meta["click_sigma"] == CLICK_SIGMA and meta["working_size"] == WORKING_SIZE
    assert meta["imagenet_mean"] == list(IMAGENET_MEAN)
    inputs = _inputs(config)
    with torch.no_grad():
        assert torch.equal(loaded(*inputs), model(*inputs))


def test_export_cli_stores_postprocess_defaults_and_working_size(tmp_path):
    """``ivos-export click`` writes the CRF/flip defaults and the chosen working size into
    model.json, and the runtime picks them up."""
    import json

    pytest.importorskip("onnxruntime", reason="exporting a bundle needs onnxruntime (pip install 'ivos[cpu]')")

    import ivos
    from ivos.export.cli import main
    from ivos.export.models import ClickNetConfig

    config = ClickNetConfig(name="tiny", widths=(8, 8, 16, 16), blocks=(1, 1, 1, 1), stem_width=8,
                            head_width=8, skip_width=8, decoder_width=8)
    save_click_model(tmp_path / "m.pt", build_model(config), {"steps": 1})
    out = tmp_path / "bundle"
    assert main(["click", str(tmp_path / "m.pt"), "--out", str(out), "--crf", "--crf-param", "srgb=5",
                 "--flip", "--working-size", "96"]) == 0
    card = json.loads((out / "model.json").read_text())
    assert card["working_size"] == [96, 96]
    assert card["postprocess"] == {"crf": True, "crf_params": {"srgb": 5.0}, "flip": True}
    predictor = ivos.ImagePredictor(ivos.load(out, backend="ort", threads=1))
    s = predictor.settings
    assert s.flip and s.crf.enabled and s.crf.params["srgb"] == 5.0
    with pytest.raises(SystemExit, match="multiple of 8"):
        main(["click", str(tmp_path / "m.pt"), "--out", str(tmp_path / "bad"), "--working-size", "100"])
