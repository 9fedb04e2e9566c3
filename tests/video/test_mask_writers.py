"""RLE round trips, PNG masks, overlay video and the sticker's transparency."""
import json

import numpy as np
import pytest

from ivos.formats.mask_files import write_overlay_video, write_png_masks, write_rle_json, write_sticker
from ivos.formats.rle import mask_bbox, rle_decode, rle_encode


def test_rle_is_coco_uncompressed_column_major():
    m = np.array([[0, 1, 1], [0, 1, 0]], np.uint8)
    # column-major: col0 = 0,0 ; col1 = 1,1 ; col2 = 1,0 -> 0,0,1,1,1,0
    assert rle_encode(m) == {"size": [2, 3], "counts": [2, 3, 1]}
    assert rle_encode(np.ones((2, 2), np.uint8))["counts"] == [0, 4]


@pytest.mark.parametrize("seed", range(5))
def test_rle_round_trip(seed):
    rng = np.random.default_rng(seed)
    m = (rng.random((rng.integers(1, 40), rng.integers(1, 40))) < rng.random()).astype(np.uint8)
    back = rle_decode(rle_encode(m))
    assert back.dtype == np.uint8 and np.array_equal(back, m)


def test_bbox():
    m = np.zeros((10, 10), np.uint8)
    m[2:5, 3:9] = 1
    assert mask_bbox(m) == [3, 2, 6, 3]
    assert mask_bbox(np.zeros((3, 3), np.uint8)) == [0, 0, 0, 0]


def test_writers(tmp_path, make_clip):
    from PIL import Image

    frames, masks = make_clip(n=5, h=41, w=57)  # odd sizes: the overlay pads to even
    pairs = list(enumerate(masks))
    assert write_png_masks(tmp_path / "m", pairs) == 5
    assert np.array_equal(np.asarray(Image.open(tmp_path / "m" / "00004.png")) > 0, masks[4] > 0)
    write_rle_json(tmp_path / "m.json", pairs, video="clip", fps=10.0)
    doc = json.loads((tmp_path / "m.json").read_text())
    assert [f["frame_idx"] for f in doc["frames"]] == list(range(5))
    assert all(np.array_equal(rle_decode(f["segmentation"]), masks[f["frame_idx"]]) for f in doc["frames"])
    pytest.importorskip("av")
    assert write_overlay_video(tmp_path / "o.mp4", zip(frames, masks), fps=10.0) == 5
    from ivos.video.frames import open_video

    assert len(open_video(tmp_path / "o.mp4")) == 5
    out = write_sticker(tmp_path / "s.webp", zip(frames, masks), box=[0, 0, 57, 41], fps=10.0)
    with Image.open(out) as im:
        assert getattr(im, "n_frames", 1) == 5
        im.seek(2)
        alpha = np.asarray(im.convert("RGBA"))[..., 3]
    assert alpha.min() == 0 and alpha.max() == 255
