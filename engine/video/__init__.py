"""ivos.video: an object's mask through a whole video.

* ``predictor``: ``VideoPredictor`` (SAM 2's names: prompts, propagation, refinement).
* ``state`` / ``state_file``: ``VideoState`` (every object's annotations, heads and masks)
  and its file format.
* ``results``: what propagation and analysis return (``FrameResult``, ``MultiFrameResult``...).
* ``analysis``: the worst frame to fix next (``suggest_frame``), video difficulty.
* ``propagation``: the frame loop: OSVOS heads, CRF, the overlap rule, online adaptation.
* ``memory_read`` / ``memory_propagation`` / ``flow``: the memory mode (shared trunk, top-k
  memory read, DIS optical flow).
* ``frames``: frame sources (video files, folders of frames, arrays).
* ``osvos``: the OSVOS network runner, its head and one-shot fine-tuning.
"""
