"""The refinement strategies kept for the sweep (``ivos.bench.refine_strategies``), plugged into
``VideoPredictor(refine_strategy=...)``."""
import numpy as np
import pytest

from ivos.bench.refine_strategies import LimitedRefinement, changes_at_clicks


def _refine_with(predictor, make_clip, strategy):
    """Refines frame 2 of a propagated 60x80 clip with one positive click at (20, 20) under
    ``strategy`` (the predictor's own strategy restored afterwards): (mask before, after)."""
    frames, masks = make_clip(n=4, h=60, w=80)
    state = predictor.init_state(frames)
    predictor.add_new_mask(state, 0, 1, masks[0])
    for _ in predictor.propagate_in_video(state):
        pass
    before = state.mask(2)
    old, predictor.refine_strategy = predictor.refine_strategy, strategy
    try:
        return before, predictor.refine(state, 2, 1, [[20, 20]], [1]).mask
    finally:
        predictor.refine_strategy = old


def test_radius_edits_only_near_the_clicks(predictor, make_clip):
    before, fixed = _refine_with(predictor, make_clip, LimitedRefinement(0.1))  # 10 px on this frame
    yy, xx = np.mgrid[0:60, 0:80]
    far = (xx - 20) ** 2 + (yy - 20) ** 2 > 10.0 ** 2
    assert np.array_equal(fixed[far], before[far])


def test_connected_changes_keep_only_the_regions_under_the_clicks():
    base = np.zeros((40, 60), np.uint8)
    base[5:15, 5:15] = 1  # a false-positive blob the user clicks away
    base[25:35, 40:50] = 1  # a correct region the network wrongly erases too
    new = np.zeros_like(base)
    new[20:24, 20:24] = 1  # and a spurious addition elsewhere
    kept = changes_at_clicks(base, new, [(10.0, 10.0, 0)])
    expected = base.copy()
    expected[5:15, 5:15] = 0
    assert np.array_equal(kept, expected)
    assert np.array_equal(changes_at_clicks(base, new, []), base)


def test_connected_refinement_leaves_far_regions_alone(predictor, make_clip):
    cv2 = pytest.importorskip("cv2")

    before, fixed = _refine_with(predictor, make_clip, LimitedRefinement(None, connected=True))
    _, labels = cv2.connectedComponents((fixed != before).astype(np.uint8), connectivity=8)
    assert set(np.unique(labels[fixed != before])) <= {labels[20, 20]}


def test_focus_view_frames_only_the_clicked_region():
    focus = LimitedRefinement(focus=True)
    base = np.zeros((300, 400), np.uint8)
    base[20:60, 20:60] = 1  # a stray blob
    base[200:280, 300:380] = 1  # the object
    x0, y0, x1, y1 = focus.view(base, np.array([[40.0, 40.0]])).clip(300, 400)
    assert x0 <= 20 and y0 <= 20 and x1 >= 60 and y1 >= 60 and x1 < 300 and y1 < 200
    x0, y0, x1, y1 = focus.view(base, np.array([[290.0, 190.0]])).clip(300, 400)  # background, by the object
    assert x0 <= 290 and y0 <= 190 and x1 >= 380 and y1 >= 280 and x0 > 60
    assert focus.view(np.zeros_like(base), np.array([[40.0, 40.0]])) is None
    assert LimitedRefinement().view(base, np.array([[40.0, 40.0]])) is None


def test_focus_keeps_the_mask_outside_the_view(predictor, make_clip):
    frames, masks = make_clip(n=3, h=120, w=160)
    state = predictor.init_state(frames)
    predictor.add_new_mask(state, 0, 1, masks[0])
    two_blobs = np.zeros((120, 160), np.uint8)
    two_blobs[5:20, 5:20] = 1
    two_blobs[80:110, 110:150] = 1
    predictor.add_new_mask(state, 2, 1, two_blobs)
    focus = LimitedRefinement(focus=True)
    old, predictor.refine_strategy = predictor.refine_strategy, focus
    try:
        fixed = predictor.refine(state, 2, 1, [[12, 12]], [0]).mask
    finally:
        predictor.refine_strategy = old
    x0, y0, x1, y1 = focus.view(two_blobs, np.array([[12.0, 12.0]])).clip(120, 160)
    assert x1 < 110 and y1 < 80  # the view leaves the far blob out ...
    outside = np.ones(two_blobs.shape, bool)
    outside[y0:y1, x0:x1] = False
    assert np.array_equal(fixed[outside], two_blobs[outside])  # ... and it stays exactly as it was
