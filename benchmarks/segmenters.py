"""Network methods as ``Segmenter``s (``ivos.evaluation.noc``): ``ivos.ImagePredictor``s loaded
from a bundle, wrapped in ``PredictorSegmenter`` (which lives in the runtime,
``ivos.evaluation.segmenter``, since int8 calibration uses it too; importable from here as well).
"""
from __future__ import annotations

from ivos.evaluation.segmenter import PredictorSegmenter

__all__ = ["PredictorSegmenter", "image_predictor", "load_model_segmenters", "parse_variant"]


def image_predictor(model, **settings):
    """``ivos.ImagePredictor(model, **settings)``, with the Table-1 ablation encoding
    (``ivos.evaluation.distmap``) for bundles that encode clicks as distance maps."""
    import ivos

    kind = (model.bundle.click_encoding or {}).get("kind", "gaussian")
    if kind == "distmap":
        from ivos.evaluation.distmap import encoder

        settings["click_encoder"] = encoder
    return ivos.ImagePredictor(model, **settings)


def load_model_segmenters(bundle: str, *, backend: str, crf_modes: list[bool], precision: str = "auto",
                          flip_modes: list[bool | None] = (None,), threads: int = 0, named: bool = False,
                          variants: dict[str, dict] | None = None) -> tuple[list[PredictorSegmenter], str]:
    """Loads ``bundle`` once and returns one segmenter per flip and CRF mode ("model" without
    CRF, "model+crf" with; "+flip" added for an explicit flip=True when ``flip_modes`` holds
    both settings; the bundle's name instead of "model" when ``named``), each with its own
    predictor so their cached images never mix, plus the name of the backend that actually
    runs (``Model.backend``). A flip mode of None keeps the bundle's default. ``variants``
    (name -> ``ImagePredictor`` keyword overrides, e.g. the settings before a change) adds the
    same rows once more per variant, named ``<base>/<name>`` and evaluated on the same model."""
    import ivos

    model = ivos.load(bundle, backend=backend, precision=precision, threads=threads)
    base = model.bundle.name if named else "model"
    mark_flip = len(set(flip_modes)) > 1
    segs = [PredictorSegmenter(image_predictor(model, flip=flip, crf=crf, **overrides),
                               name=base + suffix + ("+flip" if flip and mark_flip else "") + ("+crf" if crf else ""))
            for suffix, overrides in [("", {})] + [(f"/{k}", v) for k, v in (variants or {}).items()]
            for flip in flip_modes for crf in crf_modes]
    return segs, str(getattr(model, "backend", backend))


def parse_variant(text: str) -> tuple[str, dict]:
    """``NAME:KEY=VALUE[,KEY=VALUE...]`` (values as JSON: numbers, true/false, null) ->
    (name, ``ImagePredictor`` keyword overrides); ValueError naming what is wrong."""
    import json

    name, sep, body = text.partition(":")
    if not sep or not name or "/" in name:
        raise ValueError(f"a variant is NAME:KEY=VALUE[,KEY=VALUE...], got {text!r}")
    overrides = {}
    for item in filter(None, body.split(",")):
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise ValueError(f"variant {name!r}: {item!r} is not KEY=VALUE")
        try:
            overrides[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            raise ValueError(f"variant {name!r}: the value of {key.strip()!r} must be JSON (a number, true, false, "
                             f"null), got {value!r}") from None
    return name, overrides
