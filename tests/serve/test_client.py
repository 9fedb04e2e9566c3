"""``ivos.Client`` against a server: the image and video predictors mirror the in-process ones
(same masks for the same clicks), re-attach by session id after a server restart (a real
process, stopped and started), and raise ``ivos.InvalidInput`` for what the server refuses as
bad input."""
from __future__ import annotations

import anyio
import numpy as np
import pytest

from ivos.serve.testing import in_process


def scene(h=48, w=64, seed=1):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 60, (h, w, 3), dtype=np.uint8)
    image[12:36, 16:44] = (220, 140, 30)
    return image


def test_image_predictor_mirrors_in_process_and_survives_restart(make_server, bundles):
    import ivos

    server = make_server()
    local = ivos.ImagePredictor(ivos.load(bundles["click"], backend="ort", threads=1))
    image = scene()
    local.set_image(image)
    clicks = [(30, 24, True), (5, 40, False), (20.5, 14.25, True), (44, 30, True)]
    with ivos.Client(server.url) as client:
        remote = client.image_predictor(probabilities=True)
        assert remote.session_id is None
        remote.set_image(image)
        assert remote.image_size == (48, 64)
        for x, y, p in clicks[:3]:
            got, want = remote.add_click(x, y, p), local.add_click(x, y, p)
            np.testing.assert_array_equal(got.mask, want.mask)
            assert np.abs(got.probabilities - want.probabilities).max() <= 0.5 / 255 + 1e-6
            assert isinstance(got.timings, ivos.Timings) and got.timings.total_ms > 0
        np.testing.assert_array_equal(remote.undo().mask, local.undo().mask)
        sid = remote.session_id

    server.stop()
    server.start()  # same data dir: the session, its image and clicks are in the store
    with ivos.Client(server.url) as client:
        remote = client.image_predictor(sid)
        assert remote.image_size == (48, 64) and len(remote.clicks) == 2
        # the rebuilt predictor continues exactly where the session was
        x, y, p = clicks[3]
        np.testing.assert_array_equal(remote.add_click(x, y, p).mask, local.add_click(x, y, p).mask)
        np.testing.assert_array_equal(remote.undo().mask, local.undo().mask)
        np.testing.assert_array_equal(remote.undo().mask, local.undo().mask)
        remote.reset()
        local.reset()
        assert remote.undo() is None and local.undo() is None
        prior = (np.arange(48)[:, None] < 30) & (np.arange(64)[None] < 40)
        got = remote.predict([[10, 10]], [1], mask_input=prior.astype(np.uint8))
        want = local.predict(np.array([[10, 10]]), np.array([1]), mask_input=prior.astype(np.uint8))
        np.testing.assert_array_equal(got.mask, want.mask)

        with pytest.raises(ivos.InvalidInput, match="x must be a column inside the image"):
            remote.add_click(64, 10, True)
        with pytest.raises(ivos.InvalidInput, match="positive"):
            remote.add_click(10, 10, 2)
        with pytest.raises(ivos.InvalidInput):
            remote.predict([[1, 2, 3]], [1])
        with pytest.raises(ivos.client.ServerError) as e:
            client.image_predictor("img_" + "x" * 24)
        assert e.value.status == 404 and e.value.code == "image_session_not_found"


def test_video_predictor_flow(make_server, make_clip, tmp_path):
    import ivos

    server = make_server()
    frames, _ = make_clip(n=5)
    with ivos.Client(server.url) as client:
        video = client.video_predictor()
        state = video.init_state(frames, fps=10)
        assert (state.num_frames, state.height, state.width, state.fps) == (5, 40, 56, 10)
        r = video.add_new_points(state, 1, 3, [[15, 17]], [1])
        assert r.source == "annotated" and r.obj_id == 3 and r.mask.shape == (40, 56)
        events = []
        results = list(video.propagate_in_video(state, progress=events.append))
        assert [f.frame_idx for f in results] == [1, 2, 3, 4, 0]  # forward from the annotation, then back
        assert all(f.obj_ids == [3] for f in results)
        assert results[0].sources == {3: "annotated"} and results[1].sources == {3: "propagated"}
        assert events[-1]["status"] == "done" and events[-1]["frames_done"] == 5
        np.testing.assert_array_equal(video.object_masks(state, 2)[3], results[1].masks[3])
        s = video.suggest_frame(state, 3)
        assert s.obj_id == 3 and np.isnan(s.scores[1]) and s.frame_idx != 1
        fixed = video.refine(state, s.frame_idx, 3, [[20, 18]], [1])
        assert fixed.source == "annotated"
        assert video.undo(state, s.frame_idx, 3).source == "propagated"
        out = video.export(state, "png-zip", tmp_path / "masks.zip")
        import zipfile

        assert len(zipfile.ZipFile(out).namelist()) == 5
        sid = state.session_id

    server.stop()
    server.start()
    with ivos.Client(server.url) as client:
        video = client.video_predictor(sid)
        state = video.state
        assert state.num_frames == 5
        masks = dict(video.masks(state, 3))
        assert sorted(masks) == list(range(5))
        np.testing.assert_array_equal(masks[0], results[-1].masks[3])
        with pytest.raises(ivos.InvalidInput, match="frame_idx"):
            video.add_new_points(state, 9, 3, [[1, 1]], [1])
        video.remove_object(state, 3)
        assert video.info(state)["objects"] == []


@pytest.mark.anyio
async def test_video_masks_equal_in_process(serve_config, bundles, make_clip):
    """The same clicks, mask and propagation through the server (in process, the client's
    requests through ``httpx.ASGITransport``) and through an in-process VideoPredictor with the
    server's settings (tiny bundles, 5 fine-tuning steps, 3 augmentations, CRF on, 1 thread)
    give the same masks on every frame."""
    import ivos

    frames, _ = make_clip(n=5, seed=4)
    box = np.zeros((40, 56), np.uint8)
    box[28:38, 36:50] = 1
    local = ivos.VideoPredictor(ivos.load(bundles["osvos"], backend="ort", threads=1),
                                ivos.load(bundles["click"], backend="ort", threads=1), crf=True,
                                finetune_config=ivos.FinetuneConfig(steps=5, augmentations=3, threads=1))
    state = local.init_state(frames)

    def both(client):
        remote = client.video_predictor()
        handle = remote.init_state(frames)
        for pred, st in ((local, state), (remote, handle)):
            pred.add_new_points(st, 0, 1, [[15, 17]], [1])
            pred.add_new_points(st, 0, 1, [[30, 30]], [0])
            pred.add_new_mask(st, 2, 4, box)
        want = {r.frame_idx: r.masks for r in local.propagate_in_video(state)}
        got = {r.frame_idx: r.masks for r in remote.propagate_in_video(handle)}
        return want, got

    async with in_process(serve_config()) as srv:
        with srv.client() as client:  # a blocking client: it runs in a worker thread
            want, got = await anyio.to_thread.run_sync(both, client)
    assert sorted(got) == sorted(want) == list(range(5))
    for i in range(5):
        assert sorted(got[i]) == sorted(want[i]) == [1, 4]
        for k in (1, 4):
            np.testing.assert_array_equal(got[i][k], want[i][k], err_msg=f"frame {i} object {k}")


def test_a_503_in_doubt_is_not_repeated():
    """429 and 503 are retried after Retry-After, except a 503 whose change may have been saved
    (``store_unavailable`` with ``in_doubt``: the database connection broke during the commit)."""
    import httpx

    import ivos

    calls = []

    def answer(request):
        calls.append(request.url.path)
        doubt = request.url.path.endswith("/doubt")
        return httpx.Response(503, headers={"Retry-After": "0"},
                              json={"error": {"code": "store_unavailable", "message": "down", "in_doubt": doubt}})

    with ivos.Client("http://ivos.test", transport=httpx.MockTransport(answer), retries=2) as client:
        for path, tries in (("/v1/x/doubt", 1), ("/v1/x/down", 3)):
            calls.clear()
            with pytest.raises(ivos.client.ServerError) as e:
                client.request("POST", path)
            assert len(calls) == tries and e.value.status == 503 and e.value.code == "store_unavailable"
