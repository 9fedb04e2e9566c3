"""ivos.evaluation: the click-evaluation protocol, shared by the benchmarks (``ivos-bench``),
int8 calibration (``ivos-export int8``) and training's validation, so that none of them needs
another's package. Not imported by ``import ivos``; its modules import numpy and the runtime
only (PIL and scipy lazily, where used).

Modules, one job each:

* ``clicker``: the RITM simulated user (where the next corrective click goes).
* ``noc``: the evaluation loop (NoC@85/90, mIoU per click) over any ``Segmenter``.
* ``segmenter``: ``PredictorSegmenter``, an ``ivos.ImagePredictor`` as a ``Segmenter``.
* ``datasets``: readers of the evaluation sets (GrabCut, Berkeley, DAVIS-2016, a folder pair);
  the data root comes from ``ivos.datasets_root``.
* ``recording``: the network inputs of simulated click sessions (int8 calibration and checks).
"""
