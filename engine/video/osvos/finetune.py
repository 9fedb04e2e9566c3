"""One-shot fine-tuning of the OSVOS head on the annotated frame(s) (paper section 2.2).

Design: the backbone is frozen inside the exported graph, so fine-tuning (1) builds
``FinetuneConfig.augmentations`` augmented copies of every annotated frame (flip, scale,
rotation, translation, brightness; and a deformed copy of the mask as the prior, as
MaskTrack trains its mask channel), (2) runs each copy ONCE through the engine and caches
the backbone features it outputs, and (3) fits only the small head on the cached features.
The fitted weights go back into the same engine as graph inputs (``OsvosRunner.set_head``).

Gradients come from torch, imported lazily here: a runtime-only install (numpy +
onnxruntime) runs propagation with the parent head but raises ``BackendUnavailable`` naming
torch when asked to fine-tune. Why not numpy: a hand-written backward pass for 3x3 convs is
slower than torch's by an order of magnitude on CPU and one more thing to get wrong; torch
is already the export dependency.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from ...errors import BackendUnavailable, InvalidInput
from ...image.crops import PAD_RGB
from ...postprocess import Region, gate_box
from ...runtime import pages
from ...runtime.threads import resolve_threads
from ...settings import ROI_MARGIN, FinetuneConfig
from .runner import FULL_FRAME_SHARE, OsvosRunner

log = logging.getLogger("ivos")

@dataclass(frozen=True)
class FinetuneResult:
    """The fitted head (name -> float32 array) and where the time went (seconds)."""

    params: dict
    seconds: float
    feature_seconds: float
    train_seconds: float
    examples: int
    final_loss: float


def import_torch():
    try:
        import torch
    except ImportError:
        raise BackendUnavailable("fine-tuning the OSVOS head needs PyTorch: pip install torch "
                                 "(propagation with the parent head runs without it)") from None
    return torch


def _affine(size: tuple[int, int], rng: np.random.Generator, cfg: FinetuneConfig) -> tuple[float, ...]:
    """PIL AFFINE coefficients (output -> input pixel map) of a random scale/rotation/shift/flip
    about the image centre."""
    h, w = size
    s = math.exp(rng.uniform(-math.log(cfg.max_scale), math.log(cfg.max_scale)))
    a = math.radians(rng.uniform(-cfg.max_rotate, cfg.max_rotate))
    tx, ty = rng.uniform(-cfg.max_shift, cfg.max_shift) * w, rng.uniform(-cfg.max_shift, cfg.max_shift) * h
    flip = -1.0 if rng.random() < 0.5 else 1.0
    cx, cy = w / 2.0, h / 2.0
    # inverse of: p' = R S F (p - c) + c + t
    cos, sin = math.cos(a) / s, math.sin(a) / s
    m = np.array([[cos * flip, sin * flip], [-sin, cos]])
    off = np.array([cx, cy]) - m @ np.array([cx + tx, cy + ty])
    return (m[0, 0], m[0, 1], off[0], m[1, 0], m[1, 1], off[1])


def square_filter(mask: np.ndarray, k: int, op: np.ufunc) -> np.ndarray:
    """``op`` (np.maximum: dilation, np.minimum: erosion) over each pixel's k x k square (k odd)
    of an (h, w) array, edge pixels repeated past the border: the same values as PIL's
    ``MaxFilter(k)`` / ``MinFilter(k)``, as two 1-D passes (PIL's rank filter costs ~20 ms
    on a working-size mask, this well under 1 ms)."""
    r = k // 2
    padded = np.pad(mask, r, mode="edge")
    h, w = mask.shape
    rows = padded[:, :w].copy()
    for d in range(1, k):
        op(rows, padded[:, d:d + w], out=rows)
    out = rows[:h].copy()
    for d in range(1, k):
        op(out, rows[d:d + h], out=out)
    return out


def deform_mask(mask: np.ndarray, rng: np.random.Generator, frame_size: tuple[int, int] | None = None) -> np.ndarray:
    """A plausible previous-frame mask: shifted by a few pixels (2% of ``frame_size`` (h, w),
    default the mask's, per axis) and randomly dilated/eroded."""
    h, w = frame_size or mask.shape
    dy, dx = (rng.normal(0, 0.02, 2) * np.array([h, w])).round().astype(int)
    shifted = np.roll(mask, (dy, dx), axis=(0, 1)) > 0.5
    k = int(rng.choice([3, 5, 7]))
    return square_filter(shifted, k, np.maximum if rng.random() < 0.5 else np.minimum).astype(np.float32)


def augment(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator, cfg: FinetuneConfig, *,
            identity: bool, window: Region | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One training example from a working-size (h, w, 3) uint8 image and (h, w) float32 mask:
    (image uint8, target float32, prior float32), each (h, w) or, with ``window`` (x0, y0, x1,
    y1; working pixels), only that window of the augmented image (the same transform about
    the whole image's centre, computed for the window's pixels only)."""
    from PIL import Image

    frame_size = mask.shape
    x0, y0, x1, y1 = window if window is not None else (0, 0, mask.shape[1], mask.shape[0])
    if identity:
        image, mask = image[y0:y1, x0:x1], mask[y0:y1, x0:x1]
    else:
        a, b, c, d, e, f = _affine(mask.shape, rng, cfg)
        coeffs = (a, b, c + a * x0 + b * y0, d, e, f + d * x0 + e * y0)  # output pixel (u, v) is (u + x0, v + y0)
        size = (x1 - x0, y1 - y0)
        image = np.asarray(Image.fromarray(image).transform(size, Image.AFFINE, coeffs, Image.BILINEAR,
                                                            fillcolor=PAD_RGB))
        mask = np.asarray(Image.fromarray(mask.astype(np.float32), mode="F").transform(
            size, Image.AFFINE, coeffs, Image.BILINEAR))
        gain = rng.uniform(0.85, 1.15)
        # brightness gain and offset through a 256-entry table: the same float32 arithmetic
        # per value as on every pixel, without a float copy of the image
        table = np.clip(np.arange(256, dtype=np.float32) * gain + rng.uniform(-12, 12), 0, 255).astype(np.uint8)
        image = table[image]
    zero = not cfg.use_prior or rng.random() < cfg.zero_prior_fraction
    prior = np.zeros_like(mask, np.float32) if zero else deform_mask(mask, rng, frame_size)
    return image, mask.astype(np.float32), prior


def pool4(x: np.ndarray) -> np.ndarray:
    """(h, w) -> (h/4, w/4) mean over 4x4 blocks (h, w multiples of 4)."""
    h, w = x.shape
    return x.reshape(h // 4, 4, w // 4, 4).mean(axis=(1, 3), dtype=np.float32)


Progress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``: called as fine-tuning advances; stage is "features" (one
call per augmented example run through the engine) or "fit" (one call per optimiser step)."""

LOG_EVERY_STEPS = 50
"""Fine-tuning logs its loss at INFO level every this many steps."""


def feature_window(session: OsvosRunner, masks: Sequence[np.ndarray]) -> Region | None:
    """The working-image window (x0, y0, x1, y1; working pixels, corners and sides multiples
    of the graph's size multiple) covering every (H, W) annotated mask's motion gate
    (``gate_box`` at ``ROI_MARGIN``); the whole working image when that window would be most
    of it or a mask is empty; None when the bundle cannot run its trunk on a window (a
    static-size graph, or no trunk graph of its own)."""
    m = session.size_multiple
    if not session.has_trunk_graph:
        return None
    h, w = session.working
    if not all(mk.any() for mk in masks):
        return 0, 0, w, h
    x0, y0, x1, y1 = w, h, 0, 0
    for mask in masks:
        box = session.letterbox(*mask.shape[:2])
        sx, sy = box.rw / box.width, box.rh / box.height
        gx0, gy0, gx1, gy1 = gate_box(mask, ROI_MARGIN)
        x0, y0 = min(x0, int(gx0 * sx)), min(y0, int(gy0 * sy))
        x1, y1 = max(x1, math.ceil(gx1 * sx)), max(y1, math.ceil(gy1 * sy))
    x0, y0 = x0 // m * m, y0 // m * m
    x1, y1 = min(w, -(-x1 // m) * m), min(h, -(-y1 // m) * m)
    if (x1 - x0) * (y1 - y0) > FULL_FRAME_SHARE * w * h:
        return 0, 0, w, h
    return x0, y0, x1, y1


def build_examples(session: OsvosRunner, frames: Sequence[np.ndarray], masks: Sequence[np.ndarray],
                   cfg: FinetuneConfig, progress: Progress | None = None, *,
                   full_size: bool = False, reuse: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Augmented examples of the annotated (frame (H, W, 3) uint8, mask (H, W) {0,1}) pairs,
    run through the engine once. Returns float32 arrays: low (N, C_low, h/4, w/4), high
    (N, C_high, h/8, w/8), prior (N, 1, h/4, w/4), target (N, 1, h/4, w/4) in [0, 1]; with
    ``full_size`` also image (N, h, w, 3) uint8 and full-size prior/target (N, h, w) (for
    fine-tuning the whole network). Each example is written straight into its slot of the
    preallocated arrays: the backbone features are ~12 MB an example, and collecting copies
    to stack them at the end cost about a second per fine-tune.

    Where the bundle ships its trunk as a graph of its own (``OsvosRunner.has_trunk_graph``)
    and not ``full_size``, only the trunk runs (the same features, without the head's work);
    with ``cfg.crop_features`` too, the examples cover ``feature_window`` only (h, w above are
    that window's).

    ``reuse``: examples an earlier call made of the same single frame with the same seed and
    fewer augmentations (the quick start's): the augmentations are drawn in the same order, so
    they are this call's first examples, copied instead of run through the engine again."""
    if reuse is not None and len(frames) != 1:
        raise InvalidInput(f"reusing examples needs one annotated frame (the same augmentations come first), "
                           f"got {len(frames)}")
    reused = 0 if reuse is None else min(len(reuse["low"]), cfg.augmentations)
    window = None  # None: the whole graph on the whole working image (its low/high outputs)
    if not full_size and session.has_trunk_graph:  # the trunk alone: the head's work is not needed here
        window = feature_window(session, masks) if cfg.crop_features else (0, 0, session.working[1], session.working[0])
    rng = np.random.default_rng(cfg.seed)
    total = len(frames) * cfg.augmentations
    out: dict[str, np.ndarray] = {}
    i = 0
    for frame, mask in zip(frames, masks):
        base_img, base_mask = session.to_working_rgb(frame), session.to_working_mask(mask)
        for k in range(cfg.augmentations):
            img, target, prior = augment(base_img, base_mask, rng, cfg, identity=k == 0, window=window)
            if i < reused:
                example = {key: reuse[key][i] for key in reuse}
            elif window is None:
                res = session.run_working(img, prior)
                example = {"low": res["low"][0], "high": res["high"][0], "prior": pool4(prior)[None],
                           "target": pool4(target)[None]}
            else:
                feats = session.trunk_window(img)
                example = {"low": feats["low"][0], "high": feats["high"][0], "prior": pool4(prior)[None],
                           "target": pool4(target)[None]}
            if full_size:
                example.update(image=img, prior_full=prior, target_full=target)
            if not out:
                # small pages: a fresh ~200 MB of huge pages is seconds to touch on the VM (ivos.runtime.pages)
                out = {key: pages.empty((total, *v.shape), v.dtype) for key, v in example.items()}
            for key, value in example.items():
                out[key][i] = value
            i += 1
            if progress is not None:
                progress("features", i, total)
    return out


def crop_batch(data: dict, idx, crop: int, gen) -> dict:
    """Random aligned crops (``crop`` stride-4 px, ``crop // 2`` stride-8 px) of the examples
    ``idx``; half are centred near a random object pixel (when the example has one).

    ``data`` maps "low", "high", "prior", "target" to stacked (N, C, h, w) tensors, or to
    lists of N (C, h_i, w_i) tensors whose sizes differ (``fit_head`` on windows of several
    frames): the crop side is then the smallest example's when that is below ``crop``."""
    import torch

    stacked = not isinstance(data["low"], list)
    if stacked:
        h4, w4 = data["low"].shape[-2:]
        c = min(crop, h4, w4) // 2 * 2
        if crop <= 0 or c >= min(h4, w4):
            return {k: v[idx] for k, v in data.items()}
    else:
        c = min([crop] + [min(x.shape[-2:]) for x in data["low"]]) // 2 * 2
    out = {k: [] for k in data}
    for i in idx.tolist():
        h4, w4 = data["low"][i].shape[-2:]
        fg = torch.nonzero(data["target"][i][0] > 0.5) if torch.rand(1, generator=gen).item() < 0.5 else None
        if fg is not None and len(fg):
            cy, cx = fg[torch.randint(0, len(fg), (1,), generator=gen).item()].tolist()
        else:
            cy, cx = (torch.randint(0, h4, (1,), generator=gen).item(), torch.randint(0, w4, (1,), generator=gen).item())
        y = min(max(0, cy - c // 2), h4 - c) // 2 * 2
        x = min(max(0, cx - c // 2), w4 - c) // 2 * 2
        for k in ("low", "prior", "target"):
            out[k].append(data[k][i][:, y:y + c, x:x + c])
        out["high"].append(data["high"][i][:, y // 2:(y + c) // 2, x // 2:(x + c) // 2])
    return {k: torch.stack(v) for k, v in out.items()}


class HeadAdam:
    """Adam (Kingma & Ba; torch.optim.Adam's defaults: betas (0.9, 0.999), eps 1e-8, no weight
    decay) over a few leaf tensors. Not ``torch.optim.Adam`` because every ``torch.optim``
    optimizer imports ``torch._dynamo`` on first use (its methods are wrapped to keep dynamo
    out), 1.4 s of a 13 s ``ivos segment`` on a 2-core machine, for a head of 40 k weights."""

    BETAS = (0.9, 0.999)
    EPS = 1e-8

    def __init__(self, params, torch):
        self.params = list(params)
        self._torch = torch
        self._m = [torch.zeros_like(p) for p in self.params]
        self._v = [torch.zeros_like(p) for p in self.params]
        self._t = 0

    def step(self, lr: float) -> None:
        """One update with learning rate ``lr`` from the parameters' ``.grad``, then clears them."""
        b1, b2 = self.BETAS
        self._t += 1
        step_size = lr / (1.0 - b1 ** self._t)
        root_c2 = math.sqrt(1.0 - b2 ** self._t)
        with self._torch.no_grad():
            for p, m, v in zip(self.params, self._m, self._v):
                g = p.grad
                m.lerp_(g, 1.0 - b1)
                v.mul_(b2).addcmul_(g, g, value=1.0 - b2)
                p.addcdiv_(m, (v.sqrt() / root_c2).add_(self.EPS), value=-step_size)
                p.grad = None


def fit_head(examples: dict[str, np.ndarray] | list[dict[str, np.ndarray]], init: dict[str, np.ndarray],
             cfg: FinetuneConfig, progress: Progress | None = None) -> tuple[dict[str, np.ndarray], float]:
    """Adam on binary cross-entropy over the cached features. ``examples``: stacked arrays
    (``build_examples``) or a list of single examples of different sizes (each "low" (C_low,
    h, w), "high" (C_high, h/2, w/2), "prior" and "target" (1, h, w) float32; fitted on
    crops: ``crop_batch``). Returns (params, final loss: mean of the last 20 steps)."""
    torch = import_torch()
    import torch.nn.functional as F

    from .head import head_forward

    torch.set_num_threads(resolve_threads(cfg.threads))
    gen = torch.Generator().manual_seed(cfg.seed)
    keys = ("low", "high", "prior", "target")
    if isinstance(examples, dict):
        data = {k: torch.from_numpy(examples[k]) for k in keys}
    else:
        data = {k: [torch.from_numpy(e[k]) for e in examples] for k in keys}
    params = {k: torch.tensor(v, requires_grad=True) for k, v in init.items()}
    opt = HeadAdam(params.values(), torch)
    n = len(data["low"])
    losses = []
    for step in range(1, cfg.steps + 1):
        b = crop_batch(data, torch.randint(0, n, (cfg.batch,), generator=gen), cfg.crop, gen)
        loss = F.binary_cross_entropy_with_logits(head_forward(params, b["low"], b["high"], b["prior"]), b["target"])
        loss.backward()
        opt.step(cfg.lr_at(step))
        losses.append(loss.item())
        if step % LOG_EVERY_STEPS == 0:
            log.info("ivos: OSVOS fine-tune step %d/%d loss %.4f", step, cfg.steps, float(np.mean(losses[-LOG_EVERY_STEPS:])))
        if progress is not None:
            progress("fit", step, cfg.steps)
    final = float(np.mean(losses[-20:])) if losses else float("nan")
    return {k: v.detach().numpy().copy() for k, v in params.items()}, final


def finetune(session: OsvosRunner, frames: Sequence[np.ndarray], masks: Sequence[np.ndarray],
             cfg: FinetuneConfig, init: dict[str, np.ndarray] | None = None,
             progress: Progress | None = None, reuse: dict[str, np.ndarray] | None = None) -> FinetuneResult:
    """Fine-tunes the head (from ``init``, default the bundle's parent head) on the annotated
    frames; the session keeps its head unchanged (the caller sets the result). ``progress``
    is called as it advances (see ``Progress``); ``reuse``: see ``build_examples``."""
    import_torch()  # fail before spending time on features
    t0 = time.perf_counter()
    examples = build_examples(session, frames, masks, cfg, progress, reuse=reuse)
    t1 = time.perf_counter()
    params, loss = fit_head(examples, init if init is not None else session.parent_head, cfg, progress)
    t2 = time.perf_counter()
    log.info("ivos: OSVOS head fine-tuned on %d examples: features %.1f s, fit %.1f s, loss %.4f",
             len(examples["low"]), t1 - t0, t2 - t1, loss)
    return FinetuneResult(params, t2 - t0, t1 - t0, t2 - t1, len(examples["low"]), loss)
