"""The RITM simulated user: where the next corrective click goes, given the ground truth and
the current prediction.

Variant implemented (RITM, ``isegm/inference/clicker.py``, ``Clicker._get_next_click``):

1. error maps, outside ``ignore``: FN = gt & ~pred, FP = pred & ~gt;
2. each map is padded by one background pixel on every side, so that the image border counts
   as a region boundary, and gets an exact Euclidean distance transform (distance of each
   error pixel to the nearest non-error pixel); the padding is cropped off again;
3. pixels already clicked are zeroed in both transforms (RITM's ``not_clicked_map``), so the
   user never clicks the same pixel twice;
4. positive click iff max(DT(FN)) > max(DT(FP)) (strictly: a tie goes to a negative click, as
   in RITM); the click lands on the pixel of the chosen map where its transform is maximal,
   the first such pixel in row-major order on ties.

So the click goes to the error pixel farthest from any error boundary, which lies in the
error region of largest inscribed disk (not necessarily the largest by area). The first click
is the same rule with an empty prediction: the interior-most point of the object.

Coordinates follow ivos: x = column, y = row, integer pixel centres.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from .._validate import describe
from ..errors import BackendUnavailable, InvalidInput


@dataclass(frozen=True)
class Click:
    """One simulated click: pixel (x, y) = (column, row) in original image pixels."""
    x: int
    y: int
    positive: bool


def _mask(name: str, value, shape: tuple[int, ...] | None) -> np.ndarray:
    """A 2-D boolean mask (any nonzero is True) of ``shape`` when given."""
    if not isinstance(value, np.ndarray) or value.ndim != 2:
        raise InvalidInput(f"{name} must be a 2-D (H, W) numpy mask, got {describe(value)}")
    if shape is not None and value.shape != shape:
        raise InvalidInput(f"{name} must have the ground truth's shape {shape}, got {describe(value)}")
    return value.astype(bool, copy=False)


def _padded_dt(error: np.ndarray) -> np.ndarray:
    """Euclidean distance transform (float64, pixels) of an HxW bool map padded by 1 px of
    background, so error pixels touching the image border get distance 1, not more."""
    try:
        from scipy.ndimage import distance_transform_edt  # lazy: scipy is a bench/test extra
    except ImportError:
        raise BackendUnavailable("the simulated user (ivos.evaluation.clicker) needs scipy: pip install scipy") from None

    return distance_transform_edt(np.pad(error, 1))[1:-1, 1:-1]


def next_click(gt: np.ndarray, pred: np.ndarray | None, ignore: np.ndarray | None = None, *,
               is_first: bool = False, clicked: Iterable[Click] = ()) -> Click | None:
    """The next click of the RITM simulated user (variant: see the module docstring).

    Args:
        gt: (H, W) ground-truth mask, bool or 0/1 (any nonzero is object).
        pred: (H, W) current prediction, bool or 0/1; ignored (may be None) when ``is_first``.
        ignore: (H, W) bool, pixels that are neither object nor background (e.g. GrabCut's
            boundary band): they never count as errors and never receive a click.
        is_first: the first click of an interaction: the prediction is taken as empty, so the
            click is positive at the object's interior-most point.
        clicked: clicks already made; their pixels are not clicked again.

    Returns:
        A ``Click`` (x = column, y = row), or None when there is nothing left to correct
        (no error pixel outside ``ignore`` and ``clicked``).
    """
    gt = _mask("gt", gt, None)
    valid = ~_mask("ignore", ignore, gt.shape) if ignore is not None else np.ones_like(gt)
    if is_first:
        fn, fp = gt & valid, np.zeros_like(gt)
    else:
        pred = _mask("pred", pred, gt.shape)
        fn, fp = gt & ~pred & valid, pred & ~gt & valid
    fn_dt, fp_dt = _padded_dt(fn), _padded_dt(fp)
    for c in clicked:
        if 0 <= c.y < gt.shape[0] and 0 <= c.x < gt.shape[1]:
            fn_dt[c.y, c.x] = fp_dt[c.y, c.x] = 0.0
    fn_max, fp_max = fn_dt.max(), fp_dt.max()
    if fn_max == 0.0 and fp_max == 0.0:
        return None
    positive = bool(fn_max > fp_max)
    dt = fn_dt if positive else fp_dt
    # argmax on the flattened (row-major) array returns the first maximum: deterministic ties.
    y, x = np.unravel_index(int(np.argmax(dt)), dt.shape)
    return Click(x=int(x), y=int(y), positive=positive)
