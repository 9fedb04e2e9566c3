"""The OSVOS head: the small per-video network that one-shot fine-tuning retrains.

Why a functional head with named parameters: the same function is (1) exported into the
OSVOS ONNX graph with every parameter as a graph INPUT (so fine-tuned weights reach ONNX
Runtime at run time without re-exporting or rebuilding anything), (2) differentiated by the
fine-tuning step (``ivos.video.osvos.finetune``), and (3) a TensorRT refit target (the
parameter names are the refitter's weight names). Parameters travel as a plain
``dict[str, np.ndarray]`` so a runtime-only install (numpy + onnxruntime) can store, load and
run them; only fine-tuning needs torch.

Architecture (``HEAD_VERSION`` = "osvos-head-v1"), per frame::

    high (B, C_high, H/8, W/8) --1x1 conv--> 32 -- ReLU -- bilinear x2 --+
    low  (B, C_low,  H/4, W/4) --1x1 conv--> 16 -- ReLU -----------------+-- concat
    prior (B, 1, H/4, W/4) (previous mask, or zeros) ------------------- +   (49 ch)
        --3x3 conv--> 32 -- ReLU --3x3 conv--> 32 -- ReLU --1x1 conv--> logits (B, 1, H/4, W/4)

No batch norm: fine-tuning sees one video (batch statistics of a few near-identical frames
would be meaningless), and a head without it is the same function in train and eval mode.
"""
from __future__ import annotations

from typing import Any

import numpy as np

HEAD_VERSION = "osvos-head-v1"
HIGH_WIDTH = 32
LOW_WIDTH = 16
FUSE_WIDTH = 32


def head_param_shapes(low_channels: int, high_channels: int) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every head parameter, in graph-input order (float32)."""
    fuse_in = HIGH_WIDTH + LOW_WIDTH + 1
    return {
        "head.high.weight": (HIGH_WIDTH, high_channels, 1, 1), "head.high.bias": (HIGH_WIDTH,),
        "head.low.weight": (LOW_WIDTH, low_channels, 1, 1), "head.low.bias": (LOW_WIDTH,),
        "head.fuse1.weight": (FUSE_WIDTH, fuse_in, 3, 3), "head.fuse1.bias": (FUSE_WIDTH,),
        "head.fuse2.weight": (FUSE_WIDTH, FUSE_WIDTH, 3, 3), "head.fuse2.bias": (FUSE_WIDTH,),
        "head.out.weight": (1, FUSE_WIDTH, 1, 1), "head.out.bias": (1,),
    }


def init_head_params(low_channels: int, high_channels: int, seed: int = 0) -> dict[str, np.ndarray]:
    """He-initialised weights, zero biases (float32). The output bias starts at -2 (p ~ 0.12):
    most pixels of a video frame are background."""
    rng = np.random.default_rng(seed)
    params = {}
    for name, shape in head_param_shapes(low_channels, high_channels).items():
        if name.endswith("bias"):
            params[name] = np.zeros(shape, np.float32)
        else:
            fan_in = int(np.prod(shape[1:]))
            params[name] = (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)
    params["head.out.bias"][:] = -2.0
    return params


def check_head_params(params: dict[str, Any], low_channels: int, high_channels: int) -> dict[str, np.ndarray]:
    """``params`` as C-contiguous float32 arrays; ``InvalidInput`` naming the parameter when a
    name is missing or a shape differs."""
    from ...errors import InvalidInput

    out = {}
    for name, shape in head_param_shapes(low_channels, high_channels).items():
        if name not in params:
            raise InvalidInput(f"head params lack {name!r} (expected shape {shape})")
        arr = np.ascontiguousarray(params[name], dtype=np.float32)
        if arr.shape != shape:
            raise InvalidInput(f"head param {name!r} must have shape {shape}, got {arr.shape}")
        out[name] = arr
    return out


def head_forward(params: dict[str, Any], low, high, prior):
    """Torch forward of the head (torch imported here, lazily).

    Args:
        params: name -> torch tensor (see ``head_param_shapes``).
        low: (B, C_low, h, w) stride-4 features; high: (B, C_high, h/2, w/2) stride-8 features;
        prior: (B, 1, h, w) previous-frame mask in [0, 1] at stride 4 (zeros = pure OSVOS).

    Returns:
        (B, 1, h, w) foreground logits at stride 4.
    """
    import torch
    import torch.nn.functional as F

    p = params
    x_high = F.relu(F.conv2d(high, p["head.high.weight"], p["head.high.bias"]))
    x_high = F.interpolate(x_high, size=low.shape[-2:], mode="bilinear", align_corners=False)
    x_low = F.relu(F.conv2d(low, p["head.low.weight"], p["head.low.bias"]))
    x = torch.cat([x_high, x_low, prior], dim=1)
    x = F.relu(F.conv2d(x, p["head.fuse1.weight"], p["head.fuse1.bias"], padding=1))
    x = F.relu(F.conv2d(x, p["head.fuse2.weight"], p["head.fuse2.bias"], padding=1))
    return F.conv2d(x, p["head.out.weight"], p["head.out.bias"])
