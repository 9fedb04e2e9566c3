"""Click-refinement networks (paper section 2.1.2) and their registry.

I/O contract (fixed; the ONNX export and the runtime rely on it)::

    forward(image, mask, clicks) -> logits
    image  (B, 3, H, W) float32  RGB in 0..1, then (x - IMAGENET_MEAN) / IMAGENET_STD
    mask   (B, 1, H, W) float32  {0, 1}: the current segmentation, zeros before the first
                                 click; ignored (replaced by zeros) when use_mask=False
    clicks (B, C, H, W) float32  C = 1 for "gaussian": ``ivos.render_clicks`` output in
                                 [-1, 1]; C = 2 for "distmap": see ``click_encodings``
    logits (B, 1, H, W) float32  foreground logits at the input resolution

H and W must be multiples of 32 (the encoder's total stride before dilation).

Both encoders are ResNets written here (no torchvision). The image, click and mask channels
are concatenated and fed to the first convolution, as in the paper ("an extra channel").
The stage-1 model (no initial masks) has the same weights layout as the stage-2 model, so
stage 2 starts from stage 1 (``zero_mask_weights`` makes it start as the same function).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .click_encodings import click_channels
from .lite_clicknet import LiteClickNet


@dataclass(frozen=True)
class ClickNetConfig:
    """One network configuration (every field is part of the checkpoint).

    Attributes:
        name: registry name.
        encoder: "resnet101" (paper: bottleneck blocks 3-4-23-3, 7x7 stem + max-pool),
            "resnet-light" (basic blocks, two 3x3 stride-2 stem convs, no max-pool), or
            "efficientnet-lite0/1/2" (an ImageNet-pretrained trunk, ``export/lite_clicknet.py``;
            there ``head_width`` is the pyramid width and ``decoder_width`` the stride-4 width,
            the other ResNet fields are unused).
        click_encoding: "gaussian" (1 channel, the paper) or "distmap" (2 channels, iFCN).
        use_mask: whether the current-mask channel is used (False: the "w/o init. mask"
            ablation; the input is still accepted and replaced by zeros).
        widths: output channels of the 4 residual stages.
        blocks: residual blocks per stage.
        stem_width: channels after the stem (stride 4).
        head_width: channels of the pyramid-pooling head output.
        ppm_bins: adaptive-pool grid sizes of the pyramid pooling module. (1, 2, 4) divides
            the stride-8 map of any input whose sides are multiples of 32, which the ONNX
            exporter needs; the paper's PSPNet (1, 2, 3, 6) only exports at sizes divisible by 48.
        skip_width: channels of the stride-4 low-level skip (0 = no skip, the paper).
        decoder_width: channels of the stride-4 decoder convs (used when skip_width > 0).
    """

    name: str
    encoder: str = "resnet-light"
    click_encoding: str = "gaussian"
    use_mask: bool = True
    widths: tuple[int, int, int, int] = (32, 64, 96, 128)
    blocks: tuple[int, int, int, int] = (1, 2, 2, 1)
    stem_width: int = 32
    head_width: int = 64
    ppm_bins: tuple[int, ...] = (1, 2, 4)
    skip_width: int = 24
    decoder_width: int = 48

    @property
    def in_channels(self) -> int:
        """Channels entering the first conv: RGB + click channels + mask."""
        return 3 + click_channels(self.click_encoding) + 1


_CPU = ClickNetConfig(name="ivos-cpu")
MODEL_CONFIGS: dict[str, ClickNetConfig] = {
    "ivos-paper": ClickNetConfig(
        name="ivos-paper", encoder="resnet101", widths=(256, 512, 1024, 2048),
        blocks=(3, 4, 23, 3), stem_width=64, head_width=512, ppm_bins=(1, 2, 3, 6), skip_width=0, decoder_width=0),
    "ivos-cpu": _CPU,
    "ivos-cpu-distmap": dataclasses.replace(_CPU, name="ivos-cpu-distmap", click_encoding="distmap"),
    "ivos-cpu-nomask": dataclasses.replace(_CPU, name="ivos-cpu-nomask", use_mask=False),
    "ivos-cpu-distmap-nomask": dataclasses.replace(
        _CPU, name="ivos-cpu-distmap-nomask", click_encoding="distmap", use_mask=False),
}
_LITE0 = ClickNetConfig(name="ivos-lite0", encoder="efficientnet-lite0", head_width=64, decoder_width=48)
MODEL_CONFIGS.update({
    "ivos-lite0": _LITE0,
    "ivos-lite0-nomask": dataclasses.replace(_LITE0, name="ivos-lite0-nomask", use_mask=False),
    "ivos-lite0-distmap": dataclasses.replace(_LITE0, name="ivos-lite0-distmap", click_encoding="distmap"),
})
# The larger trunk for small objects (issue 27): the same head; 1.13-1.16x Lite0's int8 click network time
# at 480x854, network stage (benchmarks/results/click_lite1.md).
_LITE1 = dataclasses.replace(_LITE0, name="ivos-lite1", encoder="efficientnet-lite1")
MODEL_CONFIGS.update({
    "ivos-lite1": _LITE1,
    "ivos-lite1-nomask": dataclasses.replace(_LITE1, name="ivos-lite1-nomask", use_mask=False),
})
PRETRAINED_ENCODERS = ("efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2")
"""Encoders with ImageNet weights (training starts from them; ``load_pretrained_trunk``)."""


def _conv_bn(cin: int, cout: int, k: int = 3, stride: int = 1, dilation: int = 1, relu: bool = True) -> nn.Sequential:
    layers = [nn.Conv2d(cin, cout, k, stride, padding=dilation * (k - 1) // 2, dilation=dilation, bias=False),
              nn.BatchNorm2d(cout)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class BasicBlock(nn.Module):
    """Two 3x3 convs + identity (ResNet-18/34 block)."""

    def __init__(self, cin: int, cout: int, stride: int, dilation: int):
        super().__init__()
        self.conv1 = _conv_bn(cin, cout, 3, stride, dilation)
        self.conv2 = _conv_bn(cout, cout, 3, 1, dilation, relu=False)
        self.down = _conv_bn(cin, cout, 1, stride, relu=False) if stride != 1 or cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv2(self.conv1(x)) + self.down(x))


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided / dilated), 1x1 expand (x4) + identity (ResNet-50/101 block)."""

    def __init__(self, cin: int, cout: int, stride: int, dilation: int):
        super().__init__()
        mid = cout // 4
        self.conv1 = _conv_bn(cin, mid, 1)
        self.conv2 = _conv_bn(mid, mid, 3, stride, dilation)
        self.conv3 = _conv_bn(mid, cout, 1, relu=False)
        self.down = _conv_bn(cin, cout, 1, stride, relu=False) if stride != 1 or cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv3(self.conv2(self.conv1(x))) + self.down(x))


class DilatedResNet(nn.Module):
    """ResNet at output stride 8: stages 3 and 4 keep stride 1 and dilate by 2 and 4
    (DeepLab's atrous trick), so the last feature map is H/8 x W/8.

    forward(x (B, in_channels, H, W)) -> (low (B, widths[0], H/4, W/4), high (B, widths[3], H/8, W/8))
    """

    def __init__(self, config: ClickNetConfig):
        super().__init__()
        c = config
        if c.encoder == "resnet101":
            block = Bottleneck
            self.stem = nn.Sequential(_conv_bn(c.in_channels, c.stem_width, 7, 2), nn.MaxPool2d(3, 2, 1))
        elif c.encoder == "resnet-light":
            block = BasicBlock
            self.stem = nn.Sequential(_conv_bn(c.in_channels, c.stem_width // 2, 3, 2),
                                      _conv_bn(c.stem_width // 2, c.stem_width, 3, 2))
        else:
            raise ValueError(f"unknown encoder {c.encoder!r}; expected 'resnet101' or 'resnet-light'")
        strides, dilations = (1, 2, 1, 1), (1, 1, 2, 4)
        stages, cin = [], c.stem_width
        for width, n, stride, dilation in zip(c.widths, c.blocks, strides, dilations):
            blocks = [block(cin, width, stride, max(1, dilation // 2) if stride == 1 else 1)]
            blocks += [block(width, width, 1, dilation) for _ in range(n - 1)]
            stages.append(nn.Sequential(*blocks))
            cin = width
        self.layer1, self.layer2, self.layer3, self.layer4 = stages

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        low = self.layer1(self.stem(x))
        return low, self.layer4(self.layer3(self.layer2(low)))


class PyramidPooling(nn.Module):
    """PSPNet pyramid pooling: average-pool to bins x bins grids, 1x1 reduce, upsample,
    concatenate with the input, 3x3 fuse. (B, cin, h, w) -> (B, cout, h, w)."""

    def __init__(self, cin: int, cout: int, bins: tuple[int, ...]):
        super().__init__()
        reduce = max(cin // len(bins), 8)
        self.bins = bins
        self.branches = nn.ModuleList(_conv_bn(cin, reduce, 1) for _ in bins)
        self.fuse = _conv_bn(cin + reduce * len(bins), cout, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        pooled = [F.interpolate(branch(F.adaptive_avg_pool2d(x, b)), size=(h, w), mode="bilinear", align_corners=False)
                  for b, branch in zip(self.bins, self.branches)]
        return self.fuse(torch.cat([x, *pooled], dim=1))


class ClickNet(nn.Module):
    """Encoder (dilated ResNet, stride 8) + pyramid pooling head + optional stride-4 skip
    decoder + 1x1 classifier, bilinearly upsampled to the input size. See the module
    docstring for the I/O contract."""

    def __init__(self, config: ClickNetConfig):
        super().__init__()
        self.config = config
        self.encoder = DilatedResNet(config)
        self.head = PyramidPooling(config.widths[3], config.head_width, config.ppm_bins)
        if config.skip_width > 0:
            self.skip = _conv_bn(config.widths[0], config.skip_width, 1)
            self.decoder = nn.Sequential(_conv_bn(config.head_width + config.skip_width, config.decoder_width, 3),
                                         _conv_bn(config.decoder_width, config.decoder_width, 3))
            out_width = config.decoder_width
        else:
            self.skip = None
            out_width = config.head_width
        self.classifier = nn.Conv2d(out_width, 1, 1)

    def forward(self, image: torch.Tensor, mask: torch.Tensor, clicks: torch.Tensor) -> torch.Tensor:
        if not self.config.use_mask:
            mask = torch.zeros_like(mask)
        low, high = self.encoder(torch.cat([image, clicks, mask], dim=1))
        x = self.head(high)
        if self.skip is not None:
            x = F.interpolate(x, size=low.shape[-2:], mode="bilinear", align_corners=False)
            x = self.decoder(torch.cat([x, self.skip(low)], dim=1))
        return F.interpolate(self.classifier(x), size=image.shape[-2:], mode="bilinear", align_corners=False)


def build_model(config: ClickNetConfig | str) -> nn.Module:
    """Builds a network from a config or a ``MODEL_CONFIGS`` name, randomly initialised
    (pretrained encoders too: ``model.load_pretrained_trunk()`` loads their ImageNet weights)."""
    if isinstance(config, str):
        if config not in MODEL_CONFIGS:
            raise KeyError(f"unknown model {config!r}; known: {sorted(MODEL_CONFIGS)}")
        config = MODEL_CONFIGS[config]
    if config.encoder in PRETRAINED_ENCODERS:
        return LiteClickNet(config)
    return ClickNet(config)


@torch.no_grad()
def zero_mask_weights(model: ClickNet) -> None:
    """Zeroes the first-conv weights that read the mask channel (the last input channel), so a
    model initialised from a stage-1 (no-mask) checkpoint computes the same function whatever
    mask it is given, and learns to use the mask from there."""
    if hasattr(model, "mask_input_weight"):
        model.mask_input_weight()[:, -1].zero_()
    else:
        model.encoder.stem[0][0].weight[:, -1].zero_()
