"""The bundled demo clip end to end through the server (in process) with the shipped bundles
(the ``ivos segment demo`` job over the HTTP API, through ``ivos.Client``): upload the mp4, one
click, propagate as a job, masks close to the clip's ground truth, exports that decode.
Fine-tuning is shortened to keep the test to about a minute; the full-length result is in
engine/data/DEMO_CLIP.md."""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import anyio
import numpy as np
import pytest

from ivos.serve.testing import in_process

STEPS = 60
"""Fine-tuning steps (the library default is 300): enough for this clip's simple object."""


@pytest.fixture(scope="module")
def store_kind():
    """SQLite only: this test is about the shipped bundles' masks; the store's plumbing runs on both
    stores in test_video_http."""
    return "sqlite"


@pytest.mark.anyio
async def test_demo_clip_over_http(serve_config, tmp_path):
    pytest.importorskip("av", reason="the demo clip is an mp4: reading it needs PyAV (pip install 'ivos[video]')")
    import ivos
    from ivos.formats.rle import rle_decode

    data = Path(ivos.__file__).parent / "data"
    meta = json.loads((data / "demo_clip.json").read_text())
    config = serve_config(model="ivos-lite0", osvos_model="osvos-lite0", finetune_steps=STEPS,
                          finetune_augmentations=8, threads=0)

    def iou(a, b):
        union = np.count_nonzero(a | b)
        return np.count_nonzero(a & b) / union if union else 1.0

    def run(client):
        video = client.video_predictor()
        state = video.init_state(data / "demo_clip.mp4")
        assert (state.num_frames, state.width, state.height) == (meta["frames"], meta["width"], meta["height"])
        click = meta["clicks"][0]
        first = video.add_new_points(state, click["frame"], 1, [[click["x"], click["y"]]], [1])
        truth = [rle_decode(r) for r in meta["ground_truth_rle"]]
        stages = []
        frames = {f.frame_idx: f.masks[1] for f in video.propagate_in_video(state, progress=stages.append)}
        assert sorted(frames) == list(range(meta["frames"]))
        assert stages[-1]["status"] == "done"

        ious = [iou(frames[i].astype(bool), truth[i].astype(bool)) for i in range(meta["frames"])]
        print(f"demo clip over HTTP: first-click IoU {iou(first.mask.astype(bool), truth[0].astype(bool)):.3f}, "
              f"mean IoU {np.mean(ious):.3f}, worst {min(ious):.3f}")
        assert np.mean(ious) > 0.9 and min(ious) > 0.7

        zipped = video.export(state, "png-zip", tmp_path / "masks.zip")
        with zipfile.ZipFile(zipped) as zf:
            assert len(zf.namelist()) == meta["frames"]
        sticker = video.export(state, "sticker", tmp_path / "sticker.webp")
        from PIL import Image

        with Image.open(sticker) as im:
            assert im.mode == "RGBA" and getattr(im, "n_frames", 1) > 1
        coco = json.loads(video.export(state, "coco", tmp_path / "coco.json").read_text())
        assert len(coco["annotations"]) == meta["frames"]

    async with in_process(config) as srv:
        with srv.client() as client:  # a blocking client: it runs in a worker thread
            await anyio.to_thread.run_sync(run, client)
