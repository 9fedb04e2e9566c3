"""Training losses of the click network: plain BCE (the paper's) and a normalised focal loss.

Pixel-averaged BCE gives an example's loss in proportion to its pixels, so in a whole-image
view a 1% object's pixels (and its boundary, where NoC@90 is decided) are 1% of the signal
and the easy background the rest. The normalised focal loss (RITM, Sofiiuk et al. 2021)
weights each pixel by (1 - p_t)^gamma, the focal weight, rescaled per example so that the
weights average 1: every example keeps the same total weight, and within it the weight goes
to the pixels still wrong (a small object's, its boundary's) whatever the object's size.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

LOSSES = ("bce", "nfl")
"""Names accepted by ``click_loss`` (``training.train --loss``)."""

NFL_GAMMA = 2.0
"""The focal exponent (RITM's value)."""


def normalized_focal_loss(logits: torch.Tensor, gt: torch.Tensor, gamma: float = NFL_GAMMA,
                          eps: float = 1e-6) -> torch.Tensor:
    """Normalised focal loss of ``logits`` (N, 1, H, W) float against ``gt`` (N, 1, H, W) in {0, 1}.

    Per pixel: w * BCE, where w = (1 - p_t)^gamma / mean over the example's pixels of
    (1 - p_t)^gamma, p_t the predicted probability of the true class. The weights are detached
    (as in RITM): they say where to learn, the BCE says how. Returns the mean over pixels and
    examples, a scalar; with gamma = 0 it is the plain BCE.
    """
    bce = F.binary_cross_entropy_with_logits(logits, gt, reduction="none")
    with torch.no_grad():
        p_t = torch.exp(-bce)  # BCE = -log p_t
        focal = (1.0 - p_t).pow(gamma)
        weight = focal / (focal.mean(dim=(1, 2, 3), keepdim=True) + eps)
    return (weight * bce).mean()


def click_loss(name: str, logits: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """The training loss ``name`` (one of ``LOSSES``) of ``logits`` against ``gt``, both (N, 1, H, W)."""
    if name == "bce":
        return F.binary_cross_entropy_with_logits(logits, gt)
    if name == "nfl":
        return normalized_focal_loss(logits, gt)
    raise ValueError(f"unknown loss {name!r}: expected one of {LOSSES}")
