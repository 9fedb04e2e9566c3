"""Training of the click-refinement network (not installed; run from the repository root).

Modules, one job each:

* ``data``: one-time preprocessed RAM cache of DAVIS2016 train / BSDS500 / coco128-seg
  objects, with the leakage rules and the held-aside validation split.
* ``augment``: augmented square views (object crops with context, whole-image views).
* ``click_sim``: simulated clicks, strokes and correction clicks (paper 2.1.1).
* ``interactions``: the first interaction of an example and batched network inputs.
* ``validate``: NoC@85/90 and mIoU with the RITM simulated user.
* ``train``: the two-stage training loop (``python -m training.train --help``).
* ``model_card``: publishes a run's weights with a model card to ``export/weights/``.
"""
