"""Several objects per video (SAM 2's obj_id): masks never overlap, remove_object, undo per
object, save/restore mid-session, ``ivos segment`` with two objects."""
import json

import numpy as np
import pytest

import ivos
from ivos.video.propagation import resolve_overlaps


def two_objects(n=5, h=40, w=56, seed=1):
    """(frames, masks1, masks2): two touching squares (object 2 right of object 1) moving right."""
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 80, (n, h, w, 3), dtype=np.uint8)
    m1, m2 = np.zeros((n, h, w), np.uint8), np.zeros((n, h, w), np.uint8)
    for t in range(n):
        m1[t, 10:26, 6 + 2 * t:20 + 2 * t] = 1
        m2[t, 12:28, 20 + 2 * t:32 + 2 * t] = 1
    frames[m1.astype(bool)] = (230, 120, 40)
    frames[m2.astype(bool)] = (40, 200, 230)
    return frames, m1, m2


def _grown_heads(vp, state, shift=6.0):
    """Fine-tunes every object, then pushes each head's output bias up: each object then
    claims most of the frame, so the objects compete for every pixel."""
    for k in state.obj_ids:
        vp.finetune(state, k)
        t = state.objects[k]
        t.head = {**t.head, "head.out.bias": t.head["head.out.bias"] + np.float32(shift + k)}


def _run(vp, state, **kw):
    return [(r.frame_idx, {k: m.copy() for k, m in r.masks.items()}, dict(r.sources))
            for r in vp.propagate_in_video(state, **kw)]


def _session(vp, frames, m1, m2):
    state = vp.init_state(frames)
    vp.add_new_mask(state, 0, 1, m1[0])
    vp.add_new_mask(state, 0, np.int64(2), m2[0])  # numpy ints are fine
    _grown_heads(vp, state)
    return state


def test_resolve_overlaps_rule():
    p1 = np.array([[0.9, 0.6, 0.3, 0.7]], np.float32)
    p2 = np.array([[0.8, 0.7, 0.4, 0.7]], np.float32)
    out = resolve_overlaps({}, {1: p1, 2: p2})
    assert out[1].tolist() == [[1, 0, 0, 1]] and out[2].tolist() == [[0, 1, 0, 0]]  # argmax > 0.5; tie: smaller id
    ann = np.array([[0, 1, 1, 0]], np.uint8)
    out = resolve_overlaps({3: ann}, {1: p1, 2: p2})  # an annotation beats every probability
    assert out[3].tolist() == ann.tolist() and out[1].tolist() == [[1, 0, 0, 1]] and not out[2].any()
    out = resolve_overlaps({2: np.ones((1, 4), np.uint8), 1: ann}, {})  # annotations: first in order wins
    assert out[2].all() and not out[1].any() and list(out) == [1, 2]


def test_touching_objects_never_overlap(predictor):
    frames, m1, m2 = two_objects()
    state = _session(predictor, frames, m1, m2)
    runs = _run(predictor, state)
    assert [i for i, _, _ in runs] == list(range(5))
    for idx, masks, sources in runs:
        assert sorted(masks) == [1, 2]
        assert not np.any(masks[1] & masks[2]), f"frame {idx}: objects overlap"
        if idx == 0:
            assert sources == {1: "annotated", 2: "annotated"}
            assert np.array_equal(masks[1], m1[0]) and np.array_equal(masks[2], m2[0])
        else:
            assert sources == {1: "propagated", 2: "propagated"}
            assert (masks[1] | masks[2]).any()  # both heads want most of the frame: one pixel, one object
        for k in (1, 2):  # what is stored is what was yielded
            assert np.array_equal(state.mask(idx, k), masks[k])
    for idx, per_object in predictor.masks(state):
        assert not np.any(per_object[1] & per_object[2])
    # per-object and overall suggestions
    s1, s2, both = (predictor.suggest_frame(state, k) for k in (1, 2, None))
    assert (s1.obj_id, s2.obj_id) == (1, 2) and both.obj_id in (1, 2)
    assert both.score == max(s1.scores[both.frame_idx], s2.scores[both.frame_idx])
    assert np.allclose(both.scores[1:], np.fmax(s1.scores, s2.scores)[1:]) and np.isnan(both.scores[0])
    assert 0.0 <= predictor.difficulty(state).score <= 1.0


def test_annotation_of_one_object_beats_the_other_objects_propagation(predictor):
    frames, m1, m2 = two_objects()
    state = _session(predictor, frames, m1, m2)
    _run(predictor, state)
    predictor.add_new_mask(state, 2, 2, m2[2])
    _grown_heads(predictor, state)
    runs = {i: (masks, src) for i, masks, src in _run(predictor, state, finetune=False)}
    masks, src = runs[2]
    assert src == {1: "propagated", 2: "annotated"} and np.array_equal(masks[2], m2[2])
    assert not np.any(masks[1] & m2[2])


def test_remove_object_drops_its_masks_and_keeps_the_others(predictor):
    frames, m1, m2 = two_objects()
    state = _session(predictor, frames, m1, m2)
    _run(predictor, state)
    before = {i: state.mask(i, 1) for i in range(5)}
    predictor.remove_object(state, 2)
    assert state.obj_ids == [1] and state.mask(3, 2) is None
    for i in range(5):
        assert np.array_equal(state.mask(i, 1), before[i])
        assert list(predictor.object_masks(state, i)) == [1]
    with pytest.raises(ivos.InvalidInput, match="obj_id 2 is not an object"):
        predictor.remove_object(state, 2)
    assert all(list(masks) == [1] for _, masks, _ in _run(predictor, state, finetune=False))


def test_undo_is_per_object(predictor):
    frames, m1, m2 = two_objects()
    state = predictor.init_state(frames)
    a = predictor.add_new_points(state, 0, 1, [[12, 18]], [1])
    b = predictor.add_new_points(state, 0, 2, [[26, 20]], [1])
    c = predictor.add_new_points(state, 0, 2, [[5, 5]], [0])
    assert (a.obj_id, b.obj_id, c.obj_id) == (1, 2, 2)
    clicks1, ann1 = list(state.objects[1].clicks[0]), state.objects[1].annotations[0].copy()
    back = predictor.undo(state, 0, 2)
    assert back.obj_id == 2 and np.array_equal(back.mask, b.mask)
    assert state.objects[2].clicks[0] == [(26.0, 20.0, 1)]
    assert state.objects[1].clicks[0] == clicks1 and np.array_equal(state.objects[1].annotations[0], ann1)
    assert len(state.objects[1].edits[0]) == 1  # object 1's undo stack untouched
    predictor.undo(state, 0, 2)
    with pytest.raises(ivos.InvalidInput, match="no edit to undo for object 2"):
        predictor.undo(state, 0, 2)
    assert state.obj_ids == [1, 2] and not state.objects[2].annotations  # emptied, not removed
    assert predictor.undo(state, 0, 1) is None and state.objects[1].annotations == {}


def test_failed_edit_creates_no_object(predictor):
    frames, m1, _ = two_objects()
    state = predictor.init_state(frames)
    with pytest.raises(ivos.InvalidInput, match="points"):
        predictor.add_new_points(state, 0, 4, [[500, 5]], [1])
    with pytest.raises(ivos.InvalidInput, match="mask"):
        predictor.add_new_mask(state, 0, 4, m1[0][:3])
    assert state.objects == {}


def test_two_objects_save_and_restore_mid_session(osvos_bundle, click_bundle, tmp_path):
    from ivos.settings import FinetuneConfig

    def new_predictor():  # one fine-tuning thread: bit-identical heads
        return ivos.VideoPredictor(ivos.load(osvos_bundle, backend="ort", threads=1),
                                   ivos.load(click_bundle, backend="ort", threads=1),
                                   finetune_config=FinetuneConfig(steps=5, augmentations=3, threads=1))

    predictor = new_predictor()
    frames, m1, m2 = two_objects()
    state = _session(predictor, frames, m1, m2)
    _run(predictor, state)
    path = predictor.save_state(state, tmp_path / "two.ivos")
    fresh = new_predictor()
    loaded = fresh.load_state(path)
    assert loaded.obj_ids == [1, 2]

    def proceed(vp, st):
        vp.refine(st, 3, 2, [[30, 20]], [1])
        vp.add_new_points(st, 1, 1, [[10, 15]], [1])
        return _run(vp, st)

    original, restored = proceed(predictor, state), proceed(fresh, loaded)
    assert len(original) == len(restored) == 5
    for (i, ma, sa), (j, mb, sb) in zip(original, restored):
        assert i == j and sa == sb and sorted(ma) == sorted(mb) == [1, 2]
        assert all(np.array_equal(ma[k], mb[k]) for k in ma), f"frame {i}"


def test_cli_two_objects_writes_per_object_and_palette_outputs(tmp_path, osvos_bundle, click_bundle):
    from PIL import Image

    from ivos.cli import main
    from ivos.formats.rle import rle_decode

    frames, m1, m2 = two_objects(n=4)
    (tmp_path / "f").mkdir()
    for i, f in enumerate(frames):
        Image.fromarray(f).save(tmp_path / "f" / f"{i:05d}.png")
    out = tmp_path / "out"
    code = main(["segment", str(tmp_path / "f"), "--click", "12,18", "--click", "26,20:2", "--neg", "3,3,0:2",
                 "--click", "14,18,2:1", "--out", str(out), "--format", "png,rle,palette,coco,sticker",
                 "--finetune", "off", "--no-crf", "--osvos-bundle", str(osvos_bundle),
                 "--click-bundle", str(click_bundle), "--threads", "1"])
    assert code == 0
    names = [f"{i:05d}" for i in range(4)]
    per = {k: [(np.asarray(Image.open(out / "masks" / str(k) / f"{n}.png")) > 127).astype(np.uint8) for n in names]
           for k in (1, 2)}
    assert not (out / "masks.json").exists() and not list((out / "masks").glob("*.png"))
    for k in (1, 2):
        doc = json.loads((out / f"masks_{k}.json").read_text())
        assert all(np.array_equal(rle_decode(f["segmentation"]), per[k][i]) for i, f in enumerate(doc["frames"]))
    for i, n in enumerate(names):
        assert not np.any(per[1][i] & per[2][i])
        with Image.open(out / "palette" / f"{n}.png") as im:
            assert im.mode == "P"
            assert np.array_equal(np.asarray(im), per[1][i] + 2 * per[2][i])
    coco = json.loads((out / "coco.json").read_text())
    assert {a["track_id"] for a in coco["annotations"]} <= {1, 2}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["objects"] == [1, 2] and summary["annotated_frames"] == [0, 2]
    assert summary["per_object"]["1"]["annotated_frames"] == [0, 2]
    assert summary["per_object"]["2"]["annotated_frames"] == [0]
    assert {"sticker", "palette", "coco", "rle_1", "rle_2"} <= set(summary["outputs"])


@pytest.mark.parametrize("arg, message", [
    ("10,10:0", "object id in '10,10:0' must be 1..255"),
    ("10,10:x", "expected X,Y[,FRAME][:OBJ]"),
    ("10,10:", "expected X,Y[,FRAME][:OBJ]"),
])
def test_cli_bad_object_ids(tmp_path, arg, message, capsys):
    from ivos.cli import main

    with pytest.raises(SystemExit):
        main(["segment", "demo", "--click", arg, "--out", str(tmp_path / "o")])
    assert message in capsys.readouterr().err


def test_cli_object_with_only_negative_clicks_is_refused(tmp_path, osvos_bundle, click_bundle, capsys):
    from PIL import Image

    from ivos.cli import main

    frames, _, _ = two_objects(n=2)
    (tmp_path / "f").mkdir()
    for i, f in enumerate(frames):
        Image.fromarray(f).save(tmp_path / "f" / f"{i:05d}.png")
    code = main(["segment", str(tmp_path / "f"), "--click", "12,18", "--neg", "3,3:2", "--out", str(tmp_path / "o"),
                 "--osvos-bundle", str(osvos_bundle), "--click-bundle", str(click_bundle)])
    assert code == 2 and "object(s) [2] have only --neg clicks" in capsys.readouterr().err
