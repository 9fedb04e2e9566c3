"""Dense CRF post-processing (paper section 2.1.3): a fully connected CRF with Gaussian edge
potentials (Kraehenbuehl & Koltun 2011) refines the network's probabilities so that the
mask follows colour edges. Runs in C++ (``csrc/dense_crf``: mean-field inference with a
permutohedral lattice).

Semantics match pydensecrf's ``DenseCRF2D`` with ``setUnaryEnergy(-log(clip(prob)))``,
``addPairwiseGaussian(sxy_gaussian, compat_gaussian)``,
``addPairwiseBilateral(sxy_bilateral, srgb, image, compat_bilateral)`` (Potts compatibility,
symmetric normalisation) and ``inference(iterations)``, so results agree with it.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .._validate import describe, nonnegative_int, positive_float, rgb_image
from ..errors import InvalidInput

PROB_FLOOR = 1e-5
"""Probabilities are clipped to ``[PROB_FLOOR, 1]`` before the unary ``-log(p)`` (the same
clip as pydensecrf's ``unary_from_softmax``): a probability of 0 would be an infinite cost."""

_SUM_TOLERANCE = 1e-3
"""How far per-label probabilities may sum away from 1 per pixel."""


def _check_prob(prob: Any, height: int, width: int) -> np.ndarray:
    """HxW (foreground of 2 labels) or LxHxW (L >= 2) float32 probabilities, C-contiguous."""
    if not isinstance(prob, np.ndarray) or prob.dtype not in (np.float32, np.float64):
        raise InvalidInput(f"prob must be a float32 numpy array of shape (H, W) or (L, H, W), got {describe(prob)}")
    if prob.ndim not in (2, 3) or (prob.ndim == 3 and prob.shape[0] < 2):
        raise InvalidInput(f"prob must have shape (H, W) (foreground) or (L, H, W) with L >= 2, got {describe(prob)}")
    if prob.shape[-2:] != (height, width):
        raise InvalidInput(f"prob must cover the image ({height}, {width}) in its last two axes, got {describe(prob)}")
    if not np.all(np.isfinite(prob)):
        raise InvalidInput(f"prob contains NaN or infinite values ({describe(prob)})")
    if prob.min() < 0 or prob.max() > 1:
        raise InvalidInput(f"prob must lie in [0, 1], got values in [{prob.min()}, {prob.max()}]")
    if prob.ndim == 3:
        sums = prob.sum(axis=0, dtype=np.float64)
        worst = float(np.abs(sums - 1.0).max())
        if worst > _SUM_TOLERANCE:
            raise InvalidInput(f"prob of shape (L, H, W) must sum to 1 over L at every pixel; off by up to {worst:.3g}")
    return np.ascontiguousarray(prob, dtype=np.float32)


def _check_roi(roi: Any, height: int, width: int) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) integer pixel box with 0 <= x0 < x1 <= width, 0 <= y0 < y1 <= height."""
    try:
        x0, y0, x1, y1 = roi
    except (TypeError, ValueError):
        raise InvalidInput(f"roi must be a box (x0, y0, x1, y1), got {describe(roi)}") from None
    box = (x0, y0, x1, y1)
    if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in box):
        raise InvalidInput(f"roi must hold integer pixel coordinates (x0, y0, x1, y1), got {roi!r}")
    if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
        raise InvalidInput(
            f"roi must satisfy 0 <= x0 < x1 <= {width} and 0 <= y0 < y1 <= {height} (image width, height), got {roi!r}")
    return int(x0), int(y0), int(x1), int(y1)


def _kernel_params(iterations, sxy_gaussian, compat_gaussian, sxy_bilateral, srgb, compat_bilateral) -> dict:
    """The mean-field iteration count and the two kernels' parameters, checked (InvalidInput
    naming the one out of range)."""
    return dict(
        iterations=nonnegative_int("iterations", iterations),
        sxy_gaussian=positive_float("sxy_gaussian", sxy_gaussian),
        compat_gaussian=_compat("compat_gaussian", compat_gaussian),
        sxy_bilateral=positive_float("sxy_bilateral", sxy_bilateral),
        srgb=positive_float("srgb", srgb),
        compat_bilateral=_compat("compat_bilateral", compat_bilateral),
    )


def _compat(name: str, value: Any) -> float:
    """A Potts weight: finite and >= 0 (0 switches the kernel off)."""
    return 0.0 if _is_zero(value) else positive_float(name, value)


def _is_zero(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) and value == 0


CRF_DEFAULTS = {"iterations": 5, "sxy_gaussian": 3.0, "compat_gaussian": 3.0, "sxy_bilateral": 80.0,
                "srgb": 13.0, "compat_bilateral": 10.0}
"""``dense_crf``'s tunable keywords (what bundles and CLIs may set) with their defaults
(pydensecrf's usual values)."""


class DenseCRF:
    """A dense CRF whose lattices are built once for an image (region) and parameters:
    ``refine`` then runs only the mean-field iterations for a new unary. The lattices
    depend on the pixels' positions and colours alone, so between two clicks on the same view
    only the unary changes. ``DenseCRF(image, roi=roi, **params).refine(prob)`` gives exactly
    ``dense_crf(image, prob, roi=roi, **params)``.

    Args:
        image: HxWx3 uint8 RGB (read at construction only; it is not kept).
        roi: optional box ``(x0, y0, x1, y1)`` in pixels (x = column, y = row, x1/y1
            exclusive): the CRF covers that crop only; ``refine`` keeps ``prob`` outside it.
        iterations, sxy_gaussian, compat_gaussian, sxy_bilateral, srgb, compat_bilateral:
            as ``dense_crf``.
        threads: native worker threads (0 = the native ops' default: ``IVOS_NUM_THREADS`` or
            one per CPU).

    Memory: about 40-100 bytes per pixel of the region (the appearance kernel's lattice).
    ``refine`` may be called from several threads at once.

    Raises:
        InvalidInput: as ``dense_crf``.
    """

    def __init__(self, image: np.ndarray, *, roi: tuple[int, int, int, int] | None = None, iterations: int = 5,
                 sxy_gaussian: float = 3, compat_gaussian: float = 3, sxy_bilateral: float = 80, srgb: float = 13,
                 compat_bilateral: float = 10, threads: int = 0):
        image = rgb_image("image", image)
        self.height, self.width = image.shape[:2]
        self.roi = None if roi is None else _check_roi(roi, self.height, self.width)
        self.params = _kernel_params(iterations, sxy_gaussian, compat_gaussian, sxy_bilateral, srgb,
                                     compat_bilateral)
        self._threads = nonnegative_int("threads", threads)
        from .. import _C

        if self.roi is not None:
            x0, y0, x1, y1 = self.roi
            image = np.ascontiguousarray(image[y0:y1, x0:x1])
        self._native = _C.DenseCrf(image, prob_floor=PROB_FLOOR, num_threads=self._threads, **self.params)

    def refine(self, prob: np.ndarray) -> np.ndarray:
        """Refined probabilities (float32, the shape of ``prob``) for ``prob``: HxW foreground
        or LxHxW per-label probabilities of the whole image, as ``dense_crf`` takes them."""
        prob = _check_prob(prob, self.height, self.width)
        if self.roi is None:
            return self._native.infer(prob, self._threads)
        x0, y0, x1, y1 = self.roi
        out = prob.copy()
        out[..., y0:y1, x0:x1] = self._native.infer(np.ascontiguousarray(prob[..., y0:y1, x0:x1]), self._threads)
        return out

    @property
    def memory_bytes(self) -> int:
        """Bytes held by the native lattices."""
        return int(self._native.memory_bytes)


def dense_crf(
    image: np.ndarray,
    prob: np.ndarray,
    *,
    iterations: int = 5,
    sxy_gaussian: float = 3,
    compat_gaussian: float = 3,
    sxy_bilateral: float = 80,
    srgb: float = 13,
    compat_bilateral: float = 10,
    roi: tuple[int, int, int, int] | None = None,
    threads: int = 0,
) -> np.ndarray:
    """Refines probabilities with a fully connected CRF (mean-field inference).

    One call builds the kernels' lattices and runs the iterations; to refine several unaries
    on the same image (clicks), build a ``DenseCRF`` once and call its ``refine``.

    Args:
        image: HxWx3 uint8 RGB frame (the colours of the appearance kernel).
        prob: float32 (float64 is converted) probabilities in [0, 1], either HxW, the
            foreground probability of a 2-label problem (background = 1 - prob), or LxHxW
            with L >= 2 labels summing to 1 at every pixel. The unary is
            ``-log(clip(prob, PROB_FLOOR, 1))``.
        iterations: mean-field iterations (>= 0; 0 returns the clipped, normalised input).
        sxy_gaussian: smoothness kernel position std, pixels (> 0).
        compat_gaussian: smoothness kernel Potts weight (>= 0; 0 switches it off).
        sxy_bilateral: appearance kernel position std, pixels (> 0).
        srgb: appearance kernel colour std, in 0..255 intensity units (> 0).
        compat_bilateral: appearance kernel Potts weight (>= 0; 0 switches it off).
        roi: optional box ``(x0, y0, x1, y1)`` in pixels (x = column, y = row, x1/y1
            exclusive): the CRF runs on that crop only (pixels outside do not influence
            it) and the result keeps the input ``prob`` outside the box.
        threads: native worker threads (0 = the native ops' default: ``IVOS_NUM_THREADS`` or
            one per CPU).

    Returns:
        float32 array with the shape of ``prob``: the refined probabilities (the
        foreground marginal for an HxW ``prob``, per-label marginals summing to 1 for
        LxHxW). Threshold at 0.5 (or take the argmax over L) for a mask.

    Raises:
        InvalidInput: wrong type/dtype/shape, empty image, sizes that do not match,
            NaN/negative/>1 probabilities, iterations < 0, bad kernel parameters or roi.
    """
    image = rgb_image("image", image)
    height, width = image.shape[:2]
    prob = _check_prob(prob, height, width)
    params = dict(_kernel_params(iterations, sxy_gaussian, compat_gaussian, sxy_bilateral, srgb, compat_bilateral),
                  prob_floor=PROB_FLOOR, num_threads=nonnegative_int("threads", threads))
    from .. import _C

    # One call: the native one-shot path reuses per-thread lattice buffers between calls.
    if roi is None:
        return _C.dense_crf_cpu(image, prob, **params)
    x0, y0, x1, y1 = _check_roi(roi, height, width)
    crop = np.ascontiguousarray(prob[..., y0:y1, x0:x1])
    refined = _C.dense_crf_cpu(np.ascontiguousarray(image[y0:y1, x0:x1]), crop, **params)
    out = prob.copy()
    out[..., y0:y1, x0:x1] = refined
    return out


def parse_crf_params(pairs: list[str], option: str = "--crf-param") -> dict[str, float]:
    """CLI ``NAME=VALUE`` strings -> ``dense_crf`` keywords, e.g. ``["srgb=5", "iterations=5"]``
    -> ``{"srgb": 5.0, "iterations": 5}``. Raises ``InvalidInput`` naming ``option`` for an
    unknown name or a value that is not a number."""
    out: dict[str, float] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or name not in CRF_DEFAULTS:
            raise InvalidInput(f"{option} must be NAME=VALUE with NAME one of {list(CRF_DEFAULTS)}, got {pair!r}")
        try:
            out[name] = int(value) if name == "iterations" else float(value)
        except ValueError:
            raise InvalidInput(f"{option} {name}: {value!r} is not a number") from None
    return out
