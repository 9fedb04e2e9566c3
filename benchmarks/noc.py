"""The click-based evaluation loop (RITM protocol, NoC@85/90): moved to the runtime,
``ivos.evaluation.noc`` (int8 calibration runs it too, and ``ivos.export`` must not import
``ivos.bench``). These names stay importable from here for existing callers."""
from ivos.evaluation.noc import MethodResult, SampleResult, Segmenter, aggregate, evaluate, evaluate_sample, iou

__all__ = ["MethodResult", "SampleResult", "Segmenter", "aggregate", "evaluate", "evaluate_sample", "iou"]
