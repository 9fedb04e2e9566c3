"""The video cross-validation harness: folds, method strings, fold bundles, readout priors,
synthetic clips and the learned key projection (on small generated data)."""
import json

import numpy as np
import pytest

pytest.importorskip("torch", reason="training needs torch")

from training.synthetic_clips import make_clip  # noqa: E402
from training.video_cv import SHIPPED_OSVOS, folds_of, readout_priors, sync_graphs, write_fold_bundle  # noqa: E402
from training.video_cv_eval import parse_method, predictor_for, summary  # noqa: E402


def test_folds_cover_every_sequence_once_and_are_reproducible():
    names = [f"s{i:02d}" for i in range(30)]
    folds = folds_of(names, 3, seed=0)
    assert sorted(n for f in folds for n in f) == names
    assert [len(f) for f in folds] == [10, 10, 10]
    assert folds == folds_of(list(reversed(names))[::-1], 3, seed=0)
    assert folds != folds_of(names, 3, seed=1)
    assert [len(f) for f in folds_of(names[:7], 3)] == [3, 2, 2]


def test_method_strings():
    assert parse_method("old:mode=osvos+mask,steps=0") == ("old", {"mode": "osvos+mask", "steps": "0"})
    assert parse_method("plain") == ("plain", {})
    with pytest.raises(SystemExit, match="unknown keys"):
        parse_method("x:speed=fast")


def test_methods_change_a_named_propagation_whatever_the_shipped_card_says():
    """Without ``propagation`` a method changes the classic recipe (so old results keep their
    meaning after the card changes); ``propagation=bundle`` starts from the card."""
    from ivos.settings import FinetuneConfig

    vp, model = predictor_for(SHIPPED_OSVOS, parse_method("old:mode=osvos+mask")[1], threads=1)
    s = vp.settings
    assert s.mode == "osvos+mask" and s.finetune == FinetuneConfig(threads=1) and s.adapt_every == 0
    vp, model = predictor_for(SHIPPED_OSVOS, parse_method("x:ft_batch=2,ft_crop_features=1,crf_reach=1.5,warp=0,"
                                                          "mode=memory")[1], threads=1)
    s = vp.settings
    assert s.mode == "memory" and s.finetune.batch == 2 and s.finetune.crop_features is True
    assert s.crf_reach == 1.5 and s.memory.warp is False and s.finetune.crop == FinetuneConfig().crop
    card = json.loads((SHIPPED_OSVOS / "model.json").read_text())
    vp, model = predictor_for(SHIPPED_OSVOS, parse_method("new:propagation=bundle")[1], threads=1)
    s = vp.settings
    assert s.mode == card["propagation"]["mode"] and s.finetune.batch == card["finetune"]["batch"]
    assert s.adapt_every == card["propagation"]["adapt_every"]


def test_summary_reports_fold_means_and_spread():
    seqs = {"a": {"fold": 0, "j": 0.8, "finetune_s": 1.0, "frame_ms_p50": 10.0, "wall_s": 2.0},
            "b": {"fold": 0, "j": 0.6, "finetune_s": 3.0, "frame_ms_p50": 30.0, "wall_s": 2.0},
            "c": {"fold": 1, "j": 0.9, "finetune_s": 2.0, "frame_ms_p50": 20.0, "wall_s": 1.0}}
    s = summary(seqs)
    assert s["j"] == pytest.approx(2.3 / 3) and s["fold_j"] == pytest.approx([0.7, 0.9])
    assert s["fold_spread"] == pytest.approx(0.2) and s["wall_s"] == 5.0 and s["finetune_s_p50"] == 2.0


def test_fold_bundle_is_the_shipped_graphs_with_its_own_head_and_projection(tmp_path):
    import ivos
    from ivos.video.memory_read import Projection

    head = {k: v + 1.0 for k, v in np.load(SHIPPED_OSVOS / "head_parent.npz").items()}
    rng = np.random.default_rng(0)
    proj = Projection(rng.normal(size=472).astype(np.float32), rng.normal(size=(8, 472)).astype(np.float32))
    dest = tmp_path / "fold0" / "osvos-lite0"
    write_fold_bundle(dest, head, {"fold": 0}, proj)
    card = json.loads((dest / "model.json").read_text())
    assert card["model_card"]["training"] == {"fold": 0}
    assert card["artifacts"]["memory_projection"] == "memory_projection.npz"
    model = ivos.load(dest, backend="ort", threads=1)
    from ivos.video.memory_propagation import bundle_projection

    assert np.array_equal(bundle_projection(model.bundle).axes, proj.axes)
    sync_graphs(dest)  # idempotent: keeps the fold's projection
    assert json.loads((dest / "model.json").read_text())["artifacts"]["memory_projection"] == "memory_projection.npz"


def test_a_stale_fold_bundle_takes_the_shipped_recipe(tmp_path):
    """A fold bundle written when the shipped card named another recipe follows today's after
    sync_graphs: ``propagation=bundle`` must mean the shipped recipe on the fold's head."""
    import ivos
    from ivos.settings import PropagationSettings

    dest = tmp_path / "fold1" / "osvos-lite0"
    write_fold_bundle(dest, dict(np.load(SHIPPED_OSVOS / "head_parent.npz")), {"fold": 1})
    card = json.loads((dest / "model.json").read_text())
    card.pop("propagation", None)
    card["finetune"] = {"steps": 150, "lr": 0.002, "schedule": "cosine", "crop": 48}  # an older card's
    (dest / "model.json").write_text(json.dumps(card))
    sync_graphs(dest)
    fold = PropagationSettings.resolve(ivos.load(dest, backend="ort", threads=1).bundle, threads=1)
    shipped = PropagationSettings.resolve(ivos.load(SHIPPED_OSVOS, backend="ort", threads=1).bundle, threads=1)
    assert (fold.mode, fold.adapt_every, fold.crf_reach, fold.finetune, fold.memory) == \
        (shipped.mode, shipped.adapt_every, shipped.crf_reach, shipped.finetune, shipped.memory)
    assert json.loads((dest / "model.json").read_text())["model_card"]["training"] == {"fold": 1}


def _sequence(n=5, seed=0):
    """Cached-feature-like data of a 'sequence' whose object cells carry a distinct feature."""
    rng = np.random.default_rng(seed)
    high = rng.normal(0, 1, (n, 32, 36, 64)).astype(np.float16)
    target = np.zeros((n, 1, 72, 128), np.float16)
    for e in range(n):
        y, x = 10 + e, 20 + 2 * e
        target[e, 0, y:y + 24, x:x + 32] = 1
        high[e, :8, y // 2:(y + 24) // 2, x // 2:(x + 32) // 2] += 4.0  # the object's look
    return {"low": np.zeros((n, 4, 72, 128), np.float16), "high": high,
            "prior": np.zeros((n, 1, 72, 128), np.float16), "target": target}


def test_readout_priors_find_the_object():
    data = _sequence()
    out = readout_priors(data, 1.0)
    assert np.array_equal(out["prior"][0], data["prior"][0])  # the memory frame keeps its prior
    for e in range(1, 5):
        r, t = out["prior"][e, 0] > 0.5, data["target"][e, 0] > 0.5
        assert (r & t).sum() / (r | t).sum() > 0.6
    mixed = readout_priors(data, 0.5, from_target=True)
    assert mixed["prior"][1:].max() <= 1.0 and (mixed["prior"][1:] > 0).any()
    assert data["prior"].max() == 0  # the input is not changed


def test_synthetic_clips_move_the_object_and_keep_masks_binary():
    from training.data import Entry

    rng = np.random.default_rng(0)
    entries = []
    for i in range(3):
        image = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
        labels = np.zeros((120, 160), np.uint16)
        labels[30:80, 40:100] = 1
        entries.append(Entry(image, labels, [(1,)], "coco", f"t{i}"))
    clips = [c for c in (make_clip(entries, rng, (96, 160)) for _ in range(20)) if c is not None]
    assert len(clips) >= 10
    for img_a, mask_a, img_b, mask_b in clips:
        assert img_a.shape == img_b.shape == (96, 160, 3) and mask_a.shape == mask_b.shape == (96, 160)
        assert set(np.unique(mask_a)) <= {0.0, 1.0} and set(np.unique(mask_b)) <= {0.0, 1.0}
        assert mask_a.any() and mask_b.any()
    assert any(not np.array_equal(a[1], a[3]) for a in clips)


def test_learned_projection_reads_the_object():
    from ivos.video.memory_read import Projection
    from training.memory_projection import readout_iou, train_projection

    data = {f"s{i}": {"high": _sequence(seed=i)["high"].astype(np.float32),
                      "target": _sequence(seed=i)["target"][:, 0].astype(np.float32)} for i in range(3)}
    mean, axes, temperature = train_projection(data, steps=60, seed=0, dims=8)
    assert mean.shape == (32,) and axes.shape == (8, 32) and temperature > 0
    assert readout_iou(data, lambda high: Projection(mean, axes)) > 0.6
