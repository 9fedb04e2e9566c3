"""Lazy, bounded frame decoding and bad video input."""
import numpy as np
import pytest

import ivos
from ivos.video import open_video


def _write_mp4(path, frames, fps=10):
    av = pytest.importorskip("av", reason="video files need PyAV (pip install 'ivos[video]')")
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        s.options = {"g": "10"}  # a key frame every 10 frames: seeks land mid-GOP
        for f in frames:
            c.mux(s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        c.mux(s.encode(None))


def test_array_source_cache_is_bounded_and_lru(make_clip):
    frames, _ = make_clip(n=20)
    src = open_video(frames, cache_size=3)
    for i in range(20):
        assert np.array_equal(src[i], frames[i])
        assert src.cached <= 3
    src[19]
    decoded = src.decoded
    src[19], src[18]
    assert src.decoded == decoded  # cache hits decode nothing
    src[0]
    assert src.decoded == decoded + 1
    assert not src[0].flags.writeable


def test_file_source_random_access_matches_sequential(tmp_path):
    frames = [np.full((32, 48, 3), 8 * i, np.uint8) for i in range(30)]
    for i, f in enumerate(frames):
        f[4:12, i:i + 8] = 255  # a mark that moves: each frame is distinct
    _write_mp4(tmp_path / "v.mp4", frames)
    src = open_video(tmp_path / "v.mp4", cache_size=2)
    assert len(src) == 30 and (src.height, src.width) == (32, 48)
    seq = [src[i].astype(int) for i in range(30)]
    for i in (25, 3, 17, 17, 29, 0, 11):
        again = open_video(tmp_path / "v.mp4", cache_size=2)
        assert np.abs(again[i].astype(int) - seq[i]).max() == 0
        assert np.abs(src[i].astype(int) - seq[i]).max() == 0
    # lossy codec, but each decoded frame is close to the one written
    assert np.abs(seq[12] - frames[12]).mean() < 6


def test_long_video_is_never_all_in_memory(tmp_path):
    n = 2000
    frames = [np.full((16, 16, 3), i % 251, np.uint8) for i in range(n)]
    _write_mp4(tmp_path / "long.mp4", frames, fps=50)
    src = open_video(tmp_path / "long.mp4", cache_size=8)
    assert len(src) == n
    peak = 0
    for i in range(n):
        src[i]
        peak = max(peak, src.cached)
    assert peak == 8
    assert src.decoded <= n + 8  # sequential reading decodes each frame about once


def test_folder_source(tmp_path, make_clip):
    from PIL import Image

    frames, _ = make_clip(n=4)
    for i, f in enumerate(frames):
        Image.fromarray(f).save(tmp_path / f"{i:05d}.png")
    src = open_video(tmp_path, cache_size=2)
    assert len(src) == 4
    assert np.array_equal(src[3], frames[3])


@pytest.mark.parametrize("content", [b"", b"this is not a video at all" * 10])
def test_unreadable_or_empty_file_raises_invalid_input(tmp_path, content):
    pytest.importorskip("av")
    path = tmp_path / "bad.mp4"
    path.write_bytes(content)
    with pytest.raises(ivos.InvalidInput, match="bad.mp4"):
        open_video(path)


def test_missing_path_empty_folder_and_empty_array(tmp_path):
    with pytest.raises(ivos.InvalidInput, match="does not exist"):
        open_video(tmp_path / "nope.mp4")
    with pytest.raises(ivos.InvalidInput, match="no frames"):
        open_video(tmp_path)
    with pytest.raises(ivos.InvalidInput, match="no frames"):
        open_video([])
    with pytest.raises(ivos.InvalidInput, match=r"\(N, H, W, 3\)"):
        open_video(np.zeros((3, 4, 4), np.uint8))


def test_frame_index_out_of_range(make_clip):
    frames, _ = make_clip(n=5)
    src = open_video(frames)
    with pytest.raises(ivos.InvalidInput, match="frame_idx 5 is out of range.*5 frames"):
        src[5]
    with pytest.raises(ivos.InvalidInput, match="frame_idx -1"):
        src[-1]
    with pytest.raises(ivos.InvalidInput, match="integer"):
        src[1.5]
