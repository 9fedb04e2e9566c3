"""Lazy, bounded frame decoding and bad video input."""
import numpy as np
import pytest

import ivos
from ivos.video.frames import open_video


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


def _save_frames(folder, frames, names):
    from PIL import Image

    folder.mkdir(exist_ok=True)
    for f, name in zip(frames, names):
        Image.fromarray(f).save(folder / name)


def test_folder_frames_in_natural_order_keep_their_names(tmp_path, make_clip):
    frames, _ = make_clip(n=4)
    names = ["1.png", "10.png", "2.png", "frame_003.png"]  # as text: 1, 10, 2; naturally: 1, 2, 10
    _save_frames(tmp_path / "f", frames, names)
    src = open_video(tmp_path / "f")
    assert src.frame_names == ["1", "2", "10", "frame_003"]
    assert np.array_equal(src[1], frames[2]) and np.array_equal(src[2], frames[1])


def test_frame_names_of_other_sources_are_padded_indices(make_clip):
    frames, _ = make_clip(n=3)
    assert open_video(frames).frame_names == ["00000", "00001", "00002"]


def test_folder_frame_rate_is_given_not_fixed(tmp_path, make_clip):
    frames, _ = make_clip(n=2)
    _save_frames(tmp_path / "f", frames, ["a.png", "b.png"])
    assert open_video(tmp_path / "f").fps == 25.0
    assert open_video(tmp_path / "f", fps=12.5).fps == 12.5
    assert open_video(frames, fps=30).fps == 30.0
    for bad in (0, -1, float("nan"), "fast", True):
        with pytest.raises(ivos.InvalidInput, match="fps"):
            open_video(frames, fps=bad)


def test_same_frame_name_twice_is_refused(tmp_path, make_clip):
    frames, _ = make_clip(n=2)
    _save_frames(tmp_path / "f", frames, ["00001.png", "00001.jpg"])
    with pytest.raises(ivos.InvalidInput, match="00001"):
        open_video(tmp_path / "f")


@pytest.mark.parametrize("defect", ["mixed size", "corrupt", "truncated"])
def test_verify_finds_a_bad_frame_before_any_work(tmp_path, make_clip, defect):
    from PIL import Image

    frames, _ = make_clip(n=5)
    _save_frames(tmp_path / "f", frames, [f"{i:05d}.jpg" for i in range(5)])
    bad = tmp_path / "f" / "00003.jpg"
    if defect == "mixed size":
        Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(bad)
    elif defect == "corrupt":
        bad.write_bytes(b"\xff\xd8\xff garbage" * 20)
    else:
        bad.write_bytes(bad.read_bytes()[: len(bad.read_bytes()) // 2])
    src = open_video(tmp_path / "f")  # opening reads only the first frame
    seen = []
    with pytest.raises(ivos.InvalidInput, match="00003"):
        src.verify(lambda done, total: seen.append(done))
    assert seen == [1, 2, 3]  # progress up to the frame before the bad one
    assert src.cached == 0  # verifying holds no frames


def test_verify_passes_a_good_video(tmp_path, make_clip):
    frames, _ = make_clip(n=4)
    path = tmp_path / "clip.mp4"
    pytest.importorskip("av")
    _write_mp4(path, frames)
    seen = []
    open_video(path).verify(lambda done, total: seen.append((done, total)))
    assert seen[-1] == (4, 4)
