"""VideoPredictor: annotation, propagation, refinement, suggestions and bad input, on a
generated clip with tiny random-weight bundles."""
from types import SimpleNamespace

import numpy as np
import pytest

import ivos


def _one(r, obj_id=1):
    """Object ``obj_id``'s part of a ``MultiFrameResult`` (mask, confidence, source)."""
    return SimpleNamespace(frame_idx=r.frame_idx, mask=r.masks[obj_id], confidence=r.confidence[obj_id],
                           source=r.sources[obj_id])


def _propagated(predictor, state):
    return {r.frame_idx: _one(r) for r in predictor.propagate_in_video(state)}


def test_add_points_propagate_and_refine_keeps_user_mask(predictor, make_clip):
    frames, masks = make_clip(n=6)
    state = predictor.init_state(frames, cache_size=2)
    first = predictor.add_new_points(state, 2, 1, [[15, 17]], [1])
    assert first.source == "annotated" and first.mask.shape == (40, 56)
    results = _propagated(predictor, state)
    assert sorted(results) == list(range(6))
    assert np.array_equal(results[2].mask, first.mask)  # the user's mask, exactly
    assert all(r.mask.dtype == np.uint8 and set(np.unique(r.mask)) <= {0, 1} for r in results.values())
    assert all(0.0 <= r.confidence <= 1.0 for r in results.values())
    assert state.video.cached <= 2  # propagation never held the whole video

    fixed = predictor.refine(state, 4, 1, [[30, 18], [5, 5]], [1, 0])
    assert fixed.source == "annotated" and sorted(state.annotations) == [2, 4]
    head_before = state.head
    again = _propagated(predictor, state)
    assert state.head_frames == (2, 4) and state.head is not head_before  # re-fine-tuned with the fix
    assert np.array_equal(again[4].mask, fixed.mask)
    assert np.array_equal(again[2].mask, first.mask)
    assert np.array_equal(state.mask(4), fixed.mask)


def test_add_new_mask_is_kept_exactly(predictor, make_clip):
    frames, masks = make_clip(n=4)
    state = predictor.init_state(frames)
    predictor.add_new_mask(state, 0, 1, masks[0])
    results = _propagated(predictor, state)
    assert np.array_equal(results[0].mask, masks[0])
    assert results[0].source == "annotated" and results[1].source == "propagated"


def test_osvos_mode_frames_are_independent(osvos_bundle, make_clip):
    from ivos.video.predictor import VideoPredictor

    frames, masks = make_clip(n=4)
    vp = VideoPredictor(ivos.load(osvos_bundle, backend="ort", threads=1), mode="osvos",
                        finetune_config=ivos.FinetuneConfig(steps=3, augmentations=2, use_prior=False))
    state = vp.init_state(frames)
    vp.add_new_mask(state, 0, 1, masks[0])
    res = _propagated(vp, state)
    alone = vp.propagate_in_video(state, start_frame_idx=3)
    assert np.array_equal(next(alone).masks[1], res[3].mask)


def test_fine_tuned_head_reaches_engine_without_rebuild(osvos_bundle, make_clip):
    """The engine's output with a new head equals torch's head on the engine's features."""
    import torch

    from ivos.video.osvos.head import head_forward
    from ivos.video.osvos.runner import OsvosRunner

    frames, _ = make_clip(n=1)
    session = OsvosRunner(ivos.load(osvos_bundle, backend="ort", threads=1))
    img = session.to_working_rgb(frames[0])
    rng = np.random.default_rng(1)
    head = {k: v + rng.normal(0, 0.1, v.shape).astype(np.float32) for k, v in session.parent_head.items()}
    parent_logits = session.run_working(img, None)["logits"].copy()
    session.set_head(head)
    out = session.run_working(img, None)
    assert np.abs(out["logits"] - parent_logits).max() > 1e-3
    ref = head_forward({k: torch.from_numpy(v) for k, v in head.items()}, torch.from_numpy(out["low"]),
                       torch.from_numpy(out["high"]), torch.zeros(1, 1, *out["low"].shape[-2:]))
    assert np.abs(ref.numpy() - out["logits"]).max() < 1e-4


def test_suggest_frame_and_difficulty(predictor, make_clip):
    frames, masks = make_clip(n=6)
    state = predictor.init_state(frames)
    with pytest.raises(ivos.InvalidInput, match="propagated"):
        predictor.suggest_frame(state)
    predictor.add_new_mask(state, 0, 1, masks[0])
    _propagated(predictor, state)
    s = predictor.suggest_frame(state)
    assert s.frame_idx != 0 and np.isnan(s.scores[0]) and s.score == np.nanmax(s.scores)
    d = predictor.difficulty(state)
    assert 0.0 <= d.score <= 1.0 and 0.0 < d.image_motion < 1.0


def test_suggestion_finds_a_planted_bad_frame(predictor, make_clip):
    from ivos.formats.rle import rle_encode

    frames, masks = make_clip(n=8)
    state = predictor.init_state(frames)
    predictor.add_new_mask(state, 0, 1, masks[0])
    _propagated(predictor, state)
    for i in range(1, 8):  # a perfect, confident propagation ...
        state.masks[i], state.confidence[i] = rle_encode(masks[i]), 1.0
    state.masks[5] = rle_encode(np.zeros_like(masks[5]))  # ... except frame 5 lost the object
    assert predictor.suggest_frame(state).frame_idx == 5


def test_bad_input_is_clear_and_loses_nothing(predictor, make_clip):
    frames, masks = make_clip(n=5)
    state = predictor.init_state(frames)
    with pytest.raises(ivos.InvalidInput, match="obj_id 1 is not an object of this state"):
        predictor.refine(state, 1, 1, [[10, 10]], [1])
    with pytest.raises(ivos.InvalidInput, match="nothing to propagate"):
        predictor.propagate_in_video(state)
    predictor.add_new_points(state, 0, 1, [[15, 17]], [1])
    _propagated(predictor, state)
    snapshot = ({k: dict(v) for k, v in state.masks.items()}, {k: v.copy() for k, v in state.annotations.items()},
                {k: list(v) for k, v in state.clicks.items()}, state.head)
    bad_calls = [
        (lambda: predictor.add_new_points(state, 0, 1, [[56, 10]], [1]), r"points has a point outside the 56x40 image"),
        (lambda: predictor.add_new_points(state, 0, 1, [[-1, 10]], [1]), "outside"),
        (lambda: predictor.refine(state, 1, 1, [[10, 45]], [1]), "outside"),
        (lambda: predictor.refine(state, 5, 1, [[10, 10]], [1]), "frame_idx 5 is out of range"),
        (lambda: predictor.add_new_points(state, 9, 1, [[10, 10]], [1]), "frame_idx 9 is out of range"),
        (lambda: predictor.add_new_points(state, 1, 1, [[10, 10]], [2]), "labels"),
        (lambda: predictor.add_new_points(state, 1, 1, [[np.nan, 10]], [1]), "NaN"),
        (lambda: predictor.add_new_mask(state, 1, 1, np.ones((3, 3), np.uint8)), r"mask must be .*\(40, 56\)"),
        (lambda: predictor.propagate_in_video(state, start_frame_idx=7), "start_frame_idx 7 is out of range"),
        (lambda: predictor.refine("state", 1, 1, [[10, 10]], [1]), "VideoState"),
        (lambda: predictor.add_new_points(state, 0, -1, [[10, 10]], [1]), "obj_id must be a non-negative integer"),
        (lambda: predictor.add_new_points(state, 0, True, [[10, 10]], [1]), "obj_id must be .* got bool"),
        (lambda: predictor.add_new_mask(state, 0, "2", masks[0]), "obj_id must be"),
        (lambda: predictor.refine(state, 1, 2, [[10, 10]], [1]), "obj_id 2 is not an object"),
        (lambda: predictor.undo(state, 0, 3), "obj_id 3 is not an object"),
        (lambda: predictor.remove_object(state, 1.0), "obj_id must be"),
        (lambda: predictor.suggest_frame(state, 5), "obj_id 5"),
    ]
    for call, message in bad_calls:
        with pytest.raises(ivos.InvalidInput, match=message):
            call()
    masks_now, ann_now, clicks_now, head_now = snapshot
    assert state.masks == masks_now and state.clicks == clicks_now and state.head is head_now
    assert all(np.array_equal(state.annotations[k], v) for k, v in ann_now.items())


def test_missing_click_model(osvos_bundle, make_clip):
    from ivos.video.predictor import VideoPredictor

    vp = VideoPredictor(ivos.load(osvos_bundle, backend="ort", threads=1))
    state = vp.init_state(make_clip(n=2)[0])
    with pytest.raises(ivos.InvalidInput, match="no click model"):
        vp.add_new_points(state, 0, 1, [[5, 5]], [1])
    with pytest.raises(ivos.InvalidInput, match="mode"):
        VideoPredictor(ivos.load(osvos_bundle, backend="ort"), mode="sam")


def test_finetune_reports_progress(predictor, make_clip):
    frames, masks = make_clip(n=3)
    state = predictor.init_state(frames)
    predictor.add_new_mask(state, 0, 1, masks[0])
    calls = []
    predictor.finetune(state, 1, progress=lambda stage, done, total: calls.append((stage, done, total)))
    cfg = predictor.settings.finetune
    features = [c for c in calls if c[0] == "features"]
    steps = [c for c in calls if c[0] == "fit"]
    total = features[0][2]  # augmented copies of the one annotated frame (at least 4)
    assert [c[1] for c in features] == list(range(1, total + 1)) and all(c[2] == total for c in features)
    assert [c[1] for c in steps] == list(range(1, cfg.steps + 1)) and steps[-1][2] == cfg.steps
    assert calls.index(features[-1]) < calls.index(steps[0])  # features first, then the steps


def test_finetune_schedules():
    cosine = ivos.FinetuneConfig(steps=100, lr=2e-3, schedule="cosine")
    assert cosine.lr_at(1) == pytest.approx(2e-3)
    assert cosine.lr_at(51) == pytest.approx(1e-3)
    assert 0 < cosine.lr_at(100) < 1e-5
    assert all(cosine.lr_at(k) > cosine.lr_at(k + 1) for k in range(1, 100))
    assert ivos.FinetuneConfig(lr=3e-3, schedule="constant").lr_at(77) == 3e-3
    with pytest.raises(ivos.InvalidInput, match="schedule must be one of"):
        ivos.FinetuneConfig(schedule="step")


def test_quick_start_config():
    assert ivos.FinetuneConfig().quick is None  # off by default
    quick = ivos.FinetuneConfig(steps=150, augmentations=16, quick_steps=40, quick_augmentations=4).quick
    assert (quick.steps, quick.augmentations, quick.quick_steps) == (40, 4, 0)
    assert ivos.FinetuneConfig(augmentations=2, quick_steps=5, quick_augmentations=4).quick.augmentations == 2
    for field, value in [("quick_steps", -1), ("quick_augmentations", 0), ("quick_frames", 1.5), ("quick_steps", True)]:
        with pytest.raises(ivos.InvalidInput, match=f"FinetuneConfig.{field} must be an int"):
            ivos.FinetuneConfig(**{field: value})


def test_each_osvos_bundle_fine_tunes_with_its_own_recipe(tmp_path):
    """The card's ``finetune`` section is the network's recipe (osvos-cpu keeps the one it was
    tuned with); a predictor without a config uses it; a bad section is a ModelError naming
    the field."""
    import json
    import shutil

    lite, cpu = ivos.load("osvos-lite0", threads=1), ivos.load("osvos-cpu", threads=1)
    recipe = json.loads((lite.bundle.path / "model.json").read_text())["finetune"]
    assert ivos.VideoPredictor(lite).settings.finetune == ivos.FinetuneConfig(threads=1, **recipe)
    assert ivos.VideoPredictor(lite, propagation="classic").settings.finetune == ivos.FinetuneConfig(threads=1)
    old = ivos.VideoPredictor(cpu).settings.finetune
    assert (old.steps, old.lr, old.schedule, old.crop, old.threads) == (300, 1e-3, "constant", 64, 1)
    assert ivos.FinetuneConfig.for_bundle(cpu.bundle, steps=7).steps == 7  # arguments win
    folder = tmp_path / "windowed"
    shutil.copytree(lite.bundle.path, folder)
    card = json.loads((folder / "model.json").read_text())
    card["finetune"] = {**card["finetune"], "crop_features": True}
    (folder / "model.json").write_text(json.dumps(card))
    assert ivos.VideoPredictor(ivos.load(folder, threads=1)).settings.finetune.crop_features is True
    for section, message in [({"stepz": 3}, "'finetune.stepz' is not"), ({"steps": "many"}, "'finetune.steps' must be"),
                             ({"crop_features": 1}, "'finetune.crop_features' must be"),
                             ({"quick_steps": -3}, "quick_steps must be an int >= 0"),
                             ({"steps": 2.5}, "'finetune.steps' must be"), ({"schedule": "step"}, "schedule must be"),
                             ([1], "must be an object")]:
        folder = tmp_path / f"b{len(list(tmp_path.iterdir()))}"
        shutil.copytree(lite.bundle.path, folder)
        card = json.loads((folder / "model.json").read_text())
        card["finetune"] = section
        (folder / "model.json").write_text(json.dumps(card))
        with pytest.raises(ivos.ModelError, match=message):
            ivos.VideoPredictor(ivos.load(folder, threads=1))


def test_video_clicks_follow_the_image_predictor_rules(predictor, make_clip):
    """Same coordinate and label rules as ImagePredictor: 0 <= x < W (W - 0.5 is inside the
    last pixel), labels 1/0 as integers or booleans only."""
    frames, _ = make_clip(n=2)
    h, w = frames[0].shape[:2]
    state = predictor.init_state(frames)
    result = predictor.add_new_points(state, 0, 1, [[w - 0.5, h - 0.5]], [1])
    assert result.mask[h - 1, w - 1] == 1  # the clicked pixel is clamped to the label
    for points, labels, name in [([[w, 0]], [1], "points"), ([[1, 1]], [0.7], "labels"),
                                 ([[1, 1]], ["1"], "labels"), ([[np.nan, 1]], [1], "points")]:
        with pytest.raises(ivos.InvalidInput, match=name):
            predictor.add_new_points(state, 0, 1, points, labels)


def test_video_length_limit_is_documented_and_can_be_lifted(predictor, make_clip):
    frames, _ = make_clip(n=5)
    with pytest.raises(ivos.InvalidInput, match=r"5 frames, more than max_frames=4.*max_frames=None"):
        predictor.init_state(frames, max_frames=4)
    assert predictor.init_state(frames, max_frames=None).num_frames == 5


def test_state_keeps_masks_as_compact_run_lengths(predictor, make_clip):
    frames, masks = make_clip(n=3)
    state = predictor.init_state(frames)
    predictor.add_new_mask(state, 0, 1, masks[0])
    rle = state.masks[0]
    assert isinstance(rle["counts"], np.ndarray) and rle["counts"].dtype == np.int32
    assert np.array_equal(state.mask(0), masks[0])


def test_clicks_on_one_frame_keep_its_prepared_views(predictor, make_clip, monkeypatch):
    """Video clicks bind a frame to the click path once: further clicks on the same decoded
    frame reuse its normalised views (the image is not set again), another frame binds anew."""
    from ivos.image.click_pipeline import ClickPipeline

    frames, _ = make_clip(n=3)
    state = predictor.init_state(frames)
    bound = []
    original = ClickPipeline.set_image
    monkeypatch.setattr(ClickPipeline, "set_image", lambda self, image: (bound.append(image), original(self, image)))
    predictor.add_new_points(state, 1, 1, [[15, 17]], [1])
    predictor.add_new_points(state, 1, 1, [[30, 20]], [0])
    predictor.add_new_points(state, 1, 2, [[40, 30]], [1])  # another object, same frame
    assert len(bound) == 1
    predictor.add_new_points(state, 2, 1, [[15, 17]], [1])
    assert len(bound) == 2 and bound[1] is state.video[2]
