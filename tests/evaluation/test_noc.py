"""The evaluation loop (ivos.evaluation.noc) with synthetic segmenters: no data set needed."""
import numpy as np
import pytest

from ivos.errors import InvalidInput
from ivos.evaluation.clicker import Click
from ivos.evaluation.datasets import Sample
from ivos.evaluation.noc import aggregate, evaluate, evaluate_sample
from ivos.mask_metrics import iou


def make_sample(name="s", with_ignore=False):
    gt = np.zeros((40, 50), bool)
    gt[8:30, 10:40] = True
    ignore = None
    if with_ignore:
        ignore = np.zeros_like(gt)
        ignore[6:10, :] = True  # a band over the object's top edge
    return Sample(name, np.zeros((40, 50, 3), np.uint8), gt, ignore)


class Scripted:
    """Predicts the empty mask until click ``k``, the ground truth from then on."""

    def __init__(self, gt, k, name="scripted"):
        self.gt, self.k, self.name = gt, k, name
        self.calls: list[tuple[list[Click], object]] = []

    def set_image(self, image):
        self.calls = []

    def predict(self, clicks, prev_mask):
        self.calls.append((list(clicks), prev_mask))
        return self.gt.copy() if len(clicks) >= self.k else np.zeros_like(self.gt)


class Empty:
    name = "empty"

    def set_image(self, image):
        pass

    def predict(self, clicks, prev_mask):
        return np.zeros((40, 50), np.uint8)


def test_iou_ignores_pixels():
    gt = np.zeros((4, 4), bool)
    gt[:2] = True
    pred = np.zeros_like(gt)
    pred[:1] = True
    assert iou(gt, pred) == pytest.approx(0.5)
    ignore = np.zeros_like(gt)
    ignore[1] = True                        # the missed row no longer counts
    assert iou(gt, pred, ignore) == 1.0
    assert iou(np.zeros_like(gt), np.zeros_like(gt)) == 1.0


def test_perfect_predictor_noc_1():
    s = make_sample()
    r = evaluate([Scripted(s.gt, 1)], [s, make_sample("t")])["scripted"]
    assert r.noc85 == r.noc90 == 1 and r.n_fail90 == 0
    assert r.miou_per_click == (1.0,) * 20
    # nothing left to correct after a perfect mask: the user stops clicking
    assert len(r.samples[0].clicks) == 1 and len(r.samples[0].seconds) == 1


def test_never_changing_predictor_fails_everything():
    r = evaluate([Empty()], [make_sample("a"), make_sample("b"), make_sample("c")], max_clicks=20)["empty"]
    assert r.noc85 == r.noc90 == 20 and r.n_fail90 == 3 and r.n_images == 3
    assert len(r.miou_per_click) == 20 and max(r.miou_per_click) == 0.0
    assert r.spc >= 0.0


@pytest.mark.parametrize("k", [2, 5, 13])
def test_perfect_at_click_k_gives_noc_k(k):
    s = make_sample(with_ignore=True)
    seg = Scripted(s.gt, k)
    res = evaluate_sample(seg, s, max_clicks=20)
    assert res.noc(0.85) == res.noc(0.90) == k
    assert res.ious[:k - 1] == (0.0,) * (k - 1) and res.ious[k - 1:] == (1.0,) * (21 - k)
    # the loop hands over all clicks so far and the previous mask (None before the first)
    clicks, prev = seg.calls[-1]
    assert len(clicks) == k and prev is not None and seg.calls[0][1] is None
    # every click is positive (empty prediction: only false negatives), never on ignore pixels,
    # and never twice on the same pixel
    assert all(c.positive and s.gt[c.y, c.x] and not s.ignore[c.y, c.x] for c in res.clicks)
    assert len(set(res.clicks)) == len(res.clicks)


def test_side_by_side_and_aggregate():
    s = make_sample()
    out = evaluate([Scripted(s.gt, 3, "a"), Scripted(s.gt, 7, "b")], [s])
    assert (out["a"].noc90, out["b"].noc90) == (3, 7)
    assert out["a"].summary()["per_sample"][0]["noc90"] == 3
    with pytest.raises(InvalidInput, match="unique"):
        evaluate([Empty(), Empty()], [s])
    with pytest.raises(InvalidInput):
        aggregate("x", [], 20)


def test_wrong_mask_shape_is_reported():
    class Bad(Empty):
        def predict(self, clicks, prev_mask):
            return np.zeros((3, 3), bool)

    with pytest.raises(InvalidInput, match="empty.predict"):
        evaluate_sample(Bad(), make_sample())


def test_grabcut_baseline_segments_a_flat_object():
    pytest.importorskip("cv2")
    from ivos.bench.grabcut_baseline import GrabCutSegmenter

    rng = np.random.default_rng(0)
    img = rng.integers(0, 60, (60, 80, 3)).astype(np.uint8)   # dark noisy background
    gt = np.zeros((60, 80), bool)
    gt[15:45, 20:60] = True
    img[gt] = rng.integers(180, 255, (int(gt.sum()), 3))       # bright object
    r = evaluate([GrabCutSegmenter(min_margin=0.3)], [Sample("g", img, gt, None)], max_clicks=3)["grabcut"]
    assert r.miou_per_click[-1] > 0.9


def test_click_cli_on_a_folder(tmp_path, capsys):
    for mod in ("cv2", "tqdm", "matplotlib"):
        pytest.importorskip(mod)
    import argparse
    import json

    from PIL import Image

    from ivos.bench import click

    rng = np.random.default_rng(1)
    for stem in ("a", "b"):
        img = rng.integers(0, 60, (48, 64, 3)).astype(np.uint8)
        img[10:40, 16:50] = 220
        mask = np.zeros((48, 64), np.uint8)
        mask[10:40, 16:50] = 255
        (tmp_path / "im").mkdir(exist_ok=True)
        (tmp_path / "gt").mkdir(exist_ok=True)
        Image.fromarray(img).save(tmp_path / "im" / f"{stem}.png")
        Image.fromarray(mask).save(tmp_path / "gt" / f"{stem}.png")
    parser = argparse.ArgumentParser()
    click.add_arguments(parser)
    args = parser.parse_args(["--dataset", "folder", "--images", str(tmp_path / "im"), "--masks",
                              str(tmp_path / "gt"), "--max-clicks", "4", "--json", str(tmp_path / "r.json"),
                              "--plot", str(tmp_path / "r.png")])
    assert click.run(args) == 0
    assert "| grabcut |" in capsys.readouterr().out
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["n_images"] == 2 and len(report["miou_per_click"]) == 4
    assert report["noc90"] == report["methods"]["grabcut"]["noc90"]
    assert (tmp_path / "r.png").stat().st_size > 0


def test_results_are_reported_per_object_size():
    from ivos.evaluation.noc import SIZE_BUCKETS, size_bucket

    assert [size_bucket(f) for f in (0.0, 0.0099, 0.01, 0.049, 0.05, 0.2, 1.0)] == \
        ["< 1%", "< 1%", "1-5%", "1-5%", "5-20%", "> 20%", "> 20%"]
    assert [b[0] for b in SIZE_BUCKETS] == ["< 1%", "1-5%", "5-20%", "> 20%"]
    big = make_sample("big")  # 22 x 30 of 40 x 50: 33%
    tiny_gt = np.zeros((40, 50), bool)
    tiny_gt[5:7, 5:8] = True  # 6 px: 0.3%
    tiny = Sample("tiny", np.zeros((40, 50, 3), np.uint8), tiny_gt, None)

    class Truth:
        name = "truth"

        def set_image(self, image):
            self.gt = {0: big.gt, 1: tiny.gt}[len(self.seen)]
            self.seen.append(1)

        def predict(self, clicks, prev_mask):
            return self.gt if self.gt is big.gt or len(clicks) >= 3 else np.zeros_like(self.gt)

    seg = Truth()
    seg.seen = []
    r = evaluate([seg], [big, tiny])["truth"]
    assert [round(s.area_fraction, 4) for s in r.samples] == [0.33, 0.003]
    sizes = r.summary()["by_size"]
    assert set(sizes) == {"< 1%", "> 20%"}
    assert sizes["> 20%"]["noc90"] == 1 and sizes["< 1%"]["noc90"] == 3 and sizes["< 1%"]["n"] == 1
