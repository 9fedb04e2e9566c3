"""The memory mode of propagation: the shipped OSVOS bundle's trunk and head graphs (equal to
its full graph), one trunk run per frame for every object, masks that follow a moving
object, and clear errors for bundles without the split graphs."""
import json

import numpy as np
import pytest

import ivos
from ivos.errors import ModelError
from ivos.video.osvos.runner import OsvosRunner

pytest.importorskip("cv2", reason="the memory mode warps masks with OpenCV (pip install 'ivos[video]')")
SHIPPED = ivos.runtime.model.SHIPPED_MODELS / "osvos-lite0"


@pytest.fixture(scope="module")
def osvos():
    model = ivos.load("osvos-lite0", backend="ort", threads=1, precision="fp32")  # float parity
    yield model
    model.close()


def test_shipped_parts_equal_the_full_graph(osvos):
    """Trunk + head through the runtime (a crop and the whole working image) give the full
    graph's logits, with the parent head and with another head."""
    session = OsvosRunner(osvos)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (*session.working, 3), dtype=np.uint8)
    prior = (rng.random(session.working) < 0.2).astype(np.float32)
    other = {k: (v + rng.normal(0, 0.02, v.shape)).astype(np.float32) for k, v in session.parent_head.items()}
    for head in (session.parent_head, other):
        session.set_head(head)
        for crop in (None, (64, 32, 64 + 256, 32 + 192)):
            if crop is None:
                ref = session.run_working(image, prior, fetch=("logits",))["logits"][0, 0].copy()
            else:
                ref = session._crop_logits(image, prior, crop)
            got = session.head_logits(session.trunk(image, crop), prior, head)
            assert np.max(np.abs(got - ref) / (1 + np.abs(ref))) < 1e-4
    session.close()


def test_card_records_the_split():
    card = json.loads((SHIPPED / "model.json").read_text())
    assert card["artifacts"]["trunk_onnx"] == "trunk.onnx" and card["artifacts"]["head_onnx"] == "head.onnx"
    assert [t["name"] for t in card["osvos"]["parts"]["trunk"]["inputs"]] == ["image"]
    assert card["osvos"]["split_parity_max_scaled_diff"] < 1e-4


def _two_squares(n=6, h=96, w=128):
    """Frames with an orange square moving right and a blue one moving down, and their masks."""
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 60, (n, h, w, 3), dtype=np.uint8)
    a = np.zeros((n, h, w), np.uint8)
    b = np.zeros((n, h, w), np.uint8)
    for t in range(n):
        a[t, 20:50, 10 + 4 * t:40 + 4 * t] = 1
        b[t, 30 + 3 * t:60 + 3 * t, 80:110] = 1
    frames[a.astype(bool)] = (240, 130, 30)
    frames[b.astype(bool)] = (30, 90, 230)
    return frames, a, b


def test_memory_mode_follows_two_objects_with_one_trunk_run_per_frame(osvos, monkeypatch):
    """The parent head alone does not take a synthetic square for an object (it needs
    fine-tuning, in every mode); the memory readout alone (weight 1) follows both squares."""
    from ivos.settings import MemorySettings

    frames, a, b = _two_squares()
    vp = ivos.VideoPredictor(osvos, mode="memory", finetune_config=ivos.FinetuneConfig(steps=0),
                             memory=MemorySettings(weight=1.0))
    session = vp._propagator.session
    calls = []
    trunk = session.trunk
    monkeypatch.setattr(session, "trunk", lambda *args, **kw: calls.append(1) or trunk(*args, **kw))
    state = vp.init_state(frames)
    vp.add_new_mask(state, 0, 1, a[0])
    vp.add_new_mask(state, 0, 2, b[0])
    results = list(vp.propagate_in_video(state))
    assert [r.frame_idx for r in results] == list(range(6))
    assert len(calls) == 1 + 5  # the annotated frame's keys, then one run per propagated frame
    for r in results[1:]:
        m1, m2 = r.masks[1], r.masks[2]
        assert not (m1 & m2).any()
        i1 = (m1 & a[r.frame_idx]).sum() / (m1 | a[r.frame_idx]).sum()
        i2 = (m2 & b[r.frame_idx]).sum() / (m2 | b[r.frame_idx]).sum()
        assert i1 > 0.9 and i2 > 0.9, (r.frame_idx, i1, i2)
    assert state.finetune_report is None  # 0 steps: the parent head, no fine-tuning
    vp.close()


def test_memory_mode_needs_the_split_graphs(osvos_bundle):
    with pytest.raises(ModelError, match="osvos_split"):
        ivos.VideoPredictor(ivos.load(osvos_bundle, backend="ort", threads=1), mode="memory")


def test_split_refuses_a_trunk_that_reads_the_prior(osvos_bundle, tmp_path):
    import shutil

    from ivos.export.osvos_split import split_bundle

    folder = tmp_path / "b"
    shutil.copytree(osvos_bundle, folder)
    with pytest.raises(RuntimeError, match="prior"):
        split_bundle(folder)


def _bundle_copy(tmp_path, **card_changes):
    """A copy of the shipped osvos-lite0 bundle (graphs linked, not copied) with card changes."""
    import os

    folder = tmp_path / "osvos-copy"
    folder.mkdir()
    for f in SHIPPED.iterdir():
        if f.name != "model.json":
            os.symlink(f, folder / f.name)
    card = json.loads((SHIPPED / "model.json").read_text())
    for key, value in card_changes.items():
        card[key] = value
    (folder / "model.json").write_text(json.dumps(card))
    return folder


def test_card_propagation_section_sets_the_defaults(tmp_path):
    folder = _bundle_copy(tmp_path, propagation={"mode": "memory", "working_size": [288, 512], "finetune_steps": 7,
                                                "memory": {"weight": 0.25, "top_k": 9, "warp": False},
                                                "crf_reach": 1.5, "crf_max_pixels": 90000})
    vp = ivos.VideoPredictor(ivos.load(folder, backend="ort", threads=1))
    s = vp.settings
    assert s.mode == "memory" and s.working_size == (288, 512) and s.finetune.steps == 7
    assert s.memory.weight == 0.25 and s.memory.top_k == 9 and s.memory.warp is False
    assert s.crf_reach == 1.5 and s.crf.max_pixels == 90000
    assert vp._propagator.session.working == (288, 512)
    # arguments beat the card; another mode ignores the memory mode's working size and steps
    other = ivos.VideoPredictor(ivos.load(folder, backend="ort", threads=1), mode="osvos+mask")
    assert other.settings.working_size is None and other.settings.finetune.steps != 7
    assert other._propagator.session.working == tuple(json.loads((SHIPPED / "model.json").read_text())["working_size"])


@pytest.mark.parametrize("propagation, field", [
    ({"mode": "sam"}, "propagation.mode"),
    ({"mode": "memory", "working_size": [288]}, "propagation.working_size"),
    ({"mode": "memory", "finetune_steps": -1}, "propagation.finetune_steps"),
    ({"memory": {"weight": 2.0}}, "propagation.memory"),
    ({"memory": {"nope": 1}}, "propagation.memory"),
    ({"memory": {"warp": "no"}}, "propagation.memory"),
    ({"crf_reach": 0}, "propagation.crf_reach"),
    ({"crf_reach": True}, "propagation.crf_reach"),
    ({"crf_max_pixels": -5}, "propagation.crf_max_pixels"),
])
def test_bad_propagation_sections_name_the_field(tmp_path, propagation, field):
    folder = _bundle_copy(tmp_path, propagation=propagation)
    with pytest.raises(ModelError, match=field.replace(".", r"\.")):
        ivos.VideoPredictor(ivos.load(folder, backend="ort", threads=1))


def test_a_learned_projection_is_used_and_checked(tmp_path):
    from ivos.video.memory_propagation import bundle_projection

    folder = _bundle_copy(tmp_path)
    card = json.loads((folder / "model.json").read_text())
    card["artifacts"]["memory_projection"] = "memory_projection.npz"
    (folder / "model.json").write_text(json.dumps(card))
    rng = np.random.default_rng(0)
    np.savez(folder / "memory_projection.npz", mean=rng.normal(size=472).astype(np.float32),
             axes=rng.normal(size=(16, 472)).astype(np.float32))
    model = ivos.load(folder, backend="ort", threads=1)
    proj = bundle_projection(model.bundle)
    assert proj.axes.shape == (16, 472)
    frames, a, _ = _two_squares(n=3)
    vp = ivos.VideoPredictor(model, mode="memory", finetune_config=ivos.FinetuneConfig(steps=0))
    state = vp.init_state(frames)
    vp.add_new_mask(state, 0, 1, a[0])
    assert len(list(vp.propagate_in_video(state))) == 3
    np.savez(folder / "memory_projection.npz", mean=np.zeros(3, np.float32), axes=np.zeros((4, 5), np.float32))
    with pytest.raises(ModelError, match="memory_projection"):
        bundle_projection(model.bundle)


def test_working_size_must_suit_the_graph(osvos):
    with pytest.raises(ivos.InvalidInput, match="multiples of 32"):
        OsvosRunner(osvos, (300, 512))


def test_memory_mode_backward_pass_refine_and_saved_state(osvos, click_bundle, tmp_path):
    """Annotated on a middle frame: the forward then backward passes; a refine adds an
    annotation (and a memory frame) and propagation re-runs from it; a saved state continues
    with identical masks."""
    from ivos.settings import MemorySettings

    frames, a, _ = _two_squares(n=5)
    clicker = ivos.load(click_bundle, backend="ort", threads=1)
    vp = ivos.VideoPredictor(osvos, clicker, mode="memory", finetune_config=ivos.FinetuneConfig(steps=0),
                             memory=MemorySettings(weight=1.0))
    state = vp.init_state(frames)
    vp.add_new_mask(state, 2, 1, a[2])
    order = [r.frame_idx for r in vp.propagate_in_video(state)]
    assert order == [2, 3, 4, 1, 0]
    for i in (0, 1, 3, 4):
        m = state.mask(i)
        assert (m & a[i]).sum() / (m | a[i]).sum() > 0.9, i
    vp.refine(state, 4, 1, [[float(a[4].nonzero()[1].mean()), float(a[4].nonzero()[0].mean())]], [1])
    assert 4 in state.objects[1].annotations
    again = list(vp.propagate_in_video(state, start_frame_idx=3))
    assert [r.frame_idx for r in again] == [3, 4]
    path = tmp_path / "state.ivos"
    vp.save_state(state, path)
    restored = vp.load_state(path)
    for i in range(5):
        assert np.array_equal(restored.mask(i), state.mask(i))


def test_online_adaptation_tunes_run_heads_on_confident_frames(osvos_bundle, make_clip, monkeypatch):
    """Every adapt_every frames the confident propagated frames join the fine-tuning set: the
    run's head is tuned on from where it is; the track keeps its annotation-tuned head."""
    import ivos.video.osvos.finetune as ft
    from ivos.video.propagation import OnlineAdaptation
    from ivos.video.results import MultiFrameResult

    frames, masks = make_clip(n=6)
    vp = ivos.VideoPredictor(ivos.load(osvos_bundle, backend="ort", threads=1),
                             finetune_config=ivos.FinetuneConfig(steps=2, augmentations=2), adapt_every=2,
                             adapt_steps=3)
    assert vp.settings.adapt_every == 2 and vp.settings.adapt_steps == 3
    state = vp.init_state(frames)
    vp.add_new_mask(state, 0, 1, masks[0])
    vp.finetune(state, 1)
    tuned = state.objects[1].head
    track = state.objects[1]
    for i in (1, 2):  # pretend frames 1, 2 were propagated
        from ivos.video.tracks import compact_rle

        track.masks[i] = compact_rle(masks[i])
    calls = []
    real = ft.finetune
    monkeypatch.setattr(ft, "finetune", lambda session, fr, ms, cfg, init=None, progress=None: calls.append(
        (len(fr), cfg.steps, init is not None)) or real(session, fr, ms, cfg, init=init))
    adapter = OnlineAdaptation(vp._propagator.session, state, [track], {1: tuned}, vp.settings)

    def result(i, conf):
        return MultiFrameResult(i, {1: masks[i]}, {1: conf}, {1: "propagated"}, {1: 0.0}, None)

    adapter.after(1, result(1, 0.95))
    assert calls == []  # not yet: every 2 frames
    adapter.after(2, result(2, 0.5))  # not confident: not a training frame
    assert calls == [(2, 3, True)]  # frame 0 (annotated) + frame 1 (confident), tuned on from the run's head
    assert adapter.heads[1] is not tuned and state.objects[1].head is tuned


def test_memory_mode_adapts_from_its_own_trunk_runs(osvos, monkeypatch):
    """In memory mode online adaptation fits on the features the propagation computed: no
    fine-tuning run per adaptation (the annotated frames' augmented examples are made once per
    run); the tracks keep their heads. Without ``warp`` no flow is computed."""
    from dataclasses import replace

    import ivos.video.osvos.finetune as ft
    from ivos.settings import MemorySettings
    from ivos.video.flow import MaskWarper

    frames, a, _ = _two_squares()
    vp = ivos.VideoPredictor(osvos, mode="memory", memory=MemorySettings(weight=0.0, warp=False),
                             finetune_config=ivos.FinetuneConfig(steps=2, augmentations=2, batch=2, crop=16, threads=1),
                             adapt_every=2, adapt_steps=2)
    vp._propagator.settings = replace(vp.settings, adapt_min_confidence=0.0)  # the synthetic squares' masks are unsure
    state = vp.init_state(frames)
    vp.add_new_mask(state, 0, 1, a[0])
    vp.finetune(state, 1)
    head = state.objects[1].head
    session = vp._propagator.session
    trunk_calls, fits = [], []
    trunk, fit = session.trunk, ft.fit_head
    monkeypatch.setattr(session, "trunk", lambda *args, **kw: trunk_calls.append(1) or trunk(*args, **kw))
    monkeypatch.setattr(ft, "fit_head", lambda examples, init, cfg, progress=None: fits.append(
        (len(examples), cfg.steps)) or fit(examples, init, cfg, progress))
    monkeypatch.setattr(ft, "finetune", lambda *args, **kw: pytest.fail("adaptation re-ran fine-tuning"))
    monkeypatch.setattr(MaskWarper, "flow", lambda *args, **kw: pytest.fail("flow computed with warp=False"))
    results = list(vp.propagate_in_video(state))
    assert [r.frame_idx for r in results] == list(range(6))
    assert len(trunk_calls) == 5  # one per propagated frame (the annotated examples: the trunk graph directly)
    assert fits and all(steps == 2 for _, steps in fits)
    assert fits[0][0] == 4 + 1  # the annotated frame's 4 priors + the one confident frame so far
    assert state.objects[1].head is head
    vp.close()


def test_the_shipped_recipe_propagates_without_torch_and_opencv(osvos, monkeypatch, caplog):
    """A runtime-only install (no torch, no OpenCV) propagates with v2's recipe: no flow warp
    needs no OpenCV, and online adaptation is skipped with a warning instead of failing."""
    import sys

    from ivos.settings import MemorySettings

    frames, a, _ = _two_squares()
    vp = ivos.VideoPredictor(osvos, mode="memory", memory=MemorySettings(weight=0.0, warp=False),
                             finetune_config=ivos.FinetuneConfig(steps=0), adapt_every=2)
    monkeypatch.setitem(sys.modules, "torch", None)  # as if not installed
    monkeypatch.setitem(sys.modules, "cv2", None)
    state = vp.init_state(frames)
    vp.add_new_mask(state, 0, 1, a[0])
    with caplog.at_level("WARNING", logger="ivos"):
        results = list(vp.propagate_in_video(state))
    assert [r.frame_idx for r in results] == list(range(6))
    assert "online adaptation needs PyTorch" in caplog.text
    vp.close()


def test_quick_start_shows_the_first_frames_then_tunes_the_whole_head(osvos, monkeypatch):
    """With ``quick_steps`` the first frames come from a head fitted briefly on the first
    augmentations; after ``quick_frames`` frames the whole fine-tune runs, reusing those
    examples' features, and its head (the same as without the quick start) serves the rest
    and stays with the object."""
    from dataclasses import replace

    import ivos.video.osvos.finetune as ft
    import ivos.video.predictor as predictor_module
    from ivos.settings import MemorySettings

    frames, a, _ = _two_squares()
    cfg = ivos.FinetuneConfig(steps=4, augmentations=4, batch=2, crop=16, threads=1, quick_steps=2,
                              quick_augmentations=2, quick_frames=1)
    memory = MemorySettings(weight=0.0, warp=False)
    plain = ivos.VideoPredictor(osvos, mode="memory", memory=memory, finetune_config=replace(cfg, quick_steps=0))
    reference = plain.init_state(frames)
    plain.add_new_mask(reference, 0, 1, a[0])
    expected = plain.finetune(reference, 1).params

    vp = ivos.VideoPredictor(osvos, mode="memory", memory=memory, finetune_config=cfg)
    state = vp.init_state(frames)
    vp.add_new_mask(state, 0, 1, a[0])
    session = vp._propagator.session
    events = []
    window, fit = session.trunk_window, ft.fit_head

    def counted_fit(examples, init, cfg, progress=None):
        events.append(("fit", len(examples["low"]), cfg.steps))
        return fit(examples, init, cfg, progress)
    monkeypatch.setattr(session, "trunk_window", lambda *args: events.append("trunk") or window(*args))
    monkeypatch.setattr(ft, "fit_head", counted_fit)
    monkeypatch.setattr(predictor_module, "fit_head", counted_fit)
    run = vp.propagate_in_video(state)
    assert next(run).frame_idx == 0 and events == ["trunk", "trunk", ("fit", 2, 2)]  # the quick head only
    events.clear()
    assert next(run).frame_idx == 1 and state.objects[1].head is None  # still the quick head's frame
    assert events == ["trunk"]
    events.clear()
    assert next(run).frame_idx == 2
    assert events == ["trunk", "trunk", ("fit", 4, 4), "trunk"]  # 2 new examples (2 reused), the whole fit, frame 2
    assert [r.frame_idx for r in run] == [3, 4, 5]
    head = state.objects[1].head
    assert head is not None and all(np.array_equal(head[k], expected[k]) for k in expected)
    # the head is current now: propagating again does not fine-tune
    events.clear()
    assert len(list(vp.propagate_in_video(state))) == 6 and not any(isinstance(e, tuple) for e in events)


def _far_squares(n=4, h=240, w=427):
    """Frames with an orange square near the top-left corner and a blue one near the
    bottom-right, both moving a little, and their masks: two objects far apart."""
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 60, (n, h, w, 3), dtype=np.uint8)
    a = np.zeros((n, h, w), np.uint8)
    b = np.zeros((n, h, w), np.uint8)
    for t in range(n):
        a[t, 20 + 2 * t:50 + 2 * t, 20:50] = 1
        b[t, 180:210, 360 - 3 * t:390 - 3 * t] = 1
    frames[a.astype(bool)] = (240, 130, 30)
    frames[b.astype(bool)] = (30, 90, 230)
    return frames, a, b


def test_each_head_runs_on_its_own_window_of_the_shared_features(osvos, monkeypatch):
    """With two objects apart, the trunk runs once on the union of their gates and each head
    on the window around its own gate (smaller than that union), and the masks are those of
    heads run on the whole union."""
    from ivos.video.memory_propagation import MemoryRun

    pytest.importorskip("torch")
    frames, a, b = _far_squares()

    def propagate(windowed: bool):
        vp = ivos.VideoPredictor(osvos, mode="memory", finetune_config=ivos.FinetuneConfig(steps=20), adapt_every=0)
        session = vp._propagator.session
        runs = []  # (trunk crop, head window) per head run
        head_logits = session.head_logits
        monkeypatch.setattr(session, "head_logits", lambda features, *args: runs.append(features.crop)
                            or head_logits(features, *args))
        if not windowed:
            monkeypatch.setattr(MemoryRun, "_head_features", lambda self, obj_id, features, *args: features)
        state = vp.init_state(frames)
        vp.add_new_mask(state, 0, 1, a[0])
        vp.add_new_mask(state, 0, 2, b[0])
        masks = [r.masks for r in vp.propagate_in_video(state)]
        vp.close()
        monkeypatch.undo()
        return masks, runs

    windowed, windows = propagate(True)
    union, unions = propagate(False)
    area = [(x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in windows]
    assert len(windows) == 2 * 3 and max(area) < 0.5 * min((x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in unions)
    for w, u in zip(windowed[1:], union[1:]):
        for k in (1, 2):
            assert u[k].any()
            assert (w[k] & u[k]).sum() / (w[k] | u[k]).sum() > 0.99


def test_head_windows_cover_their_gate_on_the_feature_grid(osvos):
    """``OsvosRunner.head_window``: inside the trunk's crop, offsets from its origin on the
    stride-8 grid, sides multiples of the size multiple, covering the gate and its context
    as far as the crop goes; the previous size is kept while the gate fits in it."""
    from ivos.video.osvos.runner import HEAD_WINDOW_CONTEXT

    session = OsvosRunner(osvos)
    box = session.letterbox(480, 854)
    m = session.size_multiple
    rng = np.random.default_rng(0)
    for crop in ((0, 0, 864, 480), (100, 36, 100 + 448, 36 + 320)):
        fx0, fy0, fx1, fy1 = crop
        for _ in range(200):
            x0, x1 = sorted(rng.integers(fx0, min(fx1, 854), 2))
            y0, y1 = sorted(rng.integers(fy0, fy1, 2))
            gate = (int(x0), int(y0), int(x1) + 1, int(y1) + 1)
            window = session.head_window(gate, box, crop)
            if window is None:
                continue
            wx0, wy0, wx1, wy1 = window
            assert fx0 <= wx0 < wx1 <= fx1 and fy0 <= wy0 < wy1 <= fy1
            assert (wx0 - fx0) % 8 == 0 and (wy0 - fy0) % 8 == 0
            assert (wx1 - wx0) % m == 0 and (wy1 - wy0) % m == 0
            c = HEAD_WINDOW_CONTEXT
            assert wx0 <= max(fx0, gate[0] - c) and wy0 <= max(fy0, gate[1] - c)
            assert wx1 >= min(fx1, gate[2] + c) and wy1 >= min(fy1, gate[3] + c)
            size = (wx1 - wx0, wy1 - wy0)
            moved = (gate[0] + 8, gate[1], gate[2] + 8, gate[3])
            again = session.head_window(moved, box, crop, size)
            if gate[0] - c >= fx0 and moved[2] + c <= fx1:  # the same need, 8 px on: the same size
                assert again is not None and (again[2] - again[0], again[3] - again[1]) == size
    session.close()
