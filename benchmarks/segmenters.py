"""Network methods as ``Segmenter``s (``ivos.evaluation.noc``): ``ivos.ImagePredictor``s loaded
from a bundle, wrapped in ``PredictorSegmenter`` (which lives in the runtime,
``ivos.evaluation.segmenter``, since int8 calibration uses it too; importable from here as well).
"""
from __future__ import annotations

from ivos.evaluation.segmenter import PredictorSegmenter

__all__ = ["PredictorSegmenter", "image_predictor", "load_model_segmenters"]


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
                          flip_modes: list[bool | None] = (None,), threads: int = 0, named: bool = False
                          ) -> tuple[list[PredictorSegmenter], str]:
    """Loads ``bundle`` once and returns one segmenter per flip and CRF mode ("model" without
    CRF, "model+crf" with; "+flip" added for an explicit flip=True when ``flip_modes`` holds
    both settings; the bundle's name instead of "model" when ``named``), each with its own
    predictor so their cached images never mix, plus the name of the backend that actually
    runs (``Model.backend``). A flip mode of None keeps the bundle's default."""
    import ivos

    model = ivos.load(bundle, backend=backend, precision=precision, threads=threads)
    base = model.bundle.name if named else "model"
    mark_flip = len(set(flip_modes)) > 1
    segs = [PredictorSegmenter(image_predictor(model, flip=flip, crf=crf),
                               name=base + ("+flip" if flip and mark_flip else "") + ("+crf" if crf else ""))
            for flip in flip_modes for crf in crf_modes]
    return segs, str(getattr(model, "backend", backend))
