"""ivos.image: one image, clicks in, a mask out.

* ``predictor``: ``ImagePredictor`` (click sessions; SAM-style stateless ``predict``).
* ``click_pipeline``: one click's path: view, network inputs, run, CRF, paste back.
* ``click_history``: the clicks and masks of a session, for undo.
* ``crops``: the network's view of an image: padded crops, normalisation, logits back.
* ``geometry``: boxes, the full view and the zoom-in view around an object.
"""
