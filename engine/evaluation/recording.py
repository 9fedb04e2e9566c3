"""The network inputs of simulated click sessions, recorded as the runtime binds them.

``ivos-export int8`` calibrates its quantization on them, and the int8-vs-float agreement
checks (``ivos.bench.int8_isa``, ``tests/engine/test_int8.py``) compare the two networks on
them: the float bundle runs the evaluation's simulated user (``ivos.evaluation.noc``) through
``ivos.ImagePredictor``, and every bound (image, mask, clicks) input the predictor hands the
network is copied. So the inputs cover first-click full views, zoom-in views and
previous-mask inputs alike.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

from ..image.predictor import ImagePredictor
from ..runtime.backends import RunContext, Runner
from ..runtime.model import Model, load
from .noc import evaluate_sample
from .segmenter import PredictorSegmenter


class _RecordingContext(RunContext):
    """Delegates to a real context and keeps a copy of the inputs of every run."""

    def __init__(self, inner: RunContext, sink: list[dict[str, np.ndarray]]):
        self._inner, self._sink = inner, sink
        self.inputs = inner.inputs
        self._init_outputs(inner.outputs)

    def _run(self, fetch: tuple[str, ...]) -> None:
        self._sink.append({k: v.copy() for k, v in self.inputs.items()})
        self._inner.run(fetch)

    def _release(self) -> None:
        self._inner.close()


class _RecordingRunner(Runner):
    """A runner whose contexts record their inputs into ``self.recorded``."""

    def __init__(self, inner: Runner):
        super().__init__(inner.input_specs, inner.output_specs)
        self._inner = inner
        self.name, self.device, self.precision = inner.name, inner.device, inner.precision
        self.recorded: list[dict[str, np.ndarray]] = []

    def _create_context(self, dims: Mapping[str, int]) -> RunContext:
        return _RecordingContext(self._inner.create_context(dims), self.recorded)


def record_calibration_inputs(bundle_dir: str | Path, samples: Iterable, *, clicks_per_sample: int = 4,
                              threads: int = 0) -> list[dict[str, np.ndarray]]:
    """Network inputs of simulated click sessions on ``samples`` (``ivos.evaluation.datasets.Sample``:
    image (H, W, 3) uint8, gt (H, W) bool), run with the bundle's float ONNX network, no CRF.

    Returns one {input name: array (shape of the bundle's input), float32} per network run.
    """
    model = load(bundle_dir, backend="ort", device="cpu", threads=threads, precision="fp32")
    recorder = _RecordingRunner(model.runner)
    predictor = ImagePredictor(Model(model.bundle, recorder), crf=False)
    segmenter = PredictorSegmenter(predictor, name="calibration")
    for sample in samples:
        evaluate_sample(segmenter, sample, max_clicks=clicks_per_sample)
    return recorder.recorded
