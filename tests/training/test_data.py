"""Training data: the leakage rules on a tiny fake data-set tree, object extraction, views."""
import cv2
import numpy as np

from training import data
from training.augment import make_view
from training.interactions import first_interaction


def _write(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), array)


def _fake_root(tmp_path):
    rng = np.random.default_rng(0)
    img = lambda: rng.integers(0, 255, (60, 80, 3), np.uint8)  # noqa: E731
    square = np.zeros((60, 80), np.uint8)
    square[10:40, 20:60] = 255
    davis = tmp_path / "DAVIS2016"
    (davis / "ImageSets").mkdir(parents=True)
    (davis / "ImageSets" / "train.txt").write_text("seqa\nseqb\n")
    (davis / "ImageSets" / "dev.txt").write_text("devseq\n")
    for seq in ("seqa", "seqb", "devseq"):
        _write(davis / "JPEGImages" / "480p" / seq / "00000.jpg", img())
        _write(davis / "Annotations" / "480p" / seq / "00000.png", square)
    bsds = tmp_path / "BSDS500"
    regions = np.ones((60, 80), np.uint16)
    regions[:, 40:] = 2
    regions[30:, :] += 2  # four quadrant regions 1..4
    for split, ids in (("train", ["111", "222", "333"]), ("test", ["444"])):
        for i in ids:
            _write(bsds / "images" / split / f"{i}.jpg", img())
            _write(bsds / "segmentations" / split / f"{i}_0.png", regions)
    (bsds / "overlap_with_Berkeley_GrabCut_eval.txt").write_text("222\n")
    coco = tmp_path / "coco128-seg"
    inst = np.zeros((60, 80), np.uint16)
    inst[5:30, 5:30] = 1
    inst[40:41, 70:71] = 2  # 1 px: too small
    for stem in ("000001", "000002", "000003"):
        _write(coco / "images" / f"{stem}.jpg", img())
        _write(coco / "masks" / f"{stem}.png", inst)
    for banned in ("GrabCut", "Berkeley"):
        (tmp_path / banned).mkdir()
    return tmp_path


def test_leakage_rules_and_split(tmp_path, monkeypatch):
    from ivos.evaluation import datasets

    monkeypatch.setattr(data, "VAL_DAVIS", ("seqb",))
    monkeypatch.setattr(data, "N_VAL_BSDS", 1)
    monkeypatch.setattr(datasets, "COCO_HELDASIDE_IMAGES", 1)
    cache = data.build_cache(_fake_root(tmp_path))
    (held,), train_stems = datasets.coco128_split(tmp_path)
    assert [e.key for e in cache.train["coco"]] == [f"coco/{s}" for s in train_stems]  # the evaluation's image: never
    keys = [e.key for es in cache.train.values() for e in es] + [e.key for e in cache.val]
    assert not any("devseq" in k or "/222/" in k for k in keys)  # DAVIS dev and GrabCut/Berkeley overlap
    assert [e.key for e in cache.train["davis"]] == ["davis/seqa/00000"]
    assert "davis/seqb/00000" in [e.key for e in cache.val]
    val_bsds = {e.key for e in cache.val if e.source == "bsds"}
    train_bsds = {e.key for e in cache.train["bsds"]}
    assert len(val_bsds) == 1 and len(train_bsds) == 2 and not val_bsds & train_bsds
    assert cache.train["coco"][0].objects == [(1,)]
    for e in cache.train["bsds"]:
        assert set(e.objects) <= {(1,), (2,), (3,), (4,), (1, 2), (1, 3), (2, 4), (3, 4)}
        assert (1, 4) not in e.objects  # diagonal quadrants do not touch


def test_adjacent_pairs():
    labels = np.array([[1, 1, 2], [3, 3, 2], [3, 3, 3]], np.uint16)
    assert data._adjacent_pairs(labels) == {(1, 2), (1, 3), (2, 3)}


def test_view_shows_object_and_first_interaction_is_positive():
    labels = np.zeros((100, 150), np.uint16)
    labels[30:70, 40:90] = 7
    entry = data.Entry(np.full((100, 150, 3), 128, np.uint8), labels, [(7,)], "test", "t")
    rng = np.random.default_rng(0)
    for _ in range(10):
        view = make_view(entry, 0, 64, rng)
        assert view.image.shape == (64, 64, 3) and view.gt.sum() >= 64 and not view.others.any()
        clicks, strokes = first_interaction(view, rng)
        pos = clicks[clicks[:, 2] == 1]
        assert len(pos) or any(label == 1 for _, label in strokes)
        assert np.all(view.gt[pos[:, 1].astype(int), pos[:, 0].astype(int)])
    fixed = [make_view(entry, 0, 64, np.random.default_rng(s), augment=False).image for s in (1, 2)]
    assert np.array_equal(*fixed)  # validation views do not depend on the generator
