"""``ivos-bench video-speed --anchor-tree``: another source tree's default propagation, timed
by a worker process whose ``ivos`` is that tree's, answers as the in-process run does."""
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import ivos
from ivos.bench.propagation_clip import clip_run
from ivos.bench.video_speed import TreeAnchor

pytest.importorskip("torch", reason="propagation fine-tunes with torch (pip install 'ivos[export]')")
ENGINE = Path(ivos.__file__).parent


def _clip(folder: Path, n=4, h=96, w=128):
    """A JPEG folder with a square moving right, and its (n, h, w) masks."""
    rng = np.random.default_rng(0)
    folder.mkdir()
    gt = np.zeros((n, h, w), np.uint8)
    for t in range(n):
        frame = rng.integers(0, 60, (h, w, 3), dtype=np.uint8)
        gt[t, 30:70, 20 + 6 * t:60 + 6 * t] = 1
        frame[gt[t] > 0] = (240, 130, 30)
        Image.fromarray(frame).save(folder / f"{t:05d}.jpg", quality=95)
    return gt


@pytest.mark.slow
@pytest.mark.skipif(not list(ENGINE.glob("_C*.so")), reason="the native module is not built in place in engine/")
def test_the_anchor_worker_runs_the_trees_propagation(tmp_path):
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "engine").symlink_to(ENGINE)  # "another" tree: this one, so that both runs must agree
    gt = _clip(tmp_path / "clip")
    anchor = TreeAnchor(tree, threads=1)
    try:
        assert anchor.loaded["ivos"].endswith("ivos/__init__.py") and "osvos-lite0" in anchor.loaded["bundle"]
        far = anchor.run(tmp_path / "clip", [gt[0]], gt)
        two = anchor.run(tmp_path / "clip", [gt[0], np.roll(gt[0], 48, axis=0)], None)
        frames = np.stack([np.asarray(Image.open(f)) for f in sorted((tmp_path / "clip").glob("*.jpg"))])
        in_memory = anchor.run(frames, [gt[0]], gt)
    finally:
        anchor.close()
    near = clip_run(ivos.VideoPredictor(ivos.load("osvos-lite0", threads=1)), tmp_path / "clip", [gt[0]], gt)
    assert far["frames"] == near["frames"] == in_memory["frames"] == 3 and two["frames"] == 3 and "j" not in two
    assert far["j"] == pytest.approx(near["j"], abs=1e-6) and far["j"] > 0.5
    assert 0 < far["first_s"] <= far["total_s"]


def test_a_tree_without_its_native_module_is_refused(tmp_path):
    (tmp_path / "engine").mkdir()
    (tmp_path / "engine" / "__init__.py").write_text("")
    with pytest.raises(SystemExit, match="native module built"):
        TreeAnchor(tmp_path, threads=1)
