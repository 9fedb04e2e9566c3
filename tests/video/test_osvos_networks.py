"""OSVOS networks: the CPU backbone computes the click encoder's function, the VGG-16
configuration has the head contract's shapes, weights files round-trip, TensorRT refit
skips cleanly without TensorRT."""
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the network definitions need torch")


def test_clicknet_backbone_equals_encoder_with_zero_clicks():
    from ivos.export.models import build_model
    from ivos.export.osvos import ClickNetBackbone

    torch.manual_seed(0)
    click = build_model("ivos-cpu").eval()
    ref_encoder = build_model("ivos-cpu").eval()
    ref_encoder.load_state_dict(click.state_dict())
    backbone = ClickNetBackbone(click).eval()
    image, prior = torch.randn(1, 3, 64, 96), (torch.rand(1, 1, 64, 96) > 0.5).float()
    with torch.no_grad():
        low, high = backbone(image, prior)
        ref_low, ref_high = ref_encoder.encoder(torch.cat([image, torch.zeros(1, 1, 64, 96), prior], 1))
    assert low.shape == (1, 32, 16, 24) and high.shape == (1, 128, 8, 12)
    assert torch.allclose(low, ref_low, atol=1e-5) and torch.allclose(high, ref_high, atol=1e-5)


def test_vgg16_configuration_shapes():
    from ivos.export.osvos import build_osvos

    net = build_osvos("osvos-vgg16").eval()
    n_conv = sum(isinstance(m, torch.nn.Conv2d) for m in net.backbone.modules())
    assert n_conv == 14  # VGG-16's 13 convs + the prior's input conv
    with torch.no_grad():
        low, high = net.features(torch.randn(1, 3, 96, 128), torch.zeros(1, 1, 96, 128))
        logits = net(torch.randn(1, 3, 96, 128), torch.zeros(1, 1, 96, 128))
    assert low.shape == (1, 256, 24, 32) and high.shape == (1, 512, 12, 16)
    assert logits.shape == (1, 1, 24, 32)
    assert net.config.working_size == (480, 864)


def test_weights_file_round_trip(tmp_path):
    from ivos.export.osvos import build_osvos, load_osvos, save_osvos

    torch.manual_seed(0)
    net = build_osvos("osvos-cpu").eval()
    save_osvos(tmp_path / "w.pt", net, {"note": "test"})
    back, meta = load_osvos(tmp_path / "w.pt")
    x, p = torch.randn(1, 3, 64, 64), torch.zeros(1, 1, 64, 64)
    with torch.no_grad():
        assert torch.equal(net(x, p), back(x, p))
    assert meta == {"note": "test"}


def test_bundle_declares_head_weights_as_inputs(osvos_bundle):
    import ivos

    b = ivos.load(osvos_bundle, backend="ort").bundle
    names = [s.name for s in b.inputs]
    assert names[:2] == ["image", "prior"] and all(n.startswith("head.") for n in names[2:])
    assert b.task == "osvos" and b.has_artifact("head_parent")


def test_tensorrt_refit_needs_tensorrt(osvos_bundle):
    from ivos.errors import BackendUnavailable
    from ivos.export.osvos_tensorrt import build_refittable_plan

    try:
        import tensorrt  # noqa: F401
        pytest.skip("TensorRT is installed: the refit path is exercised on GPU machines")
    except ImportError:
        pass
    with pytest.raises(BackendUnavailable, match="tensorrt"):
        build_refittable_plan(osvos_bundle, osvos_bundle / "x.plan")


def test_refittable_onnx_bakes_the_parent_head(osvos_bundle, tmp_path):
    """The TensorRT refit path's graph: head.* inputs become same-named initializers holding
    the parent head, and it computes what model.onnx computes with the parent head fed."""
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from ivos.export.osvos_tensorrt import make_refittable_onnx

    path = make_refittable_onnx(osvos_bundle, tmp_path / "refit.onnx")
    refit = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    full = ort.InferenceSession(str(osvos_bundle / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in refit.get_inputs()] == ["image", "prior"]
    rng = np.random.default_rng(0)
    feed = {"image": rng.normal(size=(1, 3, 64, 96)).astype(np.float32),
            "prior": (rng.random((1, 1, 64, 96)) > 0.5).astype(np.float32)}
    with np.load(osvos_bundle / "head_parent.npz") as z:
        head = {k: z[k] for k in z.files}
    a = refit.run(["logits"], feed)[0]
    b = full.run(["logits"], {**feed, **head})[0]
    assert np.abs(a - b).max() < 1e-5


def test_lite0_osvos_backbone_exports_and_runs_in_the_engine(tmp_path):
    """osvos-lite0: frozen EfficientNet-Lite0 trunk (multi-scale high features), head weights
    as graph inputs; the exported bundle propagates through VideoPredictor like osvos-cpu."""
    import dataclasses

    import numpy as np
    import torch

    import ivos
    from ivos.export.osvos import OSVOS_CONFIGS, build_osvos
    from ivos.export.osvos_export import export_osvos_bundle
    from ivos.video.predictor import VideoPredictor

    torch.manual_seed(0)
    config = dataclasses.replace(OSVOS_CONFIGS["osvos-lite0"], name="osvos-lite0-tiny", working_size=(64, 96))
    net = build_osvos(config)
    assert (net.backbone.low_channels, net.backbone.high_channels) == (24, 40 + 112 + 320)
    before = net.backbone.trunk._bn0.running_mean.clone()
    net.train()(torch.randn(1, 3, 64, 96), torch.zeros(1, 1, 64, 96))
    assert torch.equal(net.backbone.trunk._bn0.running_mean, before) and not net.backbone.training  # frozen
    export_osvos_bundle(net, tmp_path / "b", version="test", mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    frames = np.zeros((3, 40, 56, 3), np.uint8)
    frames[:, 10:30, 15:40] = 200
    mask = np.zeros((40, 56), np.uint8)
    mask[10:30, 15:40] = 1
    predictor = VideoPredictor(ivos.load(tmp_path / "b", threads=1), None, crf=False)
    state = predictor.init_state(frames)
    predictor.add_new_mask(state, 0, 1, mask)
    results = list(predictor.propagate_in_video(state, finetune=False))
    assert len(results) == 3 and all(r.masks[1].shape == (40, 56) for r in results)
