"""Training-free memory read (STM/XMem style) on the OSVOS trunk's frozen features.

Why: a one-shot head fine-tuned on the annotated frame learns that frame's appearance and
little else; on unseen footage it loses objects that turn, deform or meet look-alikes. A
memory read asks, for every position of the current frame, which positions of the memory
frames (the annotated ones and confidently propagated ones) look the same, and reads out the
masks stored with them: the object's identity comes from matching, not from weights.

Keys: the trunk's ``high`` features (stride 8 of the working image; for osvos-lite0 the
ImageNet EfficientNet-Lite0 stride-8/16/32 maps, 472 channels), centred and projected on
the ``KEY_DIMS`` leading principal axes of the first annotated frame's features (fitted per
video: training-free, and a match costs ``KEY_DIMS`` multiply-adds instead of 472), averaged
over 2x2 cells (``KEY_STRIDE`` = 16 working pixels: 30x53 keys for a whole 480p frame) and
L2-normalised (cosine similarity). A bundle may ship a learned projection instead
(``artifacts.memory_projection``, ``training.memory_projection``: held-out readout IoU +0.07 to
+0.10 over the per-video axes, benchmarks/results/video_cv.md). Keys cover where the network
ran: the whole working image or the crop around the objects' motion gates
(``OsvosRunner.trunk``), so a grid has an origin. Values: the share of each key cell the memory frame's mask covers. A
memory frame keeps the keys near its object only (its motion gate's box): far background
adds cost, and the query side is gated to the object's reach anyway.

Readout: for each query key the ``top_k`` most similar memory keys, softmax-weighted with
temperature ``temperature``, give the foreground probability (XMem's top-k read).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

KEY_DIMS = 64
"""Dimensions of the projected keys."""

KEY_STRIDE = 16
"""Working pixels per key cell: 2x2 cells of the stride-8 features."""

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class MemorySettings:
    """Knobs of the memory read (chosen by cross-validation, ``training.video_cv``).

    Attributes:
        top_k: memory keys read per query key.
        temperature: softmax temperature over cosine similarities.
        weight: share of the readout in the fused probability
            (``(1 - weight) * head + weight * readout``).
        prior_weight: share of the flow-warped previous mask in the fused probability
            (``(1 - weight - prior_weight) * head + weight * readout + prior_weight * warped``):
            a head fine-tuned on one frame's appearance overrides a good temporal prior under
            fast motion and turns.
        veto_below: where the readout is below this, the object is not there: the fused
            probability is zeroed (look-alike distractors the head takes for the object); 0: off.
        prior_readout: share of the readout in the head's prior
            (``(1 - prior_readout) * warped mask + prior_readout * readout``); the head must be
            trained for it (``training.video_cv train --prior-readout``).
        every: a propagated frame joins the memory every ``every`` frames when confident.
        min_confidence: the propagated frame's confidence needed to join.
        capacity: most propagated frames kept (oldest dropped; annotated frames always stay).
    """

    top_k: int = 20
    temperature: float = 0.05
    weight: float = 0.3
    prior_weight: float = 0.0
    veto_below: float = 0.0
    prior_readout: float = 0.0
    every: int = 5
    min_confidence: float = 0.8
    capacity: int = 4

    def __post_init__(self) -> None:
        from ..errors import InvalidInput

        for name in ("top_k", "every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidInput(f"MemorySettings.{name} must be an int >= 1, got {value!r}")
        if isinstance(self.capacity, bool) or not isinstance(self.capacity, int) or self.capacity < 0:
            raise InvalidInput(f"MemorySettings.capacity must be an int >= 0, got {self.capacity!r}")
        if not (isinstance(self.temperature, (int, float)) and 0 < self.temperature < float("inf")):
            raise InvalidInput(f"MemorySettings.temperature must be a number > 0, got {self.temperature!r}")
        if self.weight + self.prior_weight > 1.0:
            raise InvalidInput(f"MemorySettings.weight + prior_weight must be <= 1, "
                               f"got {self.weight} + {self.prior_weight}")
        for name in ("weight", "prior_weight", "veto_below", "prior_readout", "min_confidence"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise InvalidInput(f"MemorySettings.{name} must be a number in [0, 1], got {value!r}")

    @staticmethod
    def for_bundle(bundle) -> "MemorySettings":
        """The OSVOS bundle's ``propagation.memory`` card section over the defaults (its head
        was trained for its ``prior_readout``). ModelError naming the field when it is bad."""
        from ..errors import InvalidInput, ModelError

        section = (bundle.card.get("propagation") or {}).get("memory") or {}
        where = bundle.path / "model.json"
        if not isinstance(section, dict):
            raise ModelError(f"{where}: field 'propagation.memory' must be an object, got {section!r}")
        known = MemorySettings.__dataclass_fields__
        unknown = sorted(set(section) - set(known))
        if unknown:
            raise ModelError(f"{where}: field 'propagation.memory' has unknown keys {unknown}; "
                             f"known: {', '.join(known)}")
        try:
            return MemorySettings(**section)
        except InvalidInput as e:
            raise ModelError(f"{where}: field 'propagation.memory': {e}") from None


@dataclass(frozen=True)
class Projection:
    """Centring + principal axes of one frame's stride-8 features (``fit``)."""

    mean: np.ndarray   # (C,) float32
    axes: np.ndarray   # (KEY_DIMS, C) float32

    @staticmethod
    def fit(high: np.ndarray, dims: int = KEY_DIMS) -> "Projection":
        """From (C, h8, w8) float32 features: the ``dims`` eigenvectors of largest eigenvalue
        of their channel covariance."""
        x = high.reshape(high.shape[0], -1).astype(np.float64)
        mean = x.mean(axis=1)
        centred = x - mean[:, None]
        _, vecs = np.linalg.eigh(centred @ centred.T)
        return Projection(mean.astype(np.float32), np.ascontiguousarray(vecs[:, ::-1][:, :dims].T, np.float32))


@dataclass(frozen=True)
class FrameKeys:
    """Keys of one frame on a grid of ``KEY_STRIDE`` working pixels.

    Attributes:
        keys: (gh * gw, KEY_DIMS) float32 unit rows, row-major over the grid.
        grid: (gh, gw).
        origin: (x0, y0) working pixels of the grid's top-left corner.
    """

    keys: np.ndarray
    grid: tuple[int, int]
    origin: tuple[int, int]

    @staticmethod
    def of(high: np.ndarray, origin: tuple[int, int], valid: tuple[int, int], projection: Projection) -> "FrameKeys":
        """From (C, hc/8, wc/8) features whose top-left is at ``origin`` (working pixels);
        ``valid``: (rows, cols) working pixels the frame fills (the letterbox), so no key
        covers padding."""
        x0, y0 = origin
        gh = min(high.shape[1] * 8, valid[0] - y0) // KEY_STRIDE
        gw = min(high.shape[2] * 8, valid[1] - x0) // KEY_STRIDE
        gh, gw = max(gh, 1), max(gw, 1)
        f = high[:, :gh * 2, :gw * 2]
        z = projection.axes @ (f.reshape(f.shape[0], -1) - projection.mean[:, None])   # (d, n8)
        z = z.reshape(-1, gh, 2, gw, 2).mean(axis=(2, 4)).reshape(z.shape[0], -1).T  # (n, d)
        z /= np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-6)
        return FrameKeys(np.ascontiguousarray(z, np.float32), (gh, gw), origin)

    def values(self, working_mask: np.ndarray) -> np.ndarray:
        """(n,) float32: the share of each cell a (h, w) working-size {0,1} mask covers."""
        (gh, gw), (x0, y0) = self.grid, self.origin
        block = working_mask[y0:y0 + gh * KEY_STRIDE, x0:x0 + gw * KEY_STRIDE]
        return block.reshape(gh, KEY_STRIDE, gw, KEY_STRIDE).mean(axis=(1, 3)).reshape(-1).astype(np.float32)

    def inside(self, box: Box) -> np.ndarray:
        """(n,) bool: the cells whose centre lies in ``box`` (x0, y0, x1, y1; working pixels)."""
        (gh, gw), (x0, y0) = self.grid, self.origin
        cy = y0 + (np.arange(gh) + 0.5) * KEY_STRIDE
        cx = x0 + (np.arange(gw) + 0.5) * KEY_STRIDE
        rows = (cy >= box[1]) & (cy < box[3])
        cols = (cx >= box[0]) & (cx < box[2])
        return (rows[:, None] & cols[None, :]).reshape(-1)

    def to_working(self, cell_values: np.ndarray, working: tuple[int, int]) -> np.ndarray:
        """(n,) values on the grid -> (h/4, w/4) float32 on the working image's stride-4 grid
        (bilinear inside the grid, 0 outside it)."""
        from PIL import Image

        (gh, gw), (x0, y0) = self.grid, self.origin
        s = KEY_STRIDE // 4
        out = np.zeros((working[0] // 4, working[1] // 4), np.float32)
        up = Image.fromarray(cell_values.reshape(gh, gw).astype(np.float32), mode="F").resize(
            (gw * s, gh * s), Image.BILINEAR)
        out[y0 // 4:y0 // 4 + gh * s, x0 // 4:x0 // 4 + gw * s] = np.asarray(up)
        return out


@dataclass
class ObjectMemory:
    """One object's memory frames: keys and mask values, fixed ones (annotated) and a
    bounded FIFO of propagated ones."""

    fixed: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    recent: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    def add(self, idx: int, keys: np.ndarray, values: np.ndarray, *, annotated: bool, capacity: int) -> None:
        """Frame ``idx``'s (m, d) keys and (m,) values; a propagated frame beyond ``capacity``
        pushes the oldest propagated one out."""
        self.recent.pop(idx, None)
        if annotated:
            self.fixed[idx] = (keys, values)
            return
        self.recent[idx] = (keys, values)
        while len(self.recent) > capacity:
            self.recent.pop(next(iter(self.recent)))

    def __len__(self) -> int:
        return len(self.fixed) + len(self.recent)

    def read(self, query: np.ndarray, settings: MemorySettings) -> np.ndarray:
        """(n, d) unit query keys -> (n,) float32 foreground probability read from memory."""
        entries = list(self.fixed.values()) + list(self.recent.values())
        keys = np.concatenate([k for k, _ in entries])
        values = np.concatenate([v for _, v in entries])
        sim = query @ keys.T                                   # (n, m) cosine similarities
        m = sim.shape[1]
        k = min(settings.top_k, m)
        if k < m:
            kth = np.partition(sim, m - k, axis=1)[:, m - k][:, None]
            sim = np.where(sim >= kth, sim, -np.inf)
        sim -= sim.max(axis=1, keepdims=True)
        w = np.exp(sim / settings.temperature)
        return ((w @ values) / w.sum(axis=1)).astype(np.float32)
