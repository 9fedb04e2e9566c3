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

from ..settings import MemorySettings

KEY_DIMS = 64
"""Dimensions of the projected keys."""

KEY_STRIDE = 16
"""Working pixels per key cell: 2x2 cells of the stride-8 features."""

Box = tuple[int, int, int, int]


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
