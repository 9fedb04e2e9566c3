"""Evaluation-set readers (ivos.evaluation.datasets) and the data-root resolver
(ivos.datasets_root) on tiny generated folders, and on the real sets under ../shared/datasets
when present."""
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import ivos
from ivos import data_root
from ivos.errors import InvalidInput
from ivos.evaluation.datasets import open_dataset

REAL_ROOT = ivos.datasets_root() or Path(__file__).resolve().parents[2].parent / "shared" / "datasets"


def save(path: Path, array: np.ndarray, mode: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode).save(path) if mode else Image.fromarray(array).save(path)


def image(h=6, w=8, value=10):
    return np.full((h, w, 3), value, np.uint8)


def test_grabcut_layout_with_ignore_band(tmp_path):
    m = np.zeros((6, 8), np.uint8)
    m[1:5, 2:6] = 255
    m[1, 2:6] = 128
    save(tmp_path / "GrabCut/data_GT/a.jpg", image())
    save(tmp_path / "GrabCut/data_GT/b.bmp", image())
    save(tmp_path / "GrabCut/boundary_GT/a.bmp", m)
    save(tmp_path / "GrabCut/boundary_GT/b.bmp", m)
    ds = open_dataset("GrabCut", root=tmp_path)
    assert ds.names == ["a", "b"] and len(ds) == 2
    s = ds[1]
    assert s.image.shape == (6, 8, 3) and s.image.dtype == np.uint8
    assert s.gt.dtype == bool and s.gt.sum() == 12 and s.ignore.sum() == 4
    assert not (s.gt & s.ignore).any()


def test_berkeley_rgb_masks_and_limit(tmp_path):
    m = np.zeros((6, 8, 3), np.uint8)
    m[2:4, 2:4, 0] = 200  # only channel 0 matters
    for stem in ("x", "y", "z"):
        save(tmp_path / f"Berkeley/images/{stem}.jpg", image())
        save(tmp_path / f"Berkeley/masks/{stem}.png", m)
    ds = open_dataset("Berkeley", root=tmp_path).head(2)
    assert len(ds) == 2 and [s.name for s in ds] == ["x", "y"]
    assert ds[0].gt.sum() == 4 and ds[0].ignore is None


def test_davis_split_every_10th_frame_and_gray_alpha(tmp_path):
    base = tmp_path / "DAVIS2016"
    (base / "ImageSets").mkdir(parents=True)
    (base / "ImageSets/dev.txt").write_text("seq\n")
    m = np.zeros((6, 8), np.uint8)
    m[:3] = 255
    for f in range(0, 25):
        save(base / f"JPEGImages/480p/seq/{f:05d}.jpg", image())
        save(base / f"Annotations/480p/seq/{f:05d}.png", m)
    # one annotation stored as gray+alpha, like bear/00077.png
    save(base / "Annotations/480p/seq/00010.png", np.stack([m, np.full_like(m, 255)], -1), "LA")
    ds = open_dataset("DAVIS2016", root=tmp_path, split="dev")
    assert ds.names == ["seq/00000", "seq/00010", "seq/00020"]
    assert ds[1].gt.sum() == 24
    with pytest.raises(InvalidInput, match="available splits"):
        open_dataset("DAVIS2016", root=tmp_path, split="val")


def test_folder_errors(tmp_path):
    save(tmp_path / "im/a.png", image())
    save(tmp_path / "im/b.png", image())
    save(tmp_path / "gt/a.png", np.zeros((6, 8), np.uint8))
    with pytest.raises(InvalidInput, match=r"without a mask: \['b'\]"):
        open_dataset("folder", images=tmp_path / "im", masks=tmp_path / "gt")
    with pytest.raises(InvalidInput, match="does not exist"):
        open_dataset("folder", images=tmp_path / "nope", masks=tmp_path / "gt")
    with pytest.raises(InvalidInput, match="--images"):
        open_dataset("folder")
    with pytest.raises(InvalidInput, match="does not exist"):
        open_dataset("GrabCut", root=tmp_path)
    save(tmp_path / "gt/b.png", np.zeros((5, 8), np.uint8))  # wrong size
    ds = open_dataset("folder", images=tmp_path / "im", masks=tmp_path / "gt")
    with pytest.raises(InvalidInput, match="shape"):
        ds[1]


def test_data_root_resolution(tmp_path, monkeypatch):
    """--data-root, then $IVOS_DATA_ROOT, then shared/datasets above the cwd, then the
    checkout's sibling shared/datasets, else None."""
    assert ivos.datasets_root is data_root.datasets_root
    assert ivos.datasets_root(tmp_path) == tmp_path
    assert ivos.datasets_root(str(tmp_path)) == tmp_path
    monkeypatch.setenv("IVOS_DATA_ROOT", str(tmp_path / "env"))
    assert ivos.datasets_root(None) == tmp_path / "env"
    assert ivos.datasets_root(tmp_path / "x") == tmp_path / "x"  # explicit beats the environment
    monkeypatch.setenv("IVOS_DATA_ROOT", "")  # empty = unset
    (tmp_path / "repo/sub").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "repo/sub")
    monkeypatch.setattr(data_root, "_CHECKOUT_DATASETS", tmp_path / "checkout/shared/datasets")
    assert ivos.datasets_root() is None
    (tmp_path / "checkout/shared/datasets").mkdir(parents=True)
    assert ivos.datasets_root() == tmp_path / "checkout/shared/datasets"
    (tmp_path / "shared/datasets").mkdir(parents=True)
    assert ivos.datasets_root() == (tmp_path / "shared/datasets").resolve()


def test_dataset_dir_names_the_root_searched(tmp_path, monkeypatch):
    (tmp_path / "DAVIS2016").mkdir()
    assert data_root.dataset_dir("DAVIS2016", tmp_path) == tmp_path / "DAVIS2016"
    with pytest.raises(InvalidInput, match=f"no GrabCut folder under the data root {tmp_path}"):
        data_root.dataset_dir("GrabCut", tmp_path)
    monkeypatch.delenv("IVOS_DATA_ROOT", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(data_root, "_CHECKOUT_DATASETS", tmp_path / "none")
    with pytest.raises(InvalidInput, match="no data root found.*IVOS_DATA_ROOT"):
        data_root.dataset_dir("DAVIS2016")


needs_data = pytest.mark.skipif(not REAL_ROOT.is_dir(), reason=f"data sets not found at {REAL_ROOT}")


@needs_data
def test_real_grabcut_50_with_ignore_bands():
    ds = open_dataset("GrabCut", root=REAL_ROOT)
    assert len(ds) == 50
    samples = [ds[i] for i in range(len(ds))]
    assert all(s.gt.any() and s.gt.shape == s.image.shape[:2] for s in samples)
    assert sum(s.ignore.any() for s in samples) >= 40  # most masks carry the 128 band


@needs_data
def test_real_berkeley_100():
    ds = open_dataset("Berkeley", root=REAL_ROOT)
    assert len(ds) == 100
    s = ds[0]
    assert s.gt.any() and s.gt.shape == s.image.shape[:2] and s.ignore is None


@needs_data
def test_coco128_heldaside_is_a_fixed_disjoint_split_of_whole_images():
    from ivos.evaluation.datasets import COCO_HELDASIDE_IMAGES, coco128_heldaside, coco128_split

    held, train = coco128_split(REAL_ROOT)
    assert len(held) == COCO_HELDASIDE_IMAGES and not set(held) & set(train) and len(held) + len(train) == 128
    assert coco128_split(REAL_ROOT) == (held, train)  # no randomness left
    data = open_dataset("COCO128", root=REAL_ROOT)
    assert data.name == "COCO128-heldaside" and len(data) == len(coco128_heldaside(REAL_ROOT)) > 100
    stems = {n.split("#")[0] for n in data.names}
    assert stems <= set(held) and len(stems) > 30  # every held-aside image with an instance
    sample = data[0]
    assert sample.gt.shape == sample.image.shape[:2] and sample.gt.any() and sample.ignore is None
