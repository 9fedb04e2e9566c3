"""The OSVOS network on a crop of the working image (dynamic-size graphs): which crop, the
head it runs with, what lies outside it, the run contexts it keeps, and the motion gate's box."""
import dataclasses

import numpy as np
import pytest

import ivos
from ivos.postprocess import gate_box, gate_to_prior
from ivos.video.osvos.runner import CROP_CONTEXTS, NEGATIVE_LOGIT, OsvosRunner

torch = pytest.importorskip("torch", reason="exporting test bundles needs torch (pip install 'ivos[export]')")
WORKING = (128, 192)


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    """A session over a tiny random-weight OSVOS bundle at a 128x192 working size."""
    from ivos.export.models import ClickNetConfig, build_model
    from ivos.export.osvos import OSVOS_CONFIGS, build_osvos
    from ivos.export.osvos_export import export_osvos_bundle

    torch.manual_seed(0)
    click = build_model(ClickNetConfig(name="tiny", widths=(8, 8, 16, 16), blocks=(1, 1, 1, 1), stem_width=8,
                                       head_width=8, skip_width=8, decoder_width=8))
    config = dataclasses.replace(OSVOS_CONFIGS["osvos-cpu"], name="osvos-tiny", working_size=WORKING)
    out = tmp_path_factory.mktemp("bundles") / "osvos-crop"
    export_osvos_bundle(build_osvos(config, click), out, version="test", mean=(0.5,) * 3, std=(0.25,) * 3,
                        n_checks=2)
    s = OsvosRunner(ivos.load(out, backend="ort", threads=1))
    yield s
    s.close()


def _frame(seed=0):
    """A (128, 192, 3) frame: noise with a bright block, the working size itself (scale 1)."""
    rng = np.random.default_rng(seed)
    frame = rng.integers(0, 80, (*WORKING, 3), dtype=np.uint8)
    frame[40:80, 60:110] = (230, 120, 40)
    return frame


def test_crop_is_aligned_and_covers_the_window_with_context(session):
    box = session.letterbox(*WORKING)
    rng = np.random.default_rng(1)
    for _ in range(50):
        session._last_crop = None
        x0, y0 = int(rng.integers(0, 120)), int(rng.integers(0, 80))
        window = (x0, y0, x0 + int(rng.integers(1, 40)), y0 + int(rng.integers(1, 30)))
        context = int(rng.integers(0, 20))
        crop = session.crop_for(window, box, context)
        if crop is None:  # most of the frame: the full size runs
            continue
        cx0, cy0, cx1, cy1 = crop
        assert (cx1 - cx0) % 32 == 0 and (cy1 - cy0) % 32 == 0 and cx0 % 4 == 0 and cy0 % 4 == 0
        assert 0 <= cx0 and 0 <= cy0 and cx1 <= WORKING[1] and cy1 <= WORKING[0]
        assert cx0 <= max(0, window[0] - context) and cy0 <= max(0, window[1] - context)
        assert cx1 >= min(WORKING[1], window[2] + context) and cy1 >= min(WORKING[0], window[3] + context)


def test_crop_keeps_its_size_while_the_window_fits_and_large_windows_run_the_full_frame(session):
    box = session.letterbox(*WORKING)
    session._last_crop = None
    first = session.crop_for((40, 40, 70, 60), box, 0)
    moved = session.crop_for((44, 42, 74, 62), box, 0)  # the object moved a little
    assert first is not None and moved is not None
    assert (moved[2] - moved[0], moved[3] - moved[1]) == (first[2] - first[0], first[3] - first[1])
    assert session.crop_for((0, 0, 180, 120), box, 0) is None


def test_outside_the_crop_is_background_and_the_crop_uses_the_bound_head(session):
    frame, prior = _frame(), np.zeros(WORKING, np.uint8)
    prior[40:80, 60:110] = 1
    window = (60, 40, 110, 80)
    parent = session.parent_head
    other = {k: v + np.float32(0.3) for k, v in parent.items()}

    session._last_crop = None
    session.bind_head(parent)
    with_parent = session.predict(frame, prior, window=window, context=0)
    crop = session._last_crop
    session.bind_head(other)
    with_other = session.predict(frame, prior, window=window, context=0)
    session.bind_head(parent)
    again = session.predict(frame, prior, window=window, context=0)

    assert not np.allclose(with_parent, with_other)  # the crop's context got the new head
    np.testing.assert_array_equal(again, with_parent)  # and the parent's back
    outside = np.ones(WORKING, bool)
    outside[crop[1]:crop[3], crop[0]:crop[2]] = False
    assert with_parent[outside].max() <= 1.0 / (1.0 + np.exp(-NEGATIVE_LOGIT)) + 1e-6
    assert with_parent.shape == WORKING and with_parent.dtype == np.float32


def test_the_crop_runs_the_same_network_as_the_full_frame(session):
    """A crop that is the whole working image gives the full frame's probability."""
    frame, prior = _frame(2), np.zeros(WORKING, np.uint8)
    session.bind_head(session.parent_head)
    full = session.predict(frame, prior)
    image = session.to_working_rgb(frame)
    logits = session._crop_logits(image, session.to_working_mask(prior), (0, 0, WORKING[1], WORKING[0]))
    np.testing.assert_allclose(session.logits_to_frame(logits, session.letterbox(*WORKING)), full, atol=1e-5)


def test_crop_contexts_are_bounded(session):
    image = session.to_working_rgb(_frame())
    for side in (64, 96, 128):
        for width in (64, 96, 128):
            session._crop_logits(image, None, (0, 0, width, side))
    assert len(session._crops) == CROP_CONTEXTS


def test_static_graphs_never_crop():
    s = OsvosRunner(ivos.load("osvos-cpu", backend="ort", threads=1))
    assert s.size_multiple is None
    assert s.crop_for((0, 0, 10, 10), s.letterbox(480, 854), 0) is None
    s.close()


def test_gate_box_grows_the_prior_box_and_gate_zeroes_outside_it():
    prior = np.zeros((100, 200), np.uint8)
    prior[40:60, 90:110] = 1  # a 20 x 20 box
    box = gate_box(prior, 0.5)
    assert box == (90 - 30, 40 - 20, 110 + 30, 60 + 20)  # 0.5 x 20 + 10% of 200 / 100
    prob = np.full((100, 200), 0.9, np.float32)
    gate_to_prior(prob, box)
    assert prob[box[1]:box[3], box[0]:box[2]].min() == np.float32(0.9)
    assert prob.sum() == pytest.approx(0.9 * (box[2] - box[0]) * (box[3] - box[1]), rel=1e-6)


def test_crop_context_is_checked(osvos_bundle):
    with pytest.raises(ivos.InvalidInput, match="crop_context"):
        ivos.VideoPredictor(ivos.load(osvos_bundle, backend="ort", threads=1), crop_context=-1)


def test_tensorrt_profile_spans_a_small_crop_to_the_full_frame(osvos_bundle):
    from ivos.export.tensorrt import default_dynamic_dims, profile_shapes
    from ivos.runtime.bundle import read_bundle

    bundle = read_bundle(osvos_bundle)  # working size 64 x 96
    dims = default_dynamic_dims(bundle)
    assert dims == {"height": (64, 64, 64), "width": (64, 96, 96)}
    image = next(s for s in bundle.inputs if s.name == "image")
    assert profile_shapes(image.shape, dims) == ((1, 3, 64, 64), (1, 3, 64, 96), (1, 3, 64, 96))


def test_frame_crf_budget_is_a_setting(osvos_bundle):
    from ivos.settings import FRAME_CRF_MAX_PIXELS

    model = ivos.load(osvos_bundle, backend="ort", threads=1)
    assert ivos.VideoPredictor(model).settings.crf.max_pixels == FRAME_CRF_MAX_PIXELS
    assert ivos.VideoPredictor(model, crf_max_pixels=50_000).settings.crf.max_pixels == 50_000
    with pytest.raises(ivos.InvalidInput, match="crf_max_pixels"):
        ivos.VideoPredictor(model, crf_max_pixels=0)
