"""``ivos segment`` on the bundled demo clip: every output exists and agrees with the others."""
import json

import numpy as np
import pytest

from ivos.cli import DEFAULT_CLICK, DEFAULT_OSVOS, DEMO_CLIP, main

pytest.importorskip("av", reason="the demo clip is an mp4: needs PyAV (pip install 'ivos[video]')")


def _demo_clicks():
    """The demo's click arguments: ["--click", "X,Y,F", ...]."""
    info = json.loads(DEMO_CLIP.with_suffix(".json").read_text())
    args = []
    for c in info["clicks"]:
        args += ["--click", f"{c['x']},{c['y']},{c['frame']}"]
    return info, args


def _check_outputs(out, n_frames, *, transparent=True):
    from PIL import Image

    from ivos.formats.rle import rle_decode

    pngs = sorted((out / "masks").glob("*.png"))
    assert len(pngs) == n_frames
    masks = [(np.asarray(Image.open(p)) > 127).astype(np.uint8) for p in pngs]
    doc = json.loads((out / "masks.json").read_text())
    assert [f["frame_idx"] for f in doc["frames"]] == list(range(n_frames))
    for f, m in zip(doc["frames"], masks):
        assert np.array_equal(rle_decode(f["segmentation"]), m)
        assert f["area"] == int(m.sum())
    from ivos.video.frames import open_video

    assert len(open_video(out / "overlay.mp4")) == n_frames
    summary = json.loads((out / "summary.json").read_text())
    sticker = summary["outputs"]["sticker"]
    with Image.open(sticker) as im:
        assert im.mode == "RGBA"  # the sticker has an alpha channel
        assert getattr(im, "n_frames", 1) >= 1  # (WebP merges identical consecutive frames)
        im.seek(getattr(im, "n_frames", 1) // 2)
        alpha = np.asarray(im.convert("RGBA"))[..., 3]
    if transparent:  # object opaque, background transparent
        assert (alpha == 0).any() and (alpha == 255).any()
    return masks, summary


def test_segment_demo_clip_writes_all_outputs(tmp_path, osvos_bundle, click_bundle):
    info, clicks = _demo_clicks()
    code = main(["segment", "demo", *clicks, "--out", str(tmp_path / "out"),
                 "--osvos-bundle", str(osvos_bundle), "--click-bundle", str(click_bundle), "--threads", "1"])
    assert code == 0
    # random-weight models: the mask may be anything, so only the sticker's format is checked
    _check_outputs(tmp_path / "out", info["frames"], transparent=False)


@pytest.mark.slow
def test_segment_demo_clip_with_shipped_models(tmp_path):
    """The README's main command, with the shipped bundles: the mask follows the object."""
    if not (DEFAULT_OSVOS / "model.json").is_file() or not (DEFAULT_CLICK / "model.json").is_file():
        pytest.skip(f"shipped bundles {DEFAULT_OSVOS} / {DEFAULT_CLICK} are not built here")
    from ivos.formats.rle import rle_decode

    info, clicks = _demo_clicks()
    assert main(["segment", "demo", *clicks, "--out", str(tmp_path / "out"), "--threads", "1"]) == 0
    masks, _ = _check_outputs(tmp_path / "out", info["frames"])
    gt = [rle_decode(r) for r in info["ground_truth_rle"]]
    ious = [np.logical_and(m, g).sum() / max(1, np.logical_or(m, g).sum()) for m, g in zip(masks, gt)]
    assert np.mean(ious) > 0.7


@pytest.mark.parametrize("args, message", [
    (["--click", "5000,10"], "--click 5000,10,0 has a point outside the 480x272 image"),
    (["--click", "480,10"], "expected 0 <= x < 480"),
    (["--click", "10,10,99"], "--click 10,10,99: frame 99 is out of range"),
    (["--click", "10,10", "--neg=-1,3"], "--neg -1,3,0 has a point outside"),
])
def test_segment_bad_clicks_fail_clearly(tmp_path, osvos_bundle, click_bundle, capsys, monkeypatch, args, message):
    import ivos

    def no_loading(*a, **k):
        raise AssertionError("a bundle was loaded before the clicks were checked")
    monkeypatch.setattr(ivos, "load", no_loading)
    code = main(["segment", "demo", *args, "--out", str(tmp_path / "o"), "--osvos-bundle", str(osvos_bundle),
                 "--click-bundle", str(click_bundle)])
    assert code == 2
    assert message in capsys.readouterr().err


def test_segment_unreadable_video(tmp_path, osvos_bundle, click_bundle, capsys):
    bad = tmp_path / "bad.webm"
    bad.write_bytes(b"\x00" * 100)
    code = main(["segment", str(bad), "--click", "1,1", "--out", str(tmp_path / "o"),
                 "--osvos-bundle", str(osvos_bundle), "--click-bundle", str(click_bundle)])
    assert code == 2
    assert "bad.webm" in capsys.readouterr().err


def _no_finetune_allowed(monkeypatch):
    """Makes any fine-tuning fail the test: the checks must come before the work."""
    from ivos.video.predictor import VideoPredictor

    def fail(*args, **kwargs):
        raise AssertionError("fine-tuning started before the inputs were checked")
    monkeypatch.setattr(VideoPredictor, "finetune", fail)


def test_out_naming_a_file_fails_before_any_work(tmp_path, osvos_bundle, click_bundle, capsys, monkeypatch):
    _no_finetune_allowed(monkeypatch)
    (tmp_path / "taken").write_text("not a folder")
    code = main(["segment", "demo", "--click", "10,10", "--out", str(tmp_path / "taken"),
                 "--osvos-bundle", str(osvos_bundle), "--click-bundle", str(click_bundle)])
    assert code == 2
    assert "is not a folder" in capsys.readouterr().err
    assert (tmp_path / "taken").read_text() == "not a folder"  # nothing lost


def test_bad_frame_in_folder_fails_before_any_work(tmp_path, osvos_bundle, click_bundle, capsys, monkeypatch, make_clip):
    from PIL import Image

    _no_finetune_allowed(monkeypatch)
    frames, _ = make_clip(n=6)
    (tmp_path / "f").mkdir()
    for i, f in enumerate(frames):
        Image.fromarray(f if i != 4 else f[:-2]).save(tmp_path / "f" / f"{i:05d}.png")
    code = main(["segment", str(tmp_path / "f"), "--click", "10,10", "--out", str(tmp_path / "o"),
                 "--osvos-bundle", str(osvos_bundle), "--click-bundle", str(click_bundle)])
    assert code == 2
    assert "frame 4 (00004)" in capsys.readouterr().err


def test_finetune_off_propagates_with_the_parent_network(tmp_path, osvos_bundle, click_bundle, monkeypatch):
    _no_finetune_allowed(monkeypatch)
    info, clicks = _demo_clicks()
    code = main(["segment", "demo", *clicks, "--out", str(tmp_path / "out"), "--finetune", "off",
                 "--osvos-bundle", str(osvos_bundle), "--click-bundle", str(click_bundle), "--threads", "1"])
    assert code == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["finetuned"] is False and summary["finetune_s"] is None


def test_segment_runs_the_named_propagation(tmp_path, osvos_bundle, click_bundle):
    info, clicks = _demo_clicks()
    code = main(["segment", "demo", *clicks, "--out", str(tmp_path / "out"), "--propagation", "classic",
                 "--osvos-bundle", str(osvos_bundle), "--click-bundle", str(click_bundle), "--threads", "1"])
    assert code == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["propagation"] == "classic" and summary["mode"] == "osvos+mask"
