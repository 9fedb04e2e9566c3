"""The held-aside BSDS objects written as a folder set: only held-aside images, masks that are
the objects' label unions, readable by ``ivos.evaluation.datasets.folder``."""
import cv2
import numpy as np

from ivos.evaluation.datasets import folder
from training import data, heldaside_objects

from .test_data import _fake_root


def test_writes_only_heldaside_objects_as_a_folder_set(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "N_VAL_BSDS", 1)
    root = _fake_root(tmp_path / "data")
    cache = data.build_cache(root)
    val_ids = {e.key.split("/")[1] for e in cache.val if e.source == "bsds"}
    train_ids = {e.key.split("/")[1] for e in cache.train["bsds"]}
    monkeypatch.setattr(heldaside_objects, "load_cache", lambda *_: cache)
    out = tmp_path / "out"
    assert heldaside_objects.main(["--out", str(out), "--per-image", "2", "--data-root", str(root)]) == 0
    names = sorted(p.stem for p in (out / "masks").glob("*.png"))
    assert len(names) == 2 and {n.split("_")[0] for n in names} == val_ids
    assert not {n.split("_")[0] for n in names} & train_ids
    entry = next(e for e in cache.val if e.source == "bsds")
    for sample in folder(out / "images", out / "masks"):
        k = int(sample.name.split("_")[1])
        np.testing.assert_array_equal(sample.gt, np.isin(entry.labels, entry.objects[k]))
        np.testing.assert_array_equal(sample.image, entry.image)
    assert cv2.imread(str(out / "masks" / f"{names[0]}.png"), cv2.IMREAD_UNCHANGED).dtype == np.uint8
