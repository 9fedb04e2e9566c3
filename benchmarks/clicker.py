"""The RITM simulated user: moved to the runtime, ``ivos.evaluation.clicker`` (int8 calibration
and training's validation use it too, and ``ivos.export`` must not import ``ivos.bench``).
These names stay importable from here for existing callers."""
from ivos.evaluation.clicker import Click, next_click

__all__ = ["Click", "next_click"]
