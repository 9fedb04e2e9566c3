"""The outline ceiling (``ivos.bench.outline_ceiling``) on a synthetic coco128-seg folder whose
masks were filled inclusively, as the shared set's are: exact numbers from geometry."""
import json

import numpy as np
import pytest
from PIL import Image

from ivos.bench import outline_ceiling


def _write_set(root, squares):
    """One 100x100 image; instance i+1 is square ``squares[i]`` = (x0, y0, side), its polygon on
    pixel edges and its mask one pixel larger on the right and bottom (every touched pixel)."""
    base = root / "coco128-seg"
    for sub in ("images", "masks", "labels_yolo"):
        (base / sub).mkdir(parents=True)
    Image.fromarray(np.zeros((100, 100, 3), np.uint8)).save(base / "images" / "a.jpg")
    labels = np.zeros((100, 100), np.uint16)
    lines = []
    for i, (x0, y0, side) in enumerate(squares):
        labels[y0:y0 + side + 1, x0:x0 + side + 1] = i + 1
        corners = [(x0, y0), (x0 + side, y0), (x0 + side, y0 + side), (x0, y0 + side)]
        lines.append("0 " + " ".join(f"{x / 100:.6f} {y / 100:.6f}" for x, y in corners))
    Image.fromarray(labels).save(base / "masks" / "a.png")
    (base / "labels_yolo" / "a.txt").write_text("\n".join(lines) + "\n")


def test_coverage_is_the_share_of_each_pixel_inside():
    cov = outline_ceiling.coverage(np.array([[1, 1], [3, 1], [3, 2.5], [1, 2.5]]), 4, 4)
    assert cov[1, 1:3].tolist() == [1.0, 1.0]
    assert np.allclose(cov[2, 1:3], 0.5, atol=1 / outline_ceiling.SUPERSAMPLE)
    assert cov[0].sum() == 0 and cov[:, 0].sum() == 0 and cov[3].sum() == 0


def test_small_objects_lose_more_to_an_inclusive_fill(tmp_path):
    _write_set(tmp_path, [(5, 5, 4), (30, 30, 40)])
    ious = outline_ceiling.outline_ious(tmp_path, 0.5)
    assert ious["a#1"][1] == pytest.approx(16 / 25, abs=1e-6)  # a 4x4 outline in a 5x5 mask
    assert ious["a#2"][1] == pytest.approx(1600 / 1681, abs=1e-6)
    rows = outline_ceiling.table(ious, {"a#1"})
    assert rows[2].startswith("| < 1% | 1 |") and rows[2].endswith(" 1 | 1 | 1 |")


def test_pixels_another_instance_holds_leave_the_outline(tmp_path):
    _write_set(tmp_path, [(10, 10, 40), (30, 30, 40)])  # the second drawn over the first's corner
    ious = outline_ceiling.outline_ious(tmp_path, 0.5)
    assert ious["a#1"][1] == pytest.approx((1600 - 400) / (1681 - 441), abs=1e-6)


def test_the_report_names_the_failures_it_was_given(tmp_path, capsys):
    _write_set(tmp_path, [(5, 5, 4)])
    run = {"methods": {"model+crf": {"per_sample": [{"name": "a#1", "ious": [0.5, 0.8]}]}}}
    (tmp_path / "run.json").write_text(json.dumps(run))
    out = tmp_path / "ceiling.md"
    assert outline_ceiling.main(["--data-root", str(tmp_path), "--click-json", str(tmp_path / "run.json"),
                                 "--out", str(out)]) == 0
    assert "| all | 1 | 0.640 | 0.640 | 1 | 1 | 1 |" in out.read_text()
    with pytest.raises(SystemExit):
        outline_ceiling.main(["--data-root", str(tmp_path), "--coverage", "0"])
    assert "--coverage must be in (0, 1]" in capsys.readouterr().err
