"""ivos.video.osvos: One-Shot Video Object Segmentation (paper section 2.2).

* ``runner``: ``OsvosRunner``, the bundle's OSVOS graph (or its trunk and head parts) on frames.
* ``head``: the small per-video head that fine-tuning retrains, as a function of named weights.
* ``finetune``: one-shot fine-tuning of the head on the annotated frames (torch, lazily).
"""
