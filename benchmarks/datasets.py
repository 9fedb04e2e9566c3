"""Readers of the interactive-segmentation evaluation sets: moved to the runtime,
``ivos.evaluation.datasets`` (``ivos-export int8`` calibrates on DAVIS train through them, and
``ivos.export`` must not import ``ivos.bench``). These names stay importable from here for
existing callers; the data root comes from ``ivos.datasets_root``."""
from ivos.evaluation.datasets import (DATASETS, DAVIS_EVERY, IMAGE_SUFFIXES, EvalSet, MaskReader, Sample, berkeley,
                                      davis2016, davis_sequences, folder, grabcut, mask_fg128, mask_grabcut,
                                      open_dataset, read_rgb)

__all__ = ["DATASETS", "DAVIS_EVERY", "IMAGE_SUFFIXES", "EvalSet", "MaskReader", "Sample", "berkeley", "davis2016",
           "davis_sequences", "folder", "grabcut", "mask_fg128", "mask_grabcut", "open_dataset", "read_rgb"]
