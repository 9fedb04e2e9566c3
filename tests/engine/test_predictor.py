"""ImagePredictor on a tiny exported bundle: backends agree, state/undo, thread safety,
bad input."""
import json
import threading

import numpy as np
import pytest

import ivos
from ivos.image.geometry import full_view


def _image(seed=0, h=120, w=200):
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    img[30:90, 60:140] = (200, 40, 40)
    return img


@pytest.fixture(scope="module")
def ort_model(tiny_bundle):
    return ivos.load(tiny_bundle, backend="ort", threads=1)


def test_load_reports_the_backend_that_runs(ort_model, tiny_bundle):
    assert ort_model.backend == "onnxruntime:CPUExecutionProvider"
    assert ivos.load(tiny_bundle, backend="torch").backend == "torch:cpu"
    assert ivos.load(tiny_bundle).backend.startswith("onnxruntime:")


def test_ort_equals_torch_through_the_predictor(ort_model, tiny_bundle):
    torch_model = ivos.load(tiny_bundle, backend="torch")
    image = _image()
    results = []
    for model in (ort_model, torch_model):
        p = ivos.ImagePredictor(model, crf=False)
        p.set_image(image)
        p.add_click(100, 60, True)
        results.append(p.add_click(20, 10, False))
    assert np.abs(results[0].probabilities - results[1].probabilities).max() < 1e-4


def test_click_result_shape_dtype_and_clamping(ort_model):
    p = ivos.ImagePredictor(ort_model, crf=False)
    p.set_image(_image())
    r = p.add_click(100.0, 60.0, True)
    assert r.mask.shape == (120, 200) and r.mask.dtype == np.uint8 and set(np.unique(r.mask)) <= {0, 1}
    assert r.probabilities.dtype == np.float32
    assert r.mask[60, 100] == 1  # clicked pixel clamped to its label
    r = p.add_click(100.0, 60.0, False)
    assert r.mask[60, 100] == 0
    assert r.box == full_view(120, 200) or r.box.width == r.box.height < 200
    assert r.timings.total_ms >= r.timings.infer_ms > 0
    assert r.backend == ort_model.backend


def test_undo_and_reset(ort_model):
    p = ivos.ImagePredictor(ort_model, crf=False)
    p.set_image(_image())
    first = p.add_click(100, 60, True)
    p.add_click(10, 10, False)
    back = p.undo()
    assert back is first
    assert p.undo() is None and p.result is None
    p.add_click(100, 60, True)
    p.reset()
    assert p.result is None


def test_predict_is_stateless_and_matches_add_click(ort_model):
    p = ivos.ImagePredictor(ort_model, crf=False)
    p.set_image(_image())
    a = p.add_click(100, 60, True)
    b = p.predict(np.array([[100, 60]]), np.array([1]))
    assert np.array_equal(a.probabilities, b.probabilities)
    assert p.result is a


def test_flip_averages_the_view_and_its_mirror_image(ort_model):
    """flip=True makes the prediction mirror-equivariant (the random-weight network alone is
    not), and leaves the cached view intact (a repeated call gives the same result)."""
    image = _image()
    points, labels = np.array([[100.0, 60.0], [20.0, 10.0]]), np.array([1, 0])
    mirrored = points.copy()
    mirrored[:, 0] = image.shape[1] - 1 - points[:, 0]

    def both_ways(predictor):
        predictor.set_image(image)
        first = predictor.predict(points, labels).probabilities
        assert np.array_equal(predictor.predict(points, labels).probabilities, first)
        predictor.set_image(np.ascontiguousarray(image[:, ::-1]))
        return first, predictor.predict(mirrored, labels).probabilities[:, ::-1]

    a, b = both_ways(ivos.ImagePredictor(ort_model, crf=False, flip=True))
    with_flip = np.abs(a - b).max()
    a, b = both_ways(ivos.ImagePredictor(ort_model, crf=False))
    without = np.abs(a - b).max()
    assert with_flip < 1e-5 and without > 1e-4


def test_flip_default_comes_from_the_bundle(ort_model):
    assert ivos.ImagePredictor(ort_model).settings.flip is False  # the test bundle does not set it
    assert ivos.ImagePredictor(ort_model, flip=True).settings.flip is True


def test_stroke_is_clamped_unless_soft(ort_model):
    image = _image()
    points = np.array([[70, 40], [130, 80]], np.float32)
    hard = ivos.ImagePredictor(ort_model, crf=False)
    hard.set_image(image)
    r = hard.add_stroke(points, positive=True)
    assert r.mask[60, 100] == 1  # on the stroke
    soft = ivos.ImagePredictor(ort_model, crf=False, soft_strokes=True)
    soft.set_image(image)
    r_soft = soft.add_stroke(points, positive=True)
    assert r_soft.probabilities[60, 100] == pytest.approx(r.probabilities[60, 100]) or r_soft.probabilities[60, 100] < 1


def test_four_threads_match_sequential(ort_model):
    images = [_image(seed) for seed in range(4)]
    clicks = [[(100, 60, True), (20 + 5 * i, 10, False), (120, 70, True)] for i in range(4)]

    def session(i):
        p = ivos.ImagePredictor(ort_model, crf=False)
        p.set_image(images[i])
        return [p.add_click(*c).probabilities for c in clicks[i]]

    sequential = [session(i) for i in range(4)]
    threaded = [None] * 4

    def worker(i):
        for _ in range(3):
            threaded[i] = session(i)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for seq, thr in zip(sequential, threaded):
        for a, b in zip(seq, thr):
            assert np.array_equal(a, b)


@pytest.mark.parametrize("image, fragment", [
    (np.zeros((10, 10, 3), np.float32), "uint8"),
    (np.zeros((10, 10), np.uint8), "(H, W, 3)"),
    (np.zeros((10, 10, 4), np.uint8), "(H, W, 3)"),
    (np.zeros((0, 10, 3), np.uint8), "empty"),
    ("not an image", "numpy array"),
])
def test_bad_images(ort_model, image, fragment):
    p = ivos.ImagePredictor(ort_model)
    with pytest.raises(ivos.InvalidInput, match="image") as e:
        p.set_image(image)
    assert fragment in str(e.value)


def test_bad_clicks(ort_model):
    p = ivos.ImagePredictor(ort_model, crf=False)
    with pytest.raises(ivos.InvalidInput, match="set_image"):
        p.add_click(1, 1, True)
    p.set_image(_image())
    with pytest.raises(ivos.InvalidInput, match=r"x must be a column inside the image, 0 <= x < 200"):
        p.add_click(200, 10, True)
    with pytest.raises(ivos.InvalidInput, match=r"x must .* got -1"):
        p.add_click(-1, 10, True)
    with pytest.raises(ivos.InvalidInput, match=r"x must .* got nan"):
        p.add_click(float("nan"), 10, True)
    with pytest.raises(ivos.InvalidInput, match="point_coords.*outside"):
        p.predict(np.array([[200, 10]]), np.array([1]))
    with pytest.raises(ivos.InvalidInput, match="point_coords.*NaN"):
        p.predict(np.array([[np.nan, 10]]), np.array([1]))
    assert p.result is None  # failed clicks never join the history
    with pytest.raises(ivos.InvalidInput, match="point_labels"):
        p.predict(np.array([[1, 1], [2, 2]]), np.array([1]))
    with pytest.raises(ivos.InvalidInput, match="point_labels"):
        p.predict(np.array([[1, 1]]), np.array([2]))
    with pytest.raises(ivos.InvalidInput, match="mask_input"):
        p.predict(np.array([[1, 1]]), np.array([1]), mask_input=np.zeros((5, 5), np.uint8))
    with pytest.raises(ivos.InvalidInput, match="mask_input"):
        p.predict(np.array([[1, 1]]), np.array([1]), mask_input=np.full((120, 200), 255, np.uint8))
    with pytest.raises(ivos.InvalidInput, match="nothing to predict"):
        p.predict(np.zeros((0, 2)), np.zeros(0))


def test_bundle_errors_name_the_field(tiny_bundle, tmp_path):
    with pytest.raises(ivos.ModelError, match="model.json is missing"):
        ivos.load(tmp_path)
    (tmp_path / "model.json").write_text("{not json")
    with pytest.raises(ivos.ModelError, match="corrupt"):
        ivos.load(tmp_path)
    card = json.loads((tiny_bundle / "model.json").read_text())
    for field, value, fragment in [("format_version", 99, "format_version"), ("working_size", [64], "working_size"),
                                   ("inputs", "x", "inputs"), ("click_encoding", {"kind": "x"}, "click_encoding")]:
        broken = dict(card, **{field: value})
        (tmp_path / "model.json").write_text(json.dumps(broken))
        with pytest.raises(ivos.ModelError, match=fragment):
            ivos.load(tmp_path)
    del card["normalization"]
    (tmp_path / "model.json").write_text(json.dumps(card))
    with pytest.raises(ivos.ModelError, match="normalization"):
        ivos.load(tmp_path)


def test_bad_backend_and_device(tiny_bundle):
    with pytest.raises(ivos.InvalidInput, match="backend"):
        ivos.load(tiny_bundle, backend="magic")
    with pytest.raises(ivos.InvalidInput, match="device"):
        ivos.load(tiny_bundle, device="tpu")
    with pytest.raises(ivos.BackendUnavailable):
        ivos.load(tiny_bundle, backend="tensorrt")


def test_crf_on_large_regions_runs_downscaled(ort_model, monkeypatch):
    import ivos.settings as settings_module

    image = _image(h=300, w=400)
    full = ivos.ImagePredictor(ort_model, crf=True)
    full.set_image(image)
    exact = full.add_click(100, 60, True)
    monkeypatch.setattr(settings_module, "CLICK_CRF_MAX_PIXELS", 300 * 400 // 4)
    budget = ivos.ImagePredictor(ort_model, crf=True)
    budget.set_image(image)
    approx = budget.add_click(100, 60, True)
    assert approx.mask[60, 100] == 1
    assert (approx.mask == exact.mask).mean() > 0.95


class _RecordingRunner:
    """Wraps a runner; its contexts keep a copy of the inputs of every run."""

    def __init__(self, inner):
        self._inner, self.recorded = inner, []
        self.name, self.device, self.precision = inner.name, inner.device, inner.precision
        self.input_specs, self.output_specs = inner.input_specs, inner.output_specs

    def create_context(self, dims=None):
        ctx, sink = self._inner.create_context(dims), self.recorded
        run = ctx.run

        def recording_run(fetch=None):
            sink.append({k: v.copy() for k, v in ctx.inputs.items()})
            return run(fetch=fetch)

        ctx.run = recording_run
        return ctx


def test_the_next_click_starts_from_the_previous_low_res_logits(ort_model):
    """Between clicks the working state is the previous result's low-resolution logits: the
    next run's mask input is ``low_res_logits > 0``, carried into the new view."""
    from ivos.runtime.model import Model

    runner = _RecordingRunner(ort_model.runner)
    predictor = ivos.ImagePredictor(Model(ort_model.bundle, runner), zoom=False)  # the view stays the full image
    predictor.set_image(_image())
    first = predictor.add_click(100, 60, True)
    second = predictor.add_click(20, 10, False)
    assert first.low_res_logits.shape == (64, 64) and first.box == second.box
    assert runner.recorded[0]["mask"].max() == 0
    np.testing.assert_array_equal(runner.recorded[1]["mask"][0, 0], (first.low_res_logits > 0).astype(np.float32))
    assert predictor.undo() is first


def test_carried_logits_follow_the_view():
    """``ClickView.carry_logits``: the same array for the same view; into another view, each
    working pixel takes the logit of the same original point, background where the old view
    saw nothing."""
    from ivos.image.crops import OUTSIDE_LOGIT, ClickView, Normaliser
    from ivos.image.geometry import Box

    view = ClickView(8, Normaliser((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)))
    logits = np.arange(64, dtype=np.float32).reshape(8, 8)
    source = Box(0, 0, 16, 16)  # 2 original pixels per working pixel
    assert view.carry_logits(logits, source, source) is logits
    right_half = view.carry_logits(logits, source, Box(8, 0, 8, 16))  # columns 4..7 stretched x2 in x
    # target working x = j is original x = 8.5 + j (edges), source working x = 3.75 + j / 2
    np.testing.assert_allclose(right_half[3, 1:7:2], logits[3, 4:7] + 0.25, atol=1e-4)
    outside = view.carry_logits(logits, source, Box(40, 40, 16, 16))
    assert np.all(outside == OUTSIDE_LOGIT)


def test_a_closed_predictor_refuses_to_predict(ort_model):
    with ivos.ImagePredictor(ort_model) as predictor:
        predictor.set_image(_image())
        predictor.add_click(100, 60, True)
    with pytest.raises(ivos.InvalidInput, match="closed"):
        predictor.add_click(20, 10, False)
    ort_model.create_context().run()  # the model itself stays usable
