"""``OsvosSession``: one OSVOS bundle context (bound buffers) plus the frame <-> working-size
geometry. Used by ``VideoPredictor`` (per-frame propagation) and by fine-tuning (backbone
features of augmented frames, read from the same graph's ``low``/``high`` outputs).

Geometry: a frame (H, W) is letterboxed into the working size (h, w): scaled by
``s = min(h / H, w / W)`` (aspect ratio kept), placed at the top-left corner, the rest padded
with the ImageNet mean (0 after normalisation). Logits come at stride 4 of the working size;
the valid region is resized straight back to (H, W).

Not thread-safe (one per thread); the ``Model`` behind it is shared.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import InvalidInput
from .model import Model
from .osvos_head import check_head_params
from .views import PAD_RGB, Normaliser, sigmoid


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


class OsvosSession:
    """Runs an OSVOS bundle (task "osvos") with a settable head.

    Args:
        model: from ``ivos.load(<osvos bundle>)``.
    """

    def __init__(self, model: Model):
        bundle = model.bundle
        if bundle.task != "osvos":
            raise InvalidInput(f"model must be an OSVOS bundle (task 'osvos'), got task {bundle.task!r}")
        self.model = model
        info = bundle.card.get("osvos", {})
        self.low_channels, self.high_channels = int(info["low_channels"]), int(info["high_channels"])
        self.working = bundle.working_size
        self._ctx = model.create_context()
        self._normaliser = Normaliser(bundle.mean, bundle.std)
        self.parent_head = self._load_parent()
        self._bound: dict[str, np.ndarray] | None = None
        self.bind_head(self.parent_head)

    def close(self) -> None:
        """Frees the run context's buffers (device memory on CUDA)."""
        self._ctx.close()

    def _load_parent(self) -> dict[str, np.ndarray]:
        with np.load(self.model.bundle.artifact("head_parent")) as z:
            return check_head_params(dict(z), self.low_channels, self.high_channels)

    def set_head(self, params: dict[str, np.ndarray]) -> None:
        """Copies head weights (name -> float32 array, ``ivos.osvos_head.head_param_shapes``)
        into the bound graph inputs (no re-export, no rebuild). Always copies."""
        checked = check_head_params(params, self.low_channels, self.high_channels)
        for name, value in checked.items():
            self._ctx.inputs[name][...] = value
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
        out[...] = PAD_RGB
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

    def predict(self, frame: np.ndarray, prior_mask: np.ndarray | None, *,
                working_rgb: np.ndarray | None = None) -> np.ndarray:
        """(H, W, 3) uint8 frame (+ optional (H, W) previous mask) -> (H, W) float32 probability.
        ``working_rgb``: the frame's ``to_working_rgb``, when already made (several objects
        of one frame share it)."""
        box = self.letterbox(*frame.shape[:2])
        prior = None if prior_mask is None else self.to_working_mask(prior_mask)
        out = self.run_working(self.to_working_rgb(frame) if working_rgb is None else working_rgb, prior,
                               fetch=("logits",))
        return self.logits_to_frame(out["logits"][0, 0], box)
