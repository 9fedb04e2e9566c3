"""click_sweep's sources: DAVIS held-aside sequences and/or a folder set; each gets its own table."""
import numpy as np
import pytest
from PIL import Image

from ivos.bench import click_sweep


def test_needs_a_source_and_images_with_masks(capsys):
    with pytest.raises(SystemExit):
        click_sweep.main([])
    assert "--sequences" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        click_sweep.main(["--images", "somewhere"])
    assert "--images and --masks go together" in capsys.readouterr().err


def test_folder_set_gets_a_table(tmp_path, capsys):
    rng = np.random.default_rng(0)
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    mask = np.zeros((48, 64), np.uint8)
    mask[12:36, 16:48] = 255
    Image.fromarray(rng.integers(0, 255, (48, 64, 3), np.uint8)).save(tmp_path / "images" / "a.png")
    Image.fromarray(mask).save(tmp_path / "masks" / "a.png")
    assert click_sweep.main(["--images", str(tmp_path / "images"), "--masks", str(tmp_path / "masks"),
                             "--compat-gaussian", "0", "3"]) == 0
    out = capsys.readouterr().out
    assert "1 samples" in out
    rows = [line for line in out.splitlines() if line.startswith("| no CRF") or line.startswith("| CRF")]
    assert len(rows) == 3 and "compat_gaussian=0" in rows[1] and "compat_gaussian=3" in rows[2]
