"""Typed, frozen settings of the predictors: one place for every default and limit.

Here: the click settings (``ClickSettings``), the video settings (``PropagationSettings``) and
what they hold: the dense CRF (``CrfSettings``), OSVOS fine-tuning (``FinetuneConfig``), the
memory read (``MemorySettings``); the input limits (``MAX_IMAGE_PIXELS``, ``MAX_VIDEO_FRAMES``).
Each default lives once, here or in the bundle's ``postprocess`` card (checked when the
bundle is read, ``ivos.runtime.bundle``); ``ClickSettings.resolve`` / ``PropagationSettings.resolve``
take the bundle's values, override them with the caller's arguments and check every one,
so a predictor holds settings that are known to be valid.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from ._validate import crf_params as check_crf_params, flag, nonnegative_int, positive_float, positive_int
from .errors import InvalidInput, ModelError
from .image.geometry import MIN_ZOOM_SIDE, ZOOM_EXPANSION
from .ops.crf import CRF_DEFAULTS
from .runtime.bundle import Bundle, has_osvos_parts

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

FRAME_CRF_REACH = 2.0
"""How far (in units of the appearance kernel's ``sxy_bilateral``, original pixels) the box of
``ivos.postprocess.object_region`` is grown on every side by default: two standard deviations
of the kernel that carries the messages (its weight has fallen to e^-2 there). A bundle's card
may set its own (``propagation.crf_reach``)."""

NETWORK_CROP_CONTEXT = 0
"""Working pixels of image around the motion gate's box (``ivos.postprocess.gate_box``) that a
propagated frame's OSVOS network sees when its graph has a dynamic size
(``OsvosRunner.predict(window=...)``). The gate's box already reaches half the object's size
plus 10% of the frame beyond the object; DAVIS dev J was 0.844 / 0.845 / 0.843 with 0 / 64 /
128 more pixels and 0.842 on the whole frame (benchmarks/results/speed_frame_path.md)."""

REFOCUS_MIN_SIDE = 0.25
"""``ClickSettings.refocus_min_side``: the smallest side of the second, zoom-in look at a small
object first seen through the whole image, as a share of the image's longer side."""

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

PROPAGATIONS = ("bundle", "classic")
"""Named propagation recipes (``VideoPredictor(propagation=...)``, ``--propagation``):
"bundle" (the default): the OSVOS bundle's card (sections ``propagation``, ``finetune``,
``postprocess``); "classic": the propagation osvos-lite0 shipped before its card named the
memory mode (issue 25): "osvos+mask", the whole network per object on its motion gate,
``FinetuneConfig``'s defaults (150 steps, batch 8, 48-pixel crops, 16 augmentations of the
whole frame), the frame CRF at ``FRAME_CRF_MAX_PIXELS``, no online adaptation. Arguments
given explicitly override either."""


def _card_count(bundle: Bundle, card: dict[str, Any], key: str) -> int | None:
    """The card's ``propagation.<key>`` (an int >= 0), None when absent; ModelError naming it."""
    value = card.get(key)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise ModelError(f"{bundle.path / 'model.json'}: field 'propagation.{key}' must be an int >= 0, got {value!r}")
    return value


def unit_float(name: str, value: Any) -> float:
    """``value`` as a float in [0, 1]; InvalidInput naming ``name`` otherwise (booleans too)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
        raise InvalidInput(f"{name} must be a number in [0, 1], got {value!r}")
    return float(value)


# ---------------------------------------------------------------- video limits

MAX_VIDEO_FRAMES = 100_000
"""Longest video ``init_state`` accepts by default (over an hour at 25 fps). The state keeps per
frame a mask as RLE (about 1-10 KB at 480p), a 1 KB thumbnail and a confidence: about
0.2-1 GB at this limit. ``init_state(max_frames=None)`` lifts it."""


# ---------------------------------------------------------------- dense CRF

@dataclass(frozen=True)
class CrfSettings:
    """One dense-CRF configuration.

    Attributes:
        enabled: run it at all.
        params: every ``ivos.dense_crf`` keyword (``CRF_DEFAULTS`` overridden by a bundle's
            ``postprocess.crf_params`` and then by arguments).
        max_pixels: pixel budget; a larger region is refined at a lower resolution with the
            spatial scales (sxy) shrunk alike, then upsampled (the CRF costs ~linear time in
            pixels). None: no budget.
        threads: native worker threads (0 = the native ops' default); the predictors pass
            their model's thread count (``ivos.runtime.threads``: one policy for every pool).
    """

    enabled: bool
    params: dict[str, Any]
    max_pixels: int | None
    threads: int = 0

    @staticmethod
    def merged(enabled: bool, params: dict[str, Any] | None, max_pixels: int | None,
               threads: int = 0) -> "CrfSettings":
        """``params`` (checked keywords, possibly partial) over ``CRF_DEFAULTS``."""
        return CrfSettings(bool(enabled), {**CRF_DEFAULTS, **(params or {})}, max_pixels, threads)


# ---------------------------------------------------------------- OSVOS fine-tuning

SCHEDULES = ("constant", "cosine")
"""Learning-rate schedules of ``FinetuneConfig.schedule``."""

BUNDLE_KEYS = ("steps", "batch", "lr", "augmentations", "max_scale", "max_rotate", "max_shift",
               "zero_prior_fraction", "crop", "schedule", "crop_features", "quick_steps", "quick_augmentations",
               "quick_frames")
"""``FinetuneConfig`` fields an OSVOS bundle's card may set (its ``finetune`` section): the
recipe its network was tuned with. Mode, threads and seed stay the caller's."""

MAX_EXAMPLES = 48
"""Cap on fine-tuning examples (annotated frames x augmentations), see ``FinetuneConfig.for_frames``."""


@dataclass(frozen=True)
class FinetuneConfig:
    """Fine-tuning knobs. An OSVOS bundle's card may carry its network's recipe (``finetune``:
    any of ``BUNDLE_KEYS``), which ``for_bundle`` puts over these defaults; the predictors use
    it unless given a config. The defaults are osvos-lite0's recipe, chosen on the held-aside
    DAVIS train sequences (``python -m ivos.bench.finetune_sweep``,
    benchmarks/results/finetune_sweep.md): 150 cosine-decayed steps on 48-pixel crops match the
    J of 300 constant-LR steps on 64-pixel crops (0.884 vs 0.879) in a third of the time.

    Attributes:
        steps: Adam steps on the head.
        batch: examples per step.
        lr: Adam learning rate.
        augmentations: augmented copies per annotated frame (the first is the frame itself).
        max_scale: scale jitter, uniform in [1/max_scale, max_scale].
        max_rotate: rotation jitter in degrees, uniform in [-max_rotate, max_rotate].
        max_shift: translation jitter as a fraction of the working size.
        use_prior: train with deformed-mask priors ("osvos+mask" mode) or zero priors ("osvos").
        zero_prior_fraction: share of examples with a zero prior even when use_prior (so the
            head still finds the object from appearance when the previous mask lost it).
        crop: side of the random training crops, in stride-4 feature pixels (64 = 256 working
            pixels; 0 = whole maps). The head sees a small neighbourhood, so crops train it
            as well as whole maps at a fraction of the cost; half of them hold an object pixel.
        schedule: learning-rate schedule over the steps: "constant" (``lr`` throughout) or
            "cosine" (from ``lr`` down to 0, half a cosine period).
        threads: torch intra-op threads during fine-tuning (0 = one per CPU this process may
            use, ``ivos.runtime.threads``).
        seed: augmentation and batch-order seed.
        crop_features: run the trunk only on the annotated objects' motion-gate window
            (``ivos.postprocess.gate_box`` at ``ROI_MARGIN``, sides rounded out to the graph's
            size multiple) instead of the whole working image; needs a bundle with its trunk
            as a graph of its own (``ivos.runtime.bundle.has_osvos_parts``), ignored otherwise.
            Propagation runs the network on the same kind of window, so the head trains on
            what it will see, at the cost of the window's pixels only.
        quick_steps, quick_augmentations, quick_frames: a quick start of propagation (0 steps:
            off). An object fine-tuned by ``propagate_in_video`` first gets a head fitted
            ``quick_steps`` steps on its first ``quick_augmentations`` examples, which
            segments the first ``quick_frames`` propagated frames; then the whole fine-tune
            runs (reusing those examples' features where one frame is annotated) and its head
            serves the rest of the run and stays with the object. The first frames appear
            after a fraction of the fine-tune's time; the total grows by the quick fit.
    """

    steps: int = 150
    batch: int = 8
    lr: float = 2e-3
    augmentations: int = 16
    max_scale: float = 1.2
    max_rotate: float = 10.0
    max_shift: float = 0.08
    use_prior: bool = True
    zero_prior_fraction: float = 0.25
    crop: int = 48
    schedule: str = "cosine"
    threads: int = 0
    seed: int = 0
    crop_features: bool = False
    quick_steps: int = 0
    quick_augmentations: int = 4
    quick_frames: int = 1

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise InvalidInput(f"FinetuneConfig.schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        for name, least in (("quick_steps", 0), ("quick_augmentations", 1), ("quick_frames", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise InvalidInput(f"FinetuneConfig.{name} must be an int >= {least}, got {value!r}")

    @property
    def quick(self) -> "FinetuneConfig | None":
        """The quick start's own config (``quick_steps`` steps on ``quick_augmentations``
        copies), None when the quick start is off."""
        if self.quick_steps == 0:
            return None
        return replace(self, steps=self.quick_steps, augmentations=min(self.quick_augmentations, self.augmentations),
                       quick_steps=0)

    @staticmethod
    def for_bundle(bundle: Any, **overrides: Any) -> "FinetuneConfig":
        """The OSVOS ``bundle``'s ``finetune`` recipe over the defaults, then ``overrides``
        (e.g. threads, use_prior). ModelError naming the field when the card's section is not
        an object of ``BUNDLE_KEYS`` with values of the fields' types."""
        card = bundle.path / "model.json"
        section = bundle.card.get("finetune") or {}
        if not isinstance(section, dict):
            raise ModelError(f"{card}: field 'finetune' must be an object, got {section!r}")
        recipe = {}
        for key, value in section.items():
            if key not in BUNDLE_KEYS:
                raise ModelError(f"{card}: field 'finetune.{key}' is not a fine-tuning setting a bundle sets; "
                                 f"known: {', '.join(BUNDLE_KEYS)}")
            kind = type(getattr(FinetuneConfig, key))
            if not _is_kind(value, kind):
                expected = "a string" if kind is str else f"a {kind.__name__}"
                raise ModelError(f"{card}: field 'finetune.{key}' must be {expected}, got {value!r}")
            recipe[key] = kind(value)
        try:
            config = FinetuneConfig(**recipe)
        except InvalidInput as e:  # from __post_init__: the card is at fault here
            raise ModelError(f"{card}: field 'finetune': {e}") from None
        return replace(config, **overrides)

    def lr_at(self, step: int) -> float:
        """The learning rate of optimiser step ``step`` (1-based)."""
        if self.schedule == "cosine":
            return self.lr * 0.5 * (1.0 + math.cos(math.pi * (step - 1) / max(self.steps, 1)))
        return self.lr

    def for_frames(self, n_frames: int) -> "FinetuneConfig":
        """This config with ``augmentations`` lowered so that ``n_frames`` annotated frames
        give at most ``MAX_EXAMPLES`` examples (at least 4 per frame): re-fine-tuning after
        many corrections stays inside the same time budget."""
        per_frame = max(4, min(self.augmentations, MAX_EXAMPLES // max(n_frames, 1)))
        return self if per_frame == self.augmentations else replace(self, augmentations=per_frame)


def _is_kind(value: Any, kind: type) -> bool:
    """Whether a JSON ``value`` can stand for a ``kind`` (str, bool, int or float) field: a
    string for str, true/false for bool; for numbers no booleans, and a whole number for int
    (3.0 is 3, 2.5 is not)."""
    if kind is str:
        return isinstance(value, str)
    if kind is bool:
        return isinstance(value, bool)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return kind is float or float(value).is_integer()


# ---------------------------------------------------------------- memory read

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
        warp: warp the neighbouring frame's mask by optical flow (``ivos.video.flow``) before
            the head reads it as its prior; False: the mask as it is (as "osvos+mask" does).
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
    warp: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.warp, bool):
            raise InvalidInput(f"MemorySettings.warp must be True or False, got {self.warp!r}")
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


# ---------------------------------------------------------------- click and video settings

class _Default:
    """Marks an argument left at its default where None has a meaning of its own."""

    def __init__(self, name: str):
        self._name = name

    def __repr__(self) -> str:
        return self._name


DEFAULT_IMAGE_LIMIT: Any = _Default("MAX_IMAGE_PIXELS")

DEFAULT: Any = _Default("the default of ivos.settings")
"""A predictor argument left at the default this module holds (``ROI_MARGIN``,
``NETWORK_CROP_CONTEXT``, ``FRAME_CRF_MAX_PIXELS``): the signatures name it instead of repeating
the value, and None keeps its own meaning (no gating, the whole frame)."""

ROI_MARGIN = 0.5
"""Motion gate of "osvos+mask" propagation: the previous mask's box grown by this fraction of
its size on each side bounds where the object can be on the next frame."""


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
        crf_min_area: the CRF runs only when the mask before it covers at least this share
            of the image (0: always); below, the network's mask stands. ivos-lite0's card sets
            0.05: on the COCO128 held-aside set the CRF cost small objects clicks (NoC@90
            14.37 -> 13.61 with the gate, objects of 1-5% of the image 11.65 -> 10.55) while
            the held-aside BSDS objects (all above 2%) moved 8.98 -> 9.12; reported, not
            chosen on: GrabCut 3.06 -> 3.02, Berkeley 4.84 -> 5.17
            (benchmarks/results/click_coco.md).
        refocus_below: when a prediction's view is the whole image (the first click, or
            an object lost since) and its mask covers less than this share of the image,
            the network looks again through a zoom-in view around that mask and the clicks,
            its first mask carried in (0: off). ivos-lite0's card sets 0.05: with the CRF gate at
            0.05 it lowered the union of the held-aside sets' NoC@90 12.80 -> 12.71 (COCO128
            13.61 -> 13.49, mIoU@1 0.386 -> 0.416; BSDS 9.12 both) for one more network run on
            a small object's first click (benchmarks/results/click_coco.md).
        refocus_min_side: that second view's smallest side, as a share of the image's longer
            side (and at least ``min_zoom_side`` pixels).
    """

    crf: CrfSettings
    flip: bool
    soft_strokes: bool
    zoom: bool
    min_zoom_side: int
    zoom_expansion: float
    max_image_pixels: int | None
    crf_min_area: float = 0.0
    refocus_below: float = 0.0
    refocus_min_side: float = REFOCUS_MIN_SIDE

    @staticmethod
    def resolve(bundle: Bundle, *, crf: bool | None = None, crf_params: dict[str, Any] | None = None,
                flip: bool | None = None, soft_strokes: bool = False, zoom: bool = True,
                min_zoom_side: int | None = None, zoom_expansion: float | None = None,
                max_image_pixels: Any = DEFAULT_IMAGE_LIMIT, threads: int = 0,
                crf_min_area: float | None = None, refocus_below: float | None = None,
                refocus_min_side: float | None = None) -> "ClickSettings":
        """The bundle's ``postprocess`` (crf, crf_params, flip, crf_min_area, refocus_below,
        refocus_min_side) and the module defaults, overridden by the arguments that are not
        None; InvalidInput naming a bad one. ``threads``: the CRF's native threads (the
        model's, ``Model.threads``)."""
        post = bundle.postprocess
        shares = {}
        for key, value, default in (("crf_min_area", crf_min_area, 0.0), ("refocus_below", refocus_below, 0.0),
                                    ("refocus_min_side", refocus_min_side, REFOCUS_MIN_SIDE)):
            shares[key] = unit_float(key, post.get(key, default) if value is None else value)
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
                                                                                max_image_pixels),
            **shares)


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
        crf_reach: the frame CRF runs on the object's box grown by this many ``sxy_bilateral``
            on every side (``ivos.postprocess.object_region``; default ``FRAME_CRF_REACH``).
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
    crf_reach: float = FRAME_CRF_REACH

    @property
    def use_prior(self) -> bool:
        return self.mode in ("osvos+mask", "memory")

    @property
    def use_memory(self) -> bool:
        return self.mode == "memory"

    @staticmethod
    def resolve(bundle: Bundle, *, mode: str | None = None, crf: bool | None = None,
                crf_params: dict[str, Any] | None = None, roi_margin: float | None = DEFAULT,
                finetune_config: FinetuneConfig | None = None, threads: int = 0,
                crop_context: int | None = DEFAULT, crf_max_pixels: int = DEFAULT,
                memory: MemorySettings | None = None,
                working_size: tuple[int, int] | None = None, adapt_every: int | None = None,
                adapt_steps: int | None = None, propagation: str = "bundle",
                crf_reach: float | None = None) -> "PropagationSettings":
        """The OSVOS bundle's ``postprocess`` (crf, crf_params) overridden by the arguments
        that are not None; InvalidInput naming a bad one. Without ``finetune_config``, the
        bundle's fine-tuning recipe (``FinetuneConfig.for_bundle``). ``threads`` (the OSVOS model's,
        ``Model.threads``) goes to the frame CRF and to fine-tuning unless the config sets its
        own: one thread count for every pool (``ivos.runtime.threads``). ``propagation``: one
        of ``PROPAGATIONS`` ("classic" ignores the card's ``propagation`` and ``finetune``)."""
        if propagation not in PROPAGATIONS:
            raise InvalidInput(f"propagation must be one of {PROPAGATIONS}, got {propagation!r}")
        classic = propagation == "classic"
        card = {} if classic else bundle.card.get("propagation") or {}
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
        roi_margin = ROI_MARGIN if roi_margin is DEFAULT else roi_margin
        crop_context = NETWORK_CROP_CONTEXT if crop_context is DEFAULT else crop_context
        if crf_max_pixels is DEFAULT:
            crf_max_pixels = _card_count(bundle, card, "crf_max_pixels") or FRAME_CRF_MAX_PIXELS
        if roi_margin is not None:
            roi_margin = positive_float("roi_margin", roi_margin)
        if crop_context is not None:
            crop_context = nonnegative_int("crop_context", crop_context)
        crf_max_pixels = positive_int("crf_max_pixels", crf_max_pixels)
        if finetune_config is not None and not isinstance(finetune_config, FinetuneConfig):
            raise InvalidInput(f"finetune_config must be an ivos.FinetuneConfig, got {type(finetune_config).__name__}")
        if memory is not None and not isinstance(memory, MemorySettings):
            raise InvalidInput(f"memory must be an ivos.settings.MemorySettings, got {type(memory).__name__}")
        steps = _card_count(bundle, card, "finetune_steps") if mode == "memory" else None
        if finetune_config is not None:
            finetune = finetune_config
        elif classic:
            finetune = FinetuneConfig(use_prior=mode != "osvos")
        else:
            finetune = FinetuneConfig.for_bundle(bundle, use_prior=mode != "osvos",
                                                 **({} if steps is None else {"steps": steps}))
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
        if crf_reach is None:
            crf_reach = card.get("crf_reach", FRAME_CRF_REACH)
            if isinstance(crf_reach, bool) or not isinstance(crf_reach, (int, float)) or not crf_reach > 0:
                raise ModelError(f"{bundle.path / 'model.json'}: field 'propagation.crf_reach' must be a number > 0, "
                                 f"got {crf_reach!r}")
        crf_reach = positive_float("crf_reach", crf_reach)
        if memory is None:
            memory = MemorySettings() if classic else MemorySettings.for_bundle(bundle)
        return PropagationSettings(mode, CrfSettings.merged(enabled, params, crf_max_pixels, threads),
                                   roi_margin, finetune, crop_context, memory,
                                   None if working is None else (working[0], working[1]), crf_reach=crf_reach,
                                   **adapt)
