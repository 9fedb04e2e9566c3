"""The click-based evaluation loop (RITM protocol), independent of the method being measured.

Per sample: the simulated user (``ivos.evaluation.clicker.next_click``) places up to ``max_clicks``
clicks, each on the current prediction's largest error; after each the segmenter predicts again
from all clicks so far and its previous mask; IoU is measured after every click, ignoring the
sample's ``ignore`` pixels. NoC@t = the 1-based click count at which IoU first reaches t, or
``max_clicks`` if it never does (RITM's definition); a sample fails@90 if IoU never reaches 0.90.
If the user has nothing left to click (no error pixel outside ``ignore`` and earlier clicks), the
interaction stops and the last IoU holds for the remaining clicks.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from .._validate import describe, positive_int
from ..errors import InvalidInput
from ..mask_metrics import iou
from .clicker import Click, next_click
from .datasets import Sample


class Segmenter(Protocol):
    """What the evaluation needs from a method."""

    name: str

    def set_image(self, image: np.ndarray) -> None:
        """Prepare for a new (H, W, 3) uint8 RGB image; forgets earlier clicks."""

    def predict(self, clicks: list[Click], prev_mask: np.ndarray | None) -> np.ndarray:
        """(H, W) bool or {0,1} uint8 mask from ALL clicks so far ((x, y) pixels, in order) and
        the previous prediction (None before the first click)."""


SIZE_BUCKETS = (("< 1%", 0.0, 0.01), ("1-5%", 0.01, 0.05), ("5-20%", 0.05, 0.20), ("> 20%", 0.20, 1.01))
"""Object-size buckets (label, low, high: the object's share of the image's pixels, low <=
share < high): every click evaluation is reported per bucket, since small objects are where
a network fails (and what sets with large objects, such as GrabCut, never show)."""


def size_bucket(area_fraction: float) -> str:
    """The ``SIZE_BUCKETS`` label of an object covering ``area_fraction`` of its image."""
    return next(label for label, low, high in SIZE_BUCKETS if low <= area_fraction < high)


@dataclass(frozen=True)
class SampleResult:
    """One sample, one method. ious[k] is the IoU after k+1 clicks (len = max_clicks);
    seconds[k] the predict() time of click k+1 (only clicks actually made); area_fraction
    the object's share of the image's pixels."""
    name: str
    ious: tuple[float, ...]
    seconds: tuple[float, ...]
    set_image_s: float
    clicks: tuple[Click, ...]
    area_fraction: float = 0.0

    def noc(self, threshold: float) -> int:
        hit = np.flatnonzero(np.asarray(self.ious) >= threshold)
        return int(hit[0]) + 1 if hit.size else len(self.ious)

    @property
    def fail90(self) -> bool:
        return bool(max(self.ious) < 0.90)


@dataclass(frozen=True)
class MethodResult:
    """Aggregate over a data set. noc85/noc90: mean NoC; n_fail90: samples never reaching 90%;
    miou_per_click[k]: mean IoU after k+1 clicks; spc: mean seconds per predict() call;
    set_image_s: mean seconds per set_image() call."""
    name: str
    n_images: int
    max_clicks: int
    noc85: float
    noc90: float
    n_fail90: int
    miou_per_click: tuple[float, ...]
    spc: float
    set_image_s: float
    samples: tuple[SampleResult, ...]

    def by_size(self) -> dict[str, dict]:
        """Per ``SIZE_BUCKETS`` bucket: n, NoC@85/90, failures@90 and mIoU per click (empty
        buckets are left out)."""
        out = {}
        for label, _, _ in SIZE_BUCKETS:
            group = [s for s in self.samples if size_bucket(s.area_fraction) == label]
            if group:
                out[label] = {"n": len(group), "noc85": float(np.mean([s.noc(0.85) for s in group])),
                              "noc90": float(np.mean([s.noc(0.90) for s in group])),
                              "n_fail90": int(sum(s.fail90 for s in group)),
                              "miou_per_click": [float(v) for v in np.mean([s.ious for s in group], axis=0)]}
        return out

    def summary(self) -> dict:
        """JSON-ready aggregate, the same per object-size bucket, plus per-sample NoC."""
        return {
            "n_images": self.n_images, "max_clicks": self.max_clicks,
            "noc85": self.noc85, "noc90": self.noc90, "n_fail90": self.n_fail90,
            "miou_per_click": list(self.miou_per_click), "spc": self.spc,
            "set_image_s": self.set_image_s, "by_size": self.by_size(),
            "per_sample": [{"name": s.name, "noc85": s.noc(0.85), "noc90": s.noc(0.90),
                            "area_fraction": round(s.area_fraction, 6),
                            "ious": [round(v, 5) for v in s.ious]} for s in self.samples],
        }


def _as_mask(pred, shape: tuple[int, int], who: str) -> np.ndarray:
    pred = np.asarray(pred)
    if pred.shape != shape:
        raise InvalidInput(f"{who}.predict returned {describe(pred)}; expected an (H, W) = {shape} mask")
    return pred.astype(bool, copy=False)


def evaluate_sample(segmenter: Segmenter, sample: Sample, *, max_clicks: int = 20) -> SampleResult:
    """Runs one simulated interaction of up to ``max_clicks`` clicks on ``sample``."""
    max_clicks = positive_int("max_clicks", max_clicks)
    gt, ignore = sample.gt, sample.ignore
    t0 = time.perf_counter()
    segmenter.set_image(sample.image)
    set_image_s = time.perf_counter() - t0
    clicks: list[Click] = []
    ious: list[float] = []
    seconds: list[float] = []
    pred: np.ndarray | None = None
    for k in range(max_clicks):
        click = next_click(gt, pred, ignore, is_first=(k == 0), clicked=clicks)
        if click is None:
            break
        clicks.append(click)
        t0 = time.perf_counter()
        out = segmenter.predict(list(clicks), pred)
        seconds.append(time.perf_counter() - t0)
        pred = _as_mask(out, gt.shape, segmenter.name)
        ious.append(iou(gt, pred, ignore))
    # Nothing left to click: the last IoU (1.0 for an empty target) stands for the rest.
    ious += [ious[-1] if ious else 1.0] * (max_clicks - len(ious))
    area = float(np.count_nonzero(gt)) / gt.size
    return SampleResult(sample.name, tuple(ious), tuple(seconds), set_image_s, tuple(clicks), area)


def aggregate(name: str, results: list[SampleResult], max_clicks: int) -> MethodResult:
    """Mean NoC@85/90, failures@90, mIoU per click and seconds per click over ``results``."""
    if not results:
        raise InvalidInput(f"no samples were evaluated for {name!r}")
    ious = np.array([r.ious for r in results])  # (n_samples, max_clicks)
    secs = [s for r in results for s in r.seconds]
    return MethodResult(
        name=name, n_images=len(results), max_clicks=max_clicks,
        noc85=float(np.mean([r.noc(0.85) for r in results])),
        noc90=float(np.mean([r.noc(0.90) for r in results])),
        n_fail90=int(sum(r.fail90 for r in results)),
        miou_per_click=tuple(float(v) for v in ious.mean(axis=0)),
        spc=float(np.mean(secs)) if secs else 0.0,
        set_image_s=float(np.mean([r.set_image_s for r in results])),
        samples=tuple(results),
    )


def evaluate(segmenters: list[Segmenter], samples: Iterable[Sample], *, max_clicks: int = 20,
             on_sample: Callable[[Sample], None] | None = None) -> dict[str, MethodResult]:
    """Evaluates every segmenter on every sample (each sample is loaded once and given to all
    methods in turn, so they are measured side by side). ``on_sample`` is called after each
    sample (the CLI advances its progress bar there). Returns {segmenter.name: MethodResult}."""
    names = [s.name for s in segmenters]
    if len(set(names)) != len(names):
        raise InvalidInput(f"segmenter names must be unique, got {names}")
    per_method: dict[str, list[SampleResult]] = {n: [] for n in names}
    for sample in samples:
        for seg in segmenters:
            per_method[seg.name].append(evaluate_sample(seg, sample, max_clicks=max_clicks))
        if on_sample is not None:
            on_sample(sample)
    return {n: aggregate(n, r, max_clicks) for n, r in per_method.items()}
