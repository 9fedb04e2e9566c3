"""Fine-tuning on the trunk graph and on windows of the working image (``FinetuneConfig.crop_features``),
fitting on examples of different sizes, online adaptation from the memory run's own features,
and the named propagation recipes."""
import numpy as np
import pytest

import ivos
from ivos.errors import InvalidInput
from ivos.postprocess import gate_box
from ivos.settings import FRAME_CRF_MAX_PIXELS, ROI_MARGIN, FinetuneConfig, PropagationSettings
from ivos.video.osvos.finetune import augment, build_examples, crop_batch, feature_window, fit_head
from ivos.video.osvos.runner import OsvosRunner

torch = pytest.importorskip("torch", reason="fine-tuning needs torch (pip install 'ivos[export]')")


@pytest.fixture(scope="module")
def session():
    # float: the trunk graph's features are compared with the whole (float) graph's
    model = ivos.load("osvos-lite0", backend="ort", threads=1, precision="fp32")
    runner = OsvosRunner(model)
    yield runner
    runner.close()
    model.close()


def _frame_and_mask(height=480, width=854, box=(600, 300, 660, 360), seed=0):
    rng = np.random.default_rng(seed)
    frame = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    mask = np.zeros((height, width), np.uint8)
    x0, y0, x1, y1 = box
    mask[y0:y1, x0:x1] = 1
    return frame, mask


def test_feature_window_covers_the_motion_gate_on_the_size_grid(session):
    frame, mask = _frame_and_mask()
    x0, y0, x1, y1 = feature_window(session, [mask])
    m = session.size_multiple
    assert all(v % m == 0 for v in (x0, y0, x1 - x0, y1 - y0))
    box = session.letterbox(*mask.shape)
    s = box.rw / box.width
    gx0, gy0, gx1, gy1 = gate_box(mask, ROI_MARGIN)
    assert x0 <= gx0 * s and y0 <= gy0 * s and x1 >= min(gx1 * s, session.working[1]) and y1 >= gy1 * s
    assert (x1 - x0) * (y1 - y0) < 0.5 * session.working[0] * session.working[1]
    # an object over most of the frame, or none: the whole working image
    big = np.ones_like(mask)
    assert feature_window(session, [big]) == (0, 0, session.working[1], session.working[0])
    assert feature_window(session, [np.zeros_like(mask)]) == (0, 0, session.working[1], session.working[0])


def test_windowed_augmentation_is_the_whole_image_transform_cut_to_the_window(session):
    frame, mask = _frame_and_mask()
    image, target = session.to_working_rgb(frame), session.to_working_mask(mask)
    cfg = FinetuneConfig(zero_prior_fraction=1.0)
    whole = augment(image, target, np.random.default_rng(3), cfg, identity=False)
    ys, xs = np.nonzero(whole[1] > 0.5)  # a window around where the transform put the object
    x0, y0 = max(0, xs.min() - 64) // 32 * 32, max(0, ys.min() - 64) // 32 * 32
    x1, y1 = min(session.working[1], x0 + 288), min(session.working[0], y0 + 224)
    part = augment(image, target, np.random.default_rng(3), cfg, identity=False, window=(x0, y0, x1, y1))
    assert part[0].shape == (y1 - y0, x1 - x0, 3) and part[1].shape == (y1 - y0, x1 - x0)
    assert np.abs(part[0].astype(int) - whole[0][y0:y1, x0:x1].astype(int)).max() <= 1
    assert np.abs(part[1] - whole[1][y0:y1, x0:x1]).max() < 1e-3
    assert part[1].sum() > 0  # the object is inside the window


def test_examples_from_the_trunk_graph_equal_the_whole_graphs(session):
    frame, mask = _frame_and_mask()
    cfg = FinetuneConfig(augmentations=2, threads=1)
    assert session.has_trunk_graph
    from_trunk = build_examples(session, [frame], [mask], cfg)
    from_graph = build_examples(session, [frame], [mask], cfg, full_size=True)  # the whole graph's outputs
    for key in ("low", "high", "prior", "target"):
        assert from_trunk[key].shape == from_graph[key].shape
        assert np.allclose(from_trunk[key], from_graph[key], atol=1e-3), key


def test_windowed_examples_are_smaller_and_fit(session):
    frame, mask = _frame_and_mask()
    cfg = FinetuneConfig(augmentations=3, crop_features=True, steps=3, batch=2, crop=16, threads=1)
    examples = build_examples(session, [frame], [mask], cfg)
    x0, y0, x1, y1 = feature_window(session, [mask])
    assert examples["low"].shape[-2:] == ((y1 - y0) // 4, (x1 - x0) // 4)
    assert examples["high"].shape[-2:] == ((y1 - y0) // 8, (x1 - x0) // 8)
    assert examples["target"][0].sum() > 0
    params, loss = fit_head(examples, session.parent_head, cfg)
    assert np.isfinite(loss) and any(not np.array_equal(params[k], session.parent_head[k]) for k in params)


def test_crop_batch_takes_examples_of_different_sizes():
    rng = np.random.default_rng(0)

    def example(h, w):
        return {"low": torch.from_numpy(rng.random((3, h, w), np.float32)),
                "high": torch.from_numpy(rng.random((5, h // 2, w // 2), np.float32)),
                "prior": torch.zeros(1, h, w), "target": torch.ones(1, h, w)}

    items = [example(20, 24), example(12, 40), example(32, 32)]
    data = {k: [e[k] for e in items] for k in items[0]}
    batch = crop_batch(data, torch.tensor([0, 1, 2, 1]), 16, torch.Generator().manual_seed(0))
    assert batch["low"].shape == (4, 3, 12, 12)  # the smallest side (12) bounds the crop
    assert batch["high"].shape == (4, 5, 6, 6) and batch["target"].shape == (4, 1, 12, 12)


def test_classic_propagation_is_the_recipe_before_the_memory_mode():
    model = ivos.load("osvos-lite0", backend="ort", threads=1)
    classic = PropagationSettings.resolve(model.bundle, propagation="classic", threads=1)
    assert classic.mode == "osvos+mask" and classic.adapt_every == 0
    assert classic.finetune == FinetuneConfig(threads=1)
    assert classic.crf.max_pixels == FRAME_CRF_MAX_PIXELS
    # arguments still beat the recipe
    assert PropagationSettings.resolve(model.bundle, propagation="classic", adapt_every=4).adapt_every == 4
    with pytest.raises(InvalidInput, match="propagation must be one of"):
        PropagationSettings.resolve(model.bundle, propagation="fast")
    model.close()
