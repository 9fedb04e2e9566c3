"""``OsvosRunner``: one OSVOS bundle context (bound buffers) plus the frame <-> working-size
geometry. Used by ``VideoPredictor`` (per-frame propagation) and by fine-tuning (backbone
features of augmented frames, read from the same graph's ``low``/``high`` outputs).

Geometry: a frame (H, W) is letterboxed into the working size (h, w): scaled by
``s = min(h / H, w / W)`` (aspect ratio kept), placed at the top-left corner, the rest padded
with the ImageNet mean (0 after normalisation). Logits come at stride 4 of the working size;
the valid region is resized straight back to (H, W).

Crops: a bundle whose graph has dynamic height and width (card ``osvos.size_multiple``) can
run on a window of the working image instead of all of it (``predict(window=...)``): the
window grown by ``context`` working pixels, aligned outward to the size multiple. The
network's cost is about linear in pixels, and propagation needs the probability only where
the object can have moved (``ivos.postprocess.gate_box``). Logits outside the crop are
NEGATIVE_LOGIT. The crop's border changes the deep features near it (their receptive field
sees the crop's edge instead of the frame); the motion gate's box already keeps that border
away from the object (``ivos.settings.NETWORK_CROP_CONTEXT``).

Not thread-safe (one per thread); the ``Model`` behind it is shared.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from ...errors import InvalidInput
from ...image.crops import PAD_RGB, Normaliser, sigmoid
from ...postprocess import Region
from ...runtime.backends.base import RunContext
from ...runtime.bundle import has_osvos_parts, osvos_dims
from ...runtime.model import Model
from .head import check_head_params

NEGATIVE_LOGIT = -30.0
"""The logit given to the working image outside a crop: probability ~1e-13, background."""

HEAD_WINDOW_CONTEXT = 16
"""Working pixels a head window (``OsvosRunner.head_window``) reaches past its object's gate:
the head's 3x3 layers see 2 stride-4 cells and its upsampled stride-8 input one more, so the
window's zero padding stays out of the gate (and a gate on the frame's edge reaches the
crop's edge, seeing the letterbox padding as the whole-crop run does)."""

CROP_CONTEXTS = 4
"""Run contexts kept for crop sizes (least recently used dropped first): consecutive frames
of a video mostly reuse a crop size (``OsvosRunner.crop_for`` keeps the previous one while
the window fits)."""

FULL_FRAME_SHARE = 0.8
"""A crop of more than this share of the working size runs the full working size instead:
too little to save for one more context's memory."""



@dataclass(frozen=True)
class Letterbox:
    """Where a (height, width) frame lands in the working size: the top-left (rh, rw) region."""

    height: int
    width: int
    rh: int
    rw: int

    @staticmethod
    def fit(height: int, width: int, working: tuple[int, int]) -> "Letterbox":
        s = min(working[0] / height, working[1] / width)
        return Letterbox(height, width, max(1, min(working[0], round(height * s))),
                         max(1, min(working[1], round(width * s))))


@dataclass(frozen=True)
class Features:
    """The trunk's features of one run (``OsvosRunner.trunk``): low (1, C_low, hc/4, wc/4) and
    high (1, C_high, hc/8, wc/8) float32 of the crop (x0, y0, x1, y1; working pixels)."""

    low: np.ndarray
    high: np.ndarray
    crop: Region

    def window(self, region: Region) -> "Features":
        """The features of ``region`` (x0, y0, x1, y1; working pixels inside ``crop``, offsets
        from its origin multiples of 8): views, no copy."""
        x0, y0, x1, y1 = region
        ox, oy = self.crop[:2]
        if (x0 - ox) % 8 or (y0 - oy) % 8 or (x1 - ox) % 8 or (y1 - oy) % 8:
            raise ValueError(f"window {region} is not on the stride-8 grid of the crop {self.crop}")
        return Features(self.low[:, :, (y0 - oy) // 4:(y1 - oy) // 4, (x0 - ox) // 4:(x1 - ox) // 4],
                        self.high[:, :, (y0 - oy) // 8:(y1 - oy) // 8, (x0 - ox) // 8:(x1 - ox) // 8], region)


def _place_window(need: Region, bounds: Region, multiple: int, grid: int,
                  last: tuple[int, int] | None) -> Region | None:
    """The window (x0, y0, x1, y1) of ``bounds`` that a network part runs on to cover ``need``
    (its x0, y0 already on the ``grid`` from the bounds' origin): sides multiples of
    ``multiple`` (at least two), or ``last`` (width, height) while ``need`` fits in it and it is
    at most two multiples larger (one run context, no new shapes); centred on ``need`` in steps
    of ``grid``, moved inside ``bounds``. None when it would be most of ``bounds``
    (``FULL_FRAME_SHARE``). ``crop_for`` and ``head_window`` place their windows with it."""
    x0, y0, x1, y1 = need
    bx0, by0, bx1, by1 = bounds
    m = multiple
    need_w, need_h = max(x1 - x0, 2 * m), max(y1 - y0, 2 * m)
    cw, ch = min(bx1 - bx0, -(-need_w // m) * m), min(by1 - by0, -(-need_h // m) * m)
    if last is not None and need_w <= last[0] <= min(cw + 2 * m, bx1 - bx0) \
            and need_h <= last[1] <= min(ch + 2 * m, by1 - by0):
        cw, ch = last
    if cw * ch > FULL_FRAME_SHARE * (bx1 - bx0) * (by1 - by0):
        return None
    # centred: at most x0 (the left edge stays covered), at least x1 - cw (the right edge too)
    wx0 = min(max(bx0, x0 - (cw - (x1 - x0)) // (2 * grid) * grid), bx1 - cw)
    wy0 = min(max(by0, y0 - (ch - (y1 - y0)) // (2 * grid) * grid), by1 - ch)
    return wx0, wy0, wx0 + cw, wy0 + ch


class OsvosRunner:
    """Runs an OSVOS bundle (task "osvos") with a settable head.

    Args:
        model: from ``ivos.load(<osvos bundle>)``.
        working_size: (height, width) frames are letterboxed into (multiples of the graph's
            size multiple; dynamic-size graphs only); None: the bundle's ``working_size``.

    Attributes:
        size_multiple: crops' sides are multiples of this (working pixels); None when the
            graph's size is static (no crops: ``predict`` ignores ``window``).
        has_trunk_graph: the trunk runs alone, on any window of the working image (``trunk``,
            ``trunk_window``): a dynamic-size bundle that ships its trunk and head as graphs of
            their own.
    """

    def __init__(self, model: Model, working_size: tuple[int, int] | None = None):
        bundle = model.bundle
        if bundle.task != "osvos":
            raise InvalidInput(f"model must be an OSVOS bundle (task 'osvos'), got task {bundle.task!r}")
        self.model = model
        info = bundle.card.get("osvos", {})
        self.low_channels, self.high_channels = int(info["low_channels"]), int(info["high_channels"])
        self.size_multiple: int | None = int(info.get("size_multiple", 32)) if bundle.has_dynamic_dims else None
        if working_size is not None and tuple(working_size) != tuple(bundle.working_size):
            if self.size_multiple is None or any(v <= 0 or v % self.size_multiple for v in working_size):
                raise InvalidInput(f"working_size must be positive multiples of {self.size_multiple} for "
                                   f"{bundle.name}, got {working_size!r}" if self.size_multiple else
                                   f"{bundle.name} has a static graph size: working_size must be {bundle.working_size}")
        self.working = tuple(working_size) if working_size is not None else bundle.working_size
        self.has_trunk_graph = self.size_multiple is not None and has_osvos_parts(bundle)
        self._ctx = model.create_context(osvos_dims(*self.working) if self.size_multiple else None)
        self._crops: OrderedDict[tuple[int, int], list] = OrderedDict()  # (h, w) -> [context, head version]
        self._part_ctx: OrderedDict[tuple[int, int], tuple[RunContext, RunContext]] = OrderedDict()
        self._last_crop: Region | None = None
        self._normaliser = Normaliser(bundle.mean, bundle.std)
        self._head_version = 0  # bumped by set_head; a crop context holding an older one copies the head
        self.parent_head = self._load_parent()
        self._bound: dict[str, np.ndarray] | None = None
        self.bind_head(self.parent_head)

    def close(self) -> None:
        """Frees the run contexts' buffers (device memory on CUDA)."""
        self._ctx.close()
        for ctx, _ in self._crops.values():
            ctx.close()
        self._crops.clear()
        for pair in self._part_ctx.values():
            for ctx in pair:
                ctx.close()
        self._part_ctx.clear()

    def _load_parent(self) -> dict[str, np.ndarray]:
        with np.load(self.model.bundle.artifact("head_parent")) as z:
            return check_head_params(dict(z), self.low_channels, self.high_channels)

    def set_head(self, params: dict[str, np.ndarray]) -> None:
        """Copies head weights (name -> float32 array, ``ivos.video.osvos.head.head_param_shapes``)
        into the bound graph inputs (no re-export, no rebuild). Always copies."""
        checked = check_head_params(params, self.low_channels, self.high_channels)
        for name, value in checked.items():
            self._ctx.inputs[name][...] = value
        self._head_version += 1  # crop contexts copy it from here when they next run
        self._bound = None

    def bind_head(self, params: dict[str, np.ndarray]) -> None:
        """Makes ``params`` the head the next runs use, copying only when a different dict
        than the last ``bind_head``'s is bound: an identity check (about 1 us) when it is
        the same, a copy otherwise (0.1 MB for osvos-cpu). For callers that treat a head dict
        as immutable once bound (``VideoState`` keeps read-only arrays): ``VideoPredictor``
        binds the state's head before every frame, so states propagated alternately on one
        session each run with their own head. The session keeps a reference to the dict, so
        its id cannot be reused while bound; ``set_head`` (always a copy) forgets it."""
        if params is self._bound:
            return
        self.set_head(params)
        self._bound = params

    # ---- geometry ----------------------------------------------------------------------
    def letterbox(self, height: int, width: int) -> Letterbox:
        return Letterbox.fit(height, width, self.working)

    def to_working_rgb(self, frame: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 -> (h, w, 3) uint8 letterboxed working image."""
        from PIL import Image

        box = self.letterbox(*frame.shape[:2])
        out = np.empty((*self.working, 3), np.uint8)
        out[box.rh:] = PAD_RGB
        out[:box.rh, box.rw:] = PAD_RGB
        if (box.rh, box.rw) == frame.shape[:2]:  # 480p into 480x864: no resampling
            out[:box.rh, :box.rw] = frame
        else:
            out[:box.rh, :box.rw] = np.asarray(Image.fromarray(frame).resize((box.rw, box.rh), Image.BILINEAR))
        return out

    def to_working_mask(self, mask: np.ndarray) -> np.ndarray:
        """(H, W) {0,1} -> (h, w) float32 {0,1} letterboxed (0 in the padding)."""
        from PIL import Image

        box = self.letterbox(*mask.shape[:2])
        out = np.zeros(self.working, np.float32)
        small = Image.fromarray(mask.astype(np.uint8) * np.uint8(255)).resize((box.rw, box.rh), Image.BILINEAR)
        out[:box.rh, :box.rw] = np.asarray(small) > 127
        return out

    def logits_to_frame(self, logits: np.ndarray, box: Letterbox) -> np.ndarray:
        """(h/4, w/4) float32 logits -> (H, W) float32 foreground probability."""
        from PIL import Image

        region = (0.0, 0.0, box.rw / 4.0, box.rh / 4.0)
        up = Image.fromarray(np.ascontiguousarray(logits, np.float32), mode="F").resize(
            (box.width, box.height), Image.BILINEAR, box=region)
        return sigmoid(np.asarray(up))

    def crop_for(self, window: Region, box: Letterbox, context: int) -> Region | None:
        """The crop (x0, y0, x1, y1; working pixels, sides multiples of ``size_multiple``) the
        network runs on to cover ``window`` (x0, y0, x1, y1 in frame pixels) with ``context``
        working pixels around it, or None for the full working size (no dynamic size, or the
        crop would be most of it). The previous crop's size is kept while the window fits in
        it (one run context, no new shapes), its position moved to cover the window."""
        if self.size_multiple is None:
            return None
        m, (h, w) = self.size_multiple, self.working
        sx, sy = box.rw / box.width, box.rh / box.height
        # the left/top edges on the logits' stride-4 grid (pasted back at stride 4)
        x0 = max(0, int(window[0] * sx) - context) // 4 * 4
        y0 = max(0, int(window[1] * sy) - context) // 4 * 4
        x1 = min(box.rw, math.ceil(window[2] * sx) + context)
        y1 = min(box.rh, math.ceil(window[3] * sy) + context)
        last = self._last_crop
        self._last_crop = _place_window((x0, y0, x1, y1), (0, 0, w, h), m, 4,
                                        None if last is None else (last[2] - last[0], last[3] - last[1]))
        return self._last_crop

    def head_window(self, gate: Region, box: Letterbox, features: Region,
                    last: tuple[int, int] | None = None) -> Region | None:
        """The window of ``features`` (a trunk run's crop, x0, y0, x1, y1; working pixels) that
        one object's head needs to cover its ``gate`` (x0, y0, x1, y1; frame pixels) and
        ``HEAD_WINDOW_CONTEXT`` working pixels around it (as far as the crop goes): sides
        multiples of ``size_multiple``, offsets from the crop's origin multiples of 8 (the
        high features' stride), centred on the gate, inside the crop. ``last`` (width,
        height): the object's previous window size, kept while the gate fits in it (one run
        context, as ``crop_for`` keeps its size). None: the whole crop (the window would be
        most of it, or the graph has no dynamic size)."""
        if self.size_multiple is None:
            return None
        m = self.size_multiple
        fx0, fy0, fx1, fy1 = features
        sx, sy = box.rw / box.width, box.rh / box.height
        c = HEAD_WINDOW_CONTEXT
        x0 = fx0 + (max(fx0, int(gate[0] * sx) - c) - fx0) // 8 * 8
        y0 = fy0 + (max(fy0, int(gate[1] * sy) - c) - fy0) // 8 * 8
        x1, y1 = min(fx1, math.ceil(gate[2] * sx) + c), min(fy1, math.ceil(gate[3] * sy) + c)
        return _place_window((x0, y0, x1, y1), features, m, 8, last)

    def _crop_context(self, height: int, width: int) -> RunContext:
        """The run context for a (height, width) crop, holding the current head."""
        entry = self._crops.pop((height, width), None)
        if entry is None:
            entry = [self.model.create_context(osvos_dims(height, width)), -1]
            if len(self._crops) >= CROP_CONTEXTS:
                _, (old, _) = self._crops.popitem(last=False)
                old.close()
        self._crops[(height, width)] = entry
        ctx, version = entry
        if version != self._head_version:
            for name in self.parent_head:  # the head's input names
                ctx.inputs[name][...] = self._ctx.inputs[name]
            entry[1] = self._head_version
        return ctx

    # ---- running -----------------------------------------------------------------------
    def run_working(self, image: np.ndarray, prior: np.ndarray | None,
                    fetch: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
        """Runs the graph on a working-size (h, w, 3) uint8 image and (h, w) prior (None =
        zeros). Returns the bound output buffers (logits, low, high; only ``fetch`` when
        given: on a GPU the others stay on the device): reused by the next run, copy what
        you keep."""
        self._normaliser.into(image, self._ctx.inputs["image"][0])
        self._ctx.inputs["prior"][0, 0] = 0.0 if prior is None else prior
        return self._ctx.run(fetch=fetch)

    def _crop_logits(self, image: np.ndarray, prior: np.ndarray | None, crop: Region) -> np.ndarray:
        """(h/4, w/4) float32 logits of the working image: the network run on ``crop`` of
        ``image`` (h, w, 3) uint8 and ``prior`` (h, w) (None = zeros), NEGATIVE_LOGIT elsewhere."""
        x0, y0, x1, y1 = crop
        ctx = self._crop_context(y1 - y0, x1 - x0)
        self._normaliser.into(image[y0:y1, x0:x1], ctx.inputs["image"][0])
        ctx.inputs["prior"][0, 0] = 0.0 if prior is None else prior[y0:y1, x0:x1]
        logits = np.full((self.working[0] // 4, self.working[1] // 4), NEGATIVE_LOGIT, np.float32)
        logits[y0 // 4:y1 // 4, x0 // 4:x1 // 4] = ctx.run(fetch=("logits",))["logits"][0, 0]
        return logits

    def predict(self, frame: np.ndarray, prior_mask: np.ndarray | None, *,
                working_rgb: np.ndarray | None = None, window: Region | None = None,
                context: int = 0) -> np.ndarray:
        """(H, W, 3) uint8 frame (+ optional (H, W) previous mask) -> (H, W) float32 probability.

        Args:
            working_rgb: the frame's ``to_working_rgb``, when already made (several objects
                of one frame share it).
            window: (x0, y0, x1, y1; frame pixels, exclusive ends) where the probability is
                needed: with a dynamic-size graph the network runs on a crop around it
                (``crop_for``) and the probability outside the crop is ~0. None: the full frame.
            context: working pixels of image kept around ``window`` in the crop.
        """
        box = self.letterbox(*frame.shape[:2])
        prior = None if prior_mask is None else self.to_working_mask(prior_mask)
        image = self.to_working_rgb(frame) if working_rgb is None else working_rgb
        crop = None if window is None else self.crop_for(window, box, context)
        if crop is None:
            logits = self.run_working(image, prior, fetch=("logits",))["logits"][0, 0]
        else:
            logits = self._crop_logits(image, prior, crop)
        return self.logits_to_frame(logits, box)

    # ---- the split graphs (trunk once per frame, a head per object) --------------------------
    def trunk(self, image: np.ndarray, crop: Region | None) -> "Features":
        """Runs the bundle's trunk graph (``ivos.runtime.bundle.osvos_part``) on ``crop`` (x0, y0, x1,
        y1; working pixels, from ``crop_for``) of the (h, w, 3) uint8 working image, or all of
        it (None). Returns copies of the features with the crop's origin."""
        h, w = self.working
        x0, y0, x1, y1 = crop if crop is not None else (0, 0, w, h)
        out = self.trunk_window(image[y0:y1, x0:x1])
        return Features(np.array(out["low"]), np.array(out["high"]), (x0, y0, x1, y1))

    def trunk_window(self, window: np.ndarray) -> dict[str, np.ndarray]:
        """The trunk graph's bound outputs ("low" (1, C_low, hc/4, wc/4), "high" (1, C_high,
        hc/8, wc/8) float32; reused by the next run of that size, copy what you keep) for an
        (hc, wc, 3) uint8 window of a working image, sides multiples of ``size_multiple``."""
        trunk_ctx, _ = self._part_contexts(*window.shape[:2])
        self._normaliser.into(window, trunk_ctx.inputs["image"][0])
        return trunk_ctx.run(fetch=("low", "high"))

    def head_logits(self, features: "Features", prior: np.ndarray | None, head: dict[str, np.ndarray]) -> np.ndarray:
        """(h/4, w/4) float32 logits of the working image from the head graph with ``head``'s
        weights on ``features`` and the (h, w) float32 working-size ``prior`` in [0, 1] (None
        = zeros); NEGATIVE_LOGIT outside the features' crop."""
        x0, y0, x1, y1 = features.crop
        _, head_ctx = self._part_contexts(y1 - y0, x1 - x0)
        inputs = head_ctx.inputs
        inputs["low"][...] = features.low
        inputs["high"][...] = features.high
        inputs["prior"][0, 0] = 0.0 if prior is None else prior[y0:y1, x0:x1]
        for name, value in head.items():
            inputs[name][...] = value
        logits = np.full((self.working[0] // 4, self.working[1] // 4), NEGATIVE_LOGIT, np.float32)
        logits[y0 // 4:y1 // 4, x0 // 4:x1 // 4] = head_ctx.run(fetch=("logits",))["logits"][0, 0]
        return logits

    def _part_contexts(self, height: int, width: int) -> tuple[RunContext, RunContext]:
        """(trunk, head) run contexts for a (height, width) crop, least recently used dropped."""
        entry = self._part_ctx.pop((height, width), None)
        if entry is None:
            dims = osvos_dims(height, width)
            entry = (self.model.part("trunk").create_context(dims), self.model.part("head").create_context(dims))
            if len(self._part_ctx) >= CROP_CONTEXTS:
                for ctx in self._part_ctx.popitem(last=False)[1]:
                    ctx.close()
        self._part_ctx[(height, width)] = entry
        return entry

    def working_map_to_frame(self, values: np.ndarray, height: int, width: int) -> np.ndarray:
        """(h/4, w/4) float32 values on the working image's stride-4 grid -> (height, width)
        float32 on the frame, bilinear (``logits_to_frame`` without the sigmoid)."""
        from PIL import Image

        box = self.letterbox(height, width)
        region = (0.0, 0.0, box.rw / 4.0, box.rh / 4.0)
        up = Image.fromarray(np.ascontiguousarray(values, np.float32), mode="F").resize(
            (width, height), Image.BILINEAR, box=region)
        return np.asarray(up, np.float32)
