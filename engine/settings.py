"""Typed, frozen settings of the predictors: one place for every default.

Each default lives once, here or in the bundle's ``postprocess`` card (checked when the
bundle is read, ``ivos.runtime.bundle``); ``ClickSettings.resolve`` / ``PropagationSettings.resolve``
take the bundle's values, override them with the caller's arguments and check every one,
so a predictor holds settings that are known to be valid.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from ._validate import crf_params as check_crf_params, flag, nonnegative_int, positive_float, positive_int
from .runtime.bundle import Bundle, has_osvos_parts
from .errors import InvalidInput, ModelError
from .image.geometry import MIN_ZOOM_SIDE, ZOOM_EXPANSION
from .video.memory_read import MemorySettings
from .video.osvos.finetune import FinetuneConfig
from .postprocess import CrfSettings

CLICK_CRF_MAX_PIXELS = 160_000
"""Pixel budget of the CRF per click (``CrfSettings.max_pixels``). A larger region (the full
view of a big frame) is refined at a lower resolution: a click must stay interactive at
1080p."""

FRAME_CRF_MAX_PIXELS = CLICK_CRF_MAX_PIXELS
"""Pixel budget of the CRF per propagated frame, the same as a click's: the CRF runs on the
object's region (``ivos.postprocess.object_region``), refined at a lower resolution when that
is larger (the network's logits come at stride 4 of a 480x864 working size, coarser still).
On the five held-aside DAVIS train sequences J was 0.8834 with this budget vs 0.8839 with
1 MP, at 0.70x the time per frame (p50; 0.8814 at 80k pixels; benchmarks/results/speed_frame_path.md)."""

NETWORK_CROP_CONTEXT = 0
"""Working pixels of image around the motion gate's box (``ivos.postprocess.gate_box``) that a
propagated frame's OSVOS network sees when its graph has a dynamic size
(``OsvosRunner.predict(window=...)``). The gate's box already reaches half the object's size
plus 10% of the frame beyond the object; DAVIS dev J was 0.844 / 0.845 / 0.843 with 0 / 64 /
128 more pixels and 0.842 on the whole frame (benchmarks/results/speed_frame_path.md)."""

MAX_IMAGE_PIXELS = 50_000_000
"""Largest image (height x width) ``ImagePredictor.set_image`` accepts unless the predictor
is created with ``max_image_pixels=`` (None = no limit). 50 megapixels admits every common
camera and video frame (8K UHD is 33 MP, a 48 MP phone photo 8064x6048 = 48.8 MP) and bounds a
click's cost: measured with ``ivos-cpu`` (int8, CRF on) on a 2-core VM, a click's peak memory
grows by about 19 MiB per megapixel (0.9 GiB at 48 MP) and takes 2-3.5 s at 48 MP, while a
20000 x 20000 image (400 MP) took 129 s and 9 GB per click. Besides, every click kept for
``undo`` holds its mask and probabilities: 5 bytes per pixel (240 MB per click at 48 MP)."""

MODES = ("osvos", "osvos+mask", "memory")
"""Propagation modes: every frame on its own (the paper's OSVOS), with the neighbouring
frame's mask as a prior (MaskTrack-style), or "memory": that prior warped by optical flow
plus a memory read of the annotated and confidently propagated frames
(``ivos.video.memory_propagation.MemoryRun``)."""


DEFAULT_MODE = "osvos+mask"
"""The propagation mode of a bundle whose card names none (``propagation.mode``)."""


def _card_count(bundle: Bundle, card: dict[str, Any], key: str) -> int | None:
    """The card's ``propagation.<key>`` (an int >= 0), None when absent; ModelError naming it."""
    value = card.get(key)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise ModelError(f"{bundle.path / 'model.json'}: field 'propagation.{key}' must be an int >= 0, got {value!r}")
    return value


class _Default:
    """Marks an argument left at its default where None has a meaning of its own."""

    def __init__(self, name: str):
        self._name = name

    def __repr__(self) -> str:
        return self._name


DEFAULT_IMAGE_LIMIT: Any = _Default("MAX_IMAGE_PIXELS")


@dataclass(frozen=True)
class ClickSettings:
    """How ``ImagePredictor`` (and video clicks) turn clicks into a mask.

    Attributes:
        crf: dense CRF on the view's region (``CLICK_CRF_MAX_PIXELS`` budget).
        flip: also run the mirrored view and average the two logit maps.
        soft_strokes: strokes guide the network but their pixels are not clamped.
        zoom: zoom in around the mask after the first click (RITM/FocalClick style).
        min_zoom_side: smallest zoom-in view side, original pixels.
        zoom_expansion: zoom-in view side / side of the mask-and-clicks box, in [1, 10].
        max_image_pixels: largest image accepted (None: no limit).
    """

    crf: CrfSettings
    flip: bool
    soft_strokes: bool
    zoom: bool
    min_zoom_side: int
    zoom_expansion: float
    max_image_pixels: int | None

    @staticmethod
    def resolve(bundle: Bundle, *, crf: bool | None = None, crf_params: dict[str, Any] | None = None,
                flip: bool | None = None, soft_strokes: bool = False, zoom: bool = True,
                min_zoom_side: int | None = None, zoom_expansion: float | None = None,
                max_image_pixels: Any = DEFAULT_IMAGE_LIMIT, threads: int = 0) -> "ClickSettings":
        """The bundle's ``postprocess`` (crf, crf_params, flip) and the module defaults,
        overridden by the arguments that are not None; InvalidInput naming a bad one.
        ``threads``: the CRF's native threads (the model's, ``Model.threads``)."""
        post = bundle.postprocess
        enabled = bool(post.get("crf", False)) if crf is None else flag("crf", crf)
        params = check_crf_params("crf_params", dict(post.get("crf_params", {})) if crf_params is None
                                  else crf_params)
        expansion = ZOOM_EXPANSION if zoom_expansion is None else positive_float("zoom_expansion", zoom_expansion)
        if not 1.0 <= expansion <= 10.0:
            raise InvalidInput(f"zoom_expansion must be in [1, 10], got {zoom_expansion!r}")
        if isinstance(max_image_pixels, _Default):
            max_image_pixels = MAX_IMAGE_PIXELS
        return ClickSettings(
            crf=CrfSettings.merged(enabled, params, CLICK_CRF_MAX_PIXELS, threads),
            flip=bool(post.get("flip", False)) if flip is None else flag("flip", flip),
            soft_strokes=flag("soft_strokes", soft_strokes),
            zoom=flag("zoom", zoom),
            min_zoom_side=MIN_ZOOM_SIDE if min_zoom_side is None else positive_int("min_zoom_side", min_zoom_side),
            zoom_expansion=expansion,
            max_image_pixels=None if max_image_pixels is None else positive_int("max_image_pixels",
                                                                                max_image_pixels))


@dataclass(frozen=True)
class PropagationSettings:
    """How ``VideoPredictor`` propagates masks through a video.

    Defaults come from the OSVOS bundle's card, section ``propagation``: ``mode`` (else
    ``DEFAULT_MODE``), ``memory`` (``MemorySettings`` fields: its head was trained for them) and
    ``finetune_steps`` (the memory mode's fine-tuning steps; 0: the parent head as it is) and
    ``working_size`` (the memory mode's).

    Attributes:
        mode: "memory", "osvos+mask" (the neighbouring frame's mask is a prior) or "osvos".
        memory: the memory read's knobs (memory mode).
        adapt_every, adapt_steps, adapt_min_confidence: online adaptation
            (``ivos.video.propagation.OnlineAdaptation``): every ``adapt_every`` frames (0: off) the
            heads are tuned ``adapt_steps`` more steps on the annotated frames plus the latest
            propagated frames of confidence >= ``adapt_min_confidence``.
        working_size: (height, width) the memory mode letterboxes frames into (the card's
            ``propagation.working_size``: the size its heads were trained at); None: the
            bundle's ``working_size``.
        crf: dense CRF on each propagated frame (its ``max_pixels``: ``crf_max_pixels`` of
            ``resolve``, default ``FRAME_CRF_MAX_PIXELS``).
        roi_margin: with a prior, zero the probability farther than this many times the
            prior mask's box size (plus 10% of the frame size) outside that box; None: off.
        finetune: fine-tuning knobs of the per-object OSVOS heads.
        crop_context: with the motion gate on and a dynamic-size OSVOS graph, the network
            runs on the gate's box plus this many working pixels of context instead of the
            whole frame; None: always the whole frame.
    """

    mode: str
    crf: CrfSettings
    roi_margin: float | None
    finetune: FinetuneConfig
    crop_context: int | None = NETWORK_CROP_CONTEXT
    memory: MemorySettings = MemorySettings()
    working_size: tuple[int, int] | None = None
    adapt_every: int = 0
    adapt_steps: int = 30
    adapt_min_confidence: float = 0.9

    @property
    def use_prior(self) -> bool:
        return self.mode in ("osvos+mask", "memory")

    @property
    def use_memory(self) -> bool:
        return self.mode == "memory"

    @staticmethod
    def resolve(bundle: Bundle, *, mode: str | None = None, crf: bool | None = None,
                crf_params: dict[str, Any] | None = None, roi_margin: float | None = 0.5,
                finetune_config: FinetuneConfig | None = None, threads: int = 0,
                crop_context: int | None = NETWORK_CROP_CONTEXT,
                crf_max_pixels: int = FRAME_CRF_MAX_PIXELS,
                memory: MemorySettings | None = None,
                working_size: tuple[int, int] | None = None, adapt_every: int | None = None,
                adapt_steps: int | None = None) -> "PropagationSettings":
        """The OSVOS bundle's ``postprocess`` (crf, crf_params) overridden by the arguments
        that are not None; InvalidInput naming a bad one. Without ``finetune_config``, the
        bundle's fine-tuning recipe (``FinetuneConfig.for_bundle``). ``threads`` (the OSVOS model's,
        ``Model.threads``) goes to the frame CRF and to fine-tuning unless the config sets its
        own: one thread count for every pool (``ivos.runtime.threads``)."""
        card = bundle.card.get("propagation") or {}
        if not isinstance(card, dict):
            raise ModelError(f"{bundle.path / 'model.json'}: field 'propagation' must be an object, got {card!r}")
        if mode is None:
            mode = card.get("mode", DEFAULT_MODE)
            if mode not in MODES:
                raise ModelError(f"{bundle.path / 'model.json'}: field 'propagation.mode' must be one of {MODES}, "
                                 f"got {mode!r}")
        if mode not in MODES:
            raise InvalidInput(f"mode must be one of {MODES}, got {mode!r}")
        if mode == "memory" and not has_osvos_parts(bundle):
            raise ModelError(f"mode 'memory' needs an OSVOS bundle that ships its trunk and head graphs; "
                             f"{bundle.name} ({bundle.path}) has none: python -m ivos.export.osvos_split "
                             f"{bundle.path} adds them")
        post = bundle.postprocess
        enabled = bool(post.get("crf", False)) if crf is None else flag("crf", crf)
        params = check_crf_params("crf_params", dict(post.get("crf_params", {})) if crf_params is None
                                  else crf_params)
        if roi_margin is not None:
            roi_margin = positive_float("roi_margin", roi_margin)
        if crop_context is not None:
            crop_context = nonnegative_int("crop_context", crop_context)
        crf_max_pixels = positive_int("crf_max_pixels", crf_max_pixels)
        if finetune_config is not None and not isinstance(finetune_config, FinetuneConfig):
            raise InvalidInput(f"finetune_config must be an ivos.FinetuneConfig, got {type(finetune_config).__name__}")
        if memory is not None and not isinstance(memory, MemorySettings):
            raise InvalidInput(f"memory must be an ivos.video.memory_read.MemorySettings, got {type(memory).__name__}")
        steps = _card_count(bundle, card, "finetune_steps") if mode == "memory" else None
        finetune = finetune_config or FinetuneConfig.for_bundle(
            bundle, use_prior=mode != "osvos", **({} if steps is None else {"steps": steps}))
        if finetune.threads == 0 and threads > 0:
            finetune = replace(finetune, threads=threads)
        working = (list(working_size) if working_size is not None else card.get("working_size")) \
            if mode == "memory" else None
        if working is not None and not (isinstance(working, list) and len(working) == 2 and all(
                isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in working)):
            raise ModelError(f"{bundle.path / 'model.json'}: field 'propagation.working_size' must be [height, width] "
                             f"positive ints, got {working!r}")
        adapt = {}  # the arguments, else the card's, else the defaults
        for key, value in (("adapt_every", adapt_every), ("adapt_steps", adapt_steps)):
            value = _card_count(bundle, card, key) if value is None else nonnegative_int(key, value)
            if value is not None:
                adapt[key] = value
        return PropagationSettings(mode, CrfSettings.merged(enabled, params, crf_max_pixels, threads),
                                   roi_margin, finetune, crop_context,
                                   MemorySettings.for_bundle(bundle) if memory is None else memory,
                                   None if working is None else (working[0], working[1]), **adapt)
