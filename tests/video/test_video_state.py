"""Explicit VideoState: several states on one predictor (interleaved propagation), undo of
frame edits, and save/load (continue after loading = continue the original; corrupt files
are named)."""
import os
import zipfile

import numpy as np
import pytest

import ivos
from ivos.video.state import VideoState
from ivos.video.state_file import STATE_FORMAT_VERSION
from ivos.video.tracks import DEFAULT_OBJ_ID, ObjectTrack


def _new_predictor(osvos_bundle, click_bundle, **kw):
    from ivos.settings import FinetuneConfig
    from ivos.video.predictor import VideoPredictor

    return VideoPredictor(ivos.load(osvos_bundle, backend="ort", threads=1),
                          ivos.load(click_bundle, backend="ort", threads=1),
                          finetune_config=FinetuneConfig(steps=5, augmentations=3, threads=1), **kw)


@pytest.fixture(scope="module")
def vp(osvos_bundle, click_bundle):
    return _new_predictor(osvos_bundle, click_bundle)


def _run(vp, state, **kw):
    return [(r.frame_idx, r.masks[1].copy(), r.confidence[1], r.sources[1]) for r in vp.propagate_in_video(state, **kw)]


def _same_runs(a, b):
    assert [x[0] for x in a] == [x[0] for x in b]
    for (i, ma, ca, sa), (_, mb, cb, sb) in zip(a, b):
        assert sa == sb and ca == cb, f"frame {i}"
        assert np.array_equal(ma, mb), f"frame {i}"


def test_state_is_laid_out_per_object(vp, make_clip):
    frames, masks = make_clip(n=3)
    state = vp.init_state(frames)
    assert state.objects == {} and state.masks == {} and state.head is None  # objects come with their inputs
    vp.add_new_mask(state, 1, 1, masks[1])
    assert list(state.objects) == [DEFAULT_OBJ_ID] and isinstance(state.track(), ObjectTrack)
    track = state.objects[DEFAULT_OBJ_ID]
    assert state.annotations is track.annotations and state.masks is track.masks  # the single-object view
    assert np.array_equal(track.mask(1), masks[1]) and not track.annotations[1].flags.writeable
    with pytest.raises(ivos.InvalidInput, match="obj_id"):
        state.track(2)
    assert "VideoState" in repr(state) and len(repr(state)) < 300  # no mask dump


def test_interleaved_generators_on_one_predictor_match_running_alone(vp, make_clip):
    """Two videos, two heads, one predictor: advancing the generators alternately gives each
    state exactly the masks it gets alone (the head is bound per frame, not per run)."""
    frames_a, masks_a = make_clip(n=5, seed=0)
    frames_b, masks_b = make_clip(n=6, h=48, w=64, seed=3)
    a, b = vp.init_state(frames_a), vp.init_state(frames_b)
    vp.add_new_mask(a, 0, 1, masks_a[0])
    vp.add_new_mask(b, 2, 1, np.roll(masks_b[2], 9, axis=1))
    for state, shift in ((a, -3.0), (b, 3.0)):  # fine-tuned heads, made far apart: ~all background / object
        vp.finetune(state, 1)
        state.head = {**state.head, "head.out.bias": state.head["head.out.bias"] + np.float32(shift)}
    alone_a, alone_b = _run(vp, a, finetune=False), _run(vp, b, finetune=False)
    assert sum(m.sum() for _, m, _, s in alone_a if s == "propagated") < \
        sum(m.sum() for _, m, _, s in alone_b if s == "propagated")
    gen_a, gen_b = vp.propagate_in_video(a, finetune=False), vp.propagate_in_video(b, finetune=False)
    both_a, both_b = [], []
    for ra, rb in zip(gen_a, gen_b):  # a, b, a, b, ...
        both_a.append((ra.frame_idx, ra.masks[1].copy(), ra.confidence[1], ra.sources[1]))
        both_b.append((rb.frame_idx, rb.masks[1].copy(), rb.confidence[1], rb.sources[1]))
    both_a += _run_rest(gen_a)
    both_b += _run_rest(gen_b)
    _same_runs(both_a, alone_a)
    _same_runs(both_b, alone_b)
    assert _run(vp, a) and a.head["head.out.bias"][0] < -2.0  # the heads are current: no new fine-tune


def _run_rest(gen):
    return [(r.frame_idx, r.masks[1].copy(), r.confidence[1], r.sources[1]) for r in gen]


def test_bind_head_copies_only_a_new_head(osvos_bundle, make_clip):
    from ivos.video.osvos.runner import OsvosRunner

    frames, _ = make_clip(n=1)
    session = OsvosRunner(ivos.load(osvos_bundle, backend="ort", threads=1))
    rng = np.random.default_rng(0)
    head = {k: v + rng.normal(0, 0.1, v.shape).astype(np.float32) for k, v in session.parent_head.items()}
    parent_prob = session.predict(frames[0], None)
    session.bind_head(head)
    tuned_prob = session.predict(frames[0], None)
    assert np.abs(tuned_prob - parent_prob).max() > 1e-4
    session.bind_head(session.parent_head)
    assert np.array_equal(session.predict(frames[0], None), parent_prob)
    session.bind_head(head)
    assert np.array_equal(session.predict(frames[0], None), tuned_prob)


def test_undo_takes_back_click_batches_and_masks(vp, make_clip):
    frames, masks = make_clip(n=4)
    state = vp.init_state(frames)
    first = vp.add_new_points(state, 1, 1, [[15, 17]], [1])
    second = vp.add_new_points(state, 1, 1, [[40, 30], [5, 5]], [1, 0])
    assert len(state.clicks[1]) == 3
    back = vp.undo(state, 1, 1)
    assert back.source == "annotated" and np.array_equal(back.mask, first.mask)
    assert state.clicks[1] == [(15.0, 17.0, 1)] and np.array_equal(state.annotations[1], first.mask)
    again = vp.add_new_points(state, 1, 1, [[40, 30], [5, 5]], [1, 0])  # same clicks, same mask as before
    assert np.array_equal(again.mask, second.mask)
    vp.undo(state, 1, 1)
    assert vp.undo(state, 1, 1) is None  # the frame is back to nothing
    assert 1 not in state.annotations and 1 not in state.masks and 1 not in state.clicks and not state.edits
    with pytest.raises(ivos.InvalidInput, match="frame_idx 1 has no edit to undo"):
        vp.undo(state, 1, 1)
    with pytest.raises(ivos.InvalidInput, match="frame_idx 9 is out of range"):
        vp.undo(state, 9, 1)

    vp.add_new_points(state, 0, 1, [[15, 17]], [1])
    vp.add_new_mask(state, 0, 1, masks[0])  # a mask replaces the clicks; undo brings them back
    assert 0 not in state.clicks
    assert vp.undo(state, 0, 1).source == "annotated" and state.clicks[0] == [(15.0, 17.0, 1)]


def test_undo_of_a_refinement_restores_the_propagated_frame(vp, make_clip):
    frames, masks = make_clip(n=4)
    state = vp.init_state(frames)
    vp.add_new_mask(state, 0, 1, masks[0])
    results = {i: (m, c) for i, m, c, _ in _run(vp, state)}
    head, digest = state.head, state.objects[1].head_digest
    vp.refine(state, 2, 1, [[30, 18]], [1])
    vp.refine(state, 2, 1, [[5, 5]], [0])
    assert sorted(state.annotations) == [0, 2]
    vp.undo(state, 2, 1)
    restored = vp.undo(state, 2, 1)
    assert restored.source == "propagated" and np.array_equal(restored.mask, results[2][0])
    assert restored.confidence == results[2][1] == state.confidence[2]
    assert sorted(state.annotations) == [0] and 2 not in state.clicks
    assert state.objects[1].annotation_digest() == digest
    _run(vp, state)
    assert state.head is head  # annotations as they were tuned on: no new fine-tune


def test_reannotating_a_frame_fine_tunes_again(vp, make_clip):
    """The head follows the annotations' content, not only which frames are annotated."""
    frames, masks = make_clip(n=3)
    state = vp.init_state(frames)
    vp.add_new_mask(state, 0, 1, masks[0])
    _run(vp, state)
    head = state.head
    vp.add_new_mask(state, 0, 1, np.roll(masks[0], 4, axis=1))
    _run(vp, state)
    assert state.head is not head and state.head_frames == (0,)


def _session(vp, frames):
    """Clicks, a propagation, refinements (one undone) and a propagation on ``frames``: the state."""
    state = vp.init_state(frames, cache_size=3)
    vp.add_new_points(state, 1, 1, [[15, 17]], [1])
    vp.add_new_points(state, 1, 1, [[5, 5]], [0])
    _run(vp, state)
    vp.refine(state, 4, 1, [[30, 18]], [1])
    vp.refine(state, 4, 1, [[50, 35]], [0])
    vp.undo(state, 4, 1)
    _run(vp, state)
    assert state.head_frames == (1, 4) and len(state.edits[4]) == 1
    return state


def _continue(vp, state):
    """Another refinement and a propagation (which fine-tunes again), then an undo."""
    fixed = vp.refine(state, 3, 1, [[28, 20]], [1])
    run = _run(vp, state)
    back = vp.undo(state, 4, 1)
    return fixed.mask, run, back.mask


def _assert_same_state(a: VideoState, b: VideoState):
    assert a.num_frames == b.num_frames and sorted(a.thumbs) == sorted(b.thumbs)
    assert all(np.array_equal(a.thumbs[i], b.thumbs[i]) for i in a.thumbs)
    assert sorted(a.objects) == sorted(b.objects)
    for obj_id, ta in a.objects.items():
        tb = b.objects[obj_id]
        assert sorted(ta.annotations) == sorted(tb.annotations)
        assert all(np.array_equal(ta.annotations[i], tb.annotations[i]) for i in ta.annotations)
        assert ta.clicks == tb.clicks and ta.confidence == tb.confidence
        assert sorted(ta.masks) == sorted(tb.masks)
        assert all(np.array_equal(ta.mask(i), tb.mask(i)) for i in ta.masks)
        assert sorted(ta.edits) == sorted(tb.edits)
        for i in ta.edits:
            for ea, eb in zip(ta.edits[i], tb.edits[i], strict=True):
                assert (ea.clicks, ea.annotated, ea.confidence) == (eb.clicks, eb.annotated, eb.confidence)
                assert (ea.mask is None) == (eb.mask is None)
                assert ea.mask is None or np.array_equal(ea.mask["counts"], eb.mask["counts"])
        assert (ta.head is None) == (tb.head is None)
        assert ta.head is None or all(np.array_equal(ta.head[k], tb.head[k]) for k in ta.head)
        assert (ta.head_frames, ta.head_digest, ta.head_model) == (tb.head_frames, tb.head_digest, tb.head_model)


def test_saved_state_continues_identically_in_a_fresh_predictor(vp, osvos_bundle, click_bundle, make_clip, tmp_path):
    frames, _ = make_clip(n=6)
    state = _session(vp, frames)
    path = vp.save_state(state, tmp_path / "session.ivos")
    assert [p.name for p in tmp_path.iterdir()] == ["session.ivos"]  # no temporary file left
    fresh = _new_predictor(osvos_bundle, click_bundle)
    loaded = fresh.load_state(path)
    _assert_same_state(loaded, state)
    assert np.array_equal(loaded.video[2], frames[2]) and loaded.video.cache_size == 3
    assert loaded.finetune_report.examples == state.finetune_report.examples

    report = loaded.finetune_report
    _same_runs(_run(fresh, loaded), _run(vp, state))  # the saved head runs as it is ...
    assert loaded.finetune_report is report  # ... without a new fine-tune
    original = _continue(vp, state)
    restored = _continue(fresh, loaded)
    assert np.array_equal(original[0], restored[0])
    _same_runs(original[1], restored[1])
    assert np.array_equal(original[2], restored[2])
    _assert_same_state(loaded, state)


def test_save_load_roundtrips_several_objects(vp, make_clip, tmp_path):
    """Objects 1, 2 and 7 (clicks, undo stacks, propagated masks, own heads; one left with an
    empty undo history, one removed) come back exactly, and propagate as the original."""
    frames, masks = make_clip(n=5)
    state = vp.init_state(frames)
    vp.add_new_points(state, 1, 1, [[15, 17]], [1])
    vp.add_new_mask(state, 0, 2, np.roll(masks[0], 20, axis=1))
    vp.add_new_points(state, 2, np.int32(7), [[45, 30]], [1])
    vp.add_new_points(state, 3, 9, [[5, 5]], [1])
    vp.remove_object(state, 9)
    _run_all = lambda v, st: [(r.frame_idx, {k: m.copy() for k, m in r.masks.items()}, r.sources)  # noqa: E731
                              for r in v.propagate_in_video(st)]
    _run_all(vp, state)
    vp.refine(state, 3, 2, [[40, 12]], [0])
    vp.add_new_points(state, 4, 1, [[30, 20]], [1])
    vp.undo(state, 4, 1)
    path = state.save(tmp_path / "objects.ivos")
    loaded = VideoState.load(path)
    assert loaded.obj_ids == [1, 2, 7] and {k: t.obj_id for k, t in loaded.objects.items()} == {1: 1, 2: 2, 7: 7}
    _assert_same_state(loaded, state)
    assert loaded.objects[2].head is not None and loaded.objects[2].head_digest != loaded.objects[1].head_digest
    a, b = _run_all(vp, loaded), _run_all(vp, state)
    for (i, ma, sa), (j, mb, sb) in zip(a, b, strict=True):
        assert i == j and sa == sb and all(np.array_equal(ma[k], mb[k]) for k in ma)
        assert not np.any(ma[1] & ma[2]) and not np.any(ma[2] & ma[7]) and not np.any(ma[1] & ma[7])


def test_save_load_roundtrips_a_folder_video_by_path(vp, make_clip, tmp_path):
    from PIL import Image

    frames, masks = make_clip(n=3)
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, f in enumerate(frames):
        Image.fromarray(f).save(folder / f"{i}.png")
    state = vp.init_state(folder, fps=12.0)
    vp.add_new_mask(state, 0, 1, masks[0])
    state.save(tmp_path / "s.ivos")
    with zipfile.ZipFile(tmp_path / "s.ivos") as zf:
        assert "frames.npy" not in zf.namelist()  # the folder is referenced, not copied
    loaded = VideoState.load(tmp_path / "s.ivos")
    assert loaded.video.frame_names == ["0", "1", "2"] and loaded.video.fps == 12.0
    assert np.array_equal(loaded.mask(0), masks[0]) and np.array_equal(loaded.video[1], frames[1])

    (folder / "2.png").rename(folder / "7.png")  # the folder changed: refused, unless video= says so
    with pytest.raises(ivos.InvalidInput, match="changed since it was saved"):
        VideoState.load(tmp_path / "s.ivos")
    assert VideoState.load(tmp_path / "s.ivos", video=folder).video.frame_names == ["0", "1", "7"]
    with pytest.raises(ivos.InvalidInput, match=r"video .* has 2 frames"):
        VideoState.load(tmp_path / "s.ivos", video=frames[:2])


def test_save_load_reopens_a_video_file(vp, make_clip, tmp_path):
    av = pytest.importorskip("av", reason="video files need PyAV (pip install 'ivos[video]')")
    frames, masks = make_clip(n=4, h=48, w=64)
    with av.open(str(tmp_path / "clip.mp4"), "w") as c:
        s = c.add_stream("libx264", rate=10)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        for f in frames:
            c.mux(s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        c.mux(s.encode(None))
    state = vp.init_state(tmp_path / "clip.mp4")
    vp.add_new_mask(state, 1, 1, masks[1])
    state.save(tmp_path / "s.ivos")
    loaded = VideoState.load(tmp_path / "s.ivos")
    assert loaded.video.fps == state.video.fps and np.array_equal(loaded.video[3], state.video[3])
    (tmp_path / "clip.mp4").unlink()
    with pytest.raises(ivos.InvalidInput, match=r"refers to video .*clip.mp4.*video="):
        VideoState.load(tmp_path / "s.ivos")


def test_frames_not_embedded_need_video_at_load(vp, make_clip, tmp_path):
    frames, masks = make_clip(n=3)
    state = vp.init_state(frames)
    vp.add_new_mask(state, 2, 1, masks[2])
    state.save(tmp_path / "s.ivos", embed_frames=False)
    with pytest.raises(ivos.InvalidInput, match="holds no frames.*video="):
        VideoState.load(tmp_path / "s.ivos")
    loaded = VideoState.load(tmp_path / "s.ivos", video=frames, cache_size=2)
    assert np.array_equal(loaded.annotations[2], masks[2]) and loaded.video.cache_size == 2


def test_save_is_atomic(vp, make_clip, tmp_path, monkeypatch):
    import ivos.video.state_file as state_file

    frames, masks = make_clip(n=3)
    state = vp.init_state(frames)
    vp.add_new_mask(state, 0, 1, masks[0])
    path = state.save(tmp_path / "s.ivos")
    before = path.read_bytes()
    vp.add_new_mask(state, 1, 1, masks[1])

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(state_file, "_write_frames", broken)
    with pytest.raises(OSError, match="disk full"):
        state.save(path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["s.ivos"]  # old file intact, no leftovers
    monkeypatch.undo()
    assert sorted(VideoState.load(path).annotations) == [0]


def test_bad_state_files_name_the_file(vp, make_clip, tmp_path):
    frames, masks = make_clip(n=3)
    state = vp.init_state(frames)
    vp.add_new_mask(state, 0, 1, masks[0])
    good = state.save(tmp_path / "good.ivos").read_bytes()

    def variant(name, data):
        p = tmp_path / name
        p.write_bytes(data)
        return p

    def rezip(name, edit):
        p = tmp_path / name
        with zipfile.ZipFile(tmp_path / "good.ivos") as src, zipfile.ZipFile(p, "w") as dst:
            for item in src.infolist():
                data = edit(item.filename, src.read(item.filename))
                if data is not None:
                    dst.writestr(item.filename, data)
        return p

    cases = {
        variant("truncated.ivos", good[: len(good) // 2]): "corrupt, truncated",
        variant("empty.ivos", b""): "corrupt, truncated",
        variant("text.ivos", b"not a state\n"): "corrupt, truncated",
        variant("flipped.ivos", good[:200] + bytes(b ^ 0xFF for b in good[200:260]) + good[260:]): "corrupt",
        rezip("no_manifest.ivos", lambda n, d: None if n == "manifest.json" else d): "manifest.json is missing",
        rezip("no_masks.ivos", lambda n, d: None if n == "obj1/masks.counts.npy" else d): "masks.counts.npy",
        rezip("bad_json.ivos", lambda n, d: d[:-5] if n == "manifest.json" else d): "corrupt",
        rezip("other_format.ivos", lambda n, d: d.replace(b'"ivos-video-state"', b'"zip"')
              if n == "manifest.json" else d): "expected 'ivos-video-state'",
        rezip("newer.ivos", lambda n, d: d.replace(b'"format_version": 1', b'"format_version": 99')
              if n == "manifest.json" else d): "format version 99.*upgrade ivos",
        rezip("bad_counts.ivos", lambda n, d: d[:-4] + np.int32(5).tobytes()
              if n == "obj1/masks.counts.npy" else d): "do not sum",
    }
    assert STATE_FORMAT_VERSION == 1
    for path, message in cases.items():
        with pytest.raises(ivos.InvalidInput, match=message) as err:
            VideoState.load(path)
        assert str(path) in str(err.value)
    with pytest.raises(ivos.InvalidInput, match="does not exist"):
        VideoState.load(tmp_path / "missing.ivos")
    with pytest.raises(ivos.InvalidInput, match="path must be a file path"):
        VideoState.load(3)
    with pytest.raises(ivos.InvalidInput, match="is a folder"):
        state.save(tmp_path)
