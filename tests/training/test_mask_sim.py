"""Simulated imperfect masks (``training.mask_sim``) and the stage-2 batch layout that pairs
them with correction clicks only."""
import argparse

import numpy as np
import torch

from training import data, interactions, train
from training.click_sim import correction_clicks
from training.mask_sim import perturbed_mask


def _iou(a, b):
    return (a & b).sum() / max(1, (a | b).sum())


def _rect(size=128, box=(30, 100, 40, 90)):
    gt = np.zeros((size, size), bool)
    gt[box[0]:box[1], box[2]:box[3]] = True
    return gt


def test_perturbed_masks_are_wrong_but_mostly_close():
    gt = _rect()
    rng = np.random.default_rng(0)
    ious = np.array([_iou(perturbed_mask(gt, rng), gt) for _ in range(200)])
    assert ious.max() < 1.0  # every mask needs correcting
    assert 0.55 < np.median(ious) < 0.95  # near the object, as propagation leaves it
    assert (ious < 0.3).mean() < 0.3  # lost and leaking masks are the exception


def test_some_masks_leak_into_a_large_region_around_the_object():
    gt = _rect(size=256, box=(110, 140, 110, 150))
    rng = np.random.default_rng(2)
    masks = [perturbed_mask(gt, rng) for _ in range(200)]
    leaks = [m for m in masks if (m & gt).sum() > 0.7 * gt.sum() and (m & ~gt).sum() > 2 * gt.sum()]
    assert 0.05 < len(leaks) / len(masks) < 0.3


def test_perturbed_mask_is_deterministic_and_shaped():
    gt = _rect()
    a = perturbed_mask(gt, np.random.default_rng(5))
    b = perturbed_mask(gt, np.random.default_rng(5))
    assert a.dtype == bool and a.shape == gt.shape and np.array_equal(a, b)


def test_correction_clicks_on_a_perturbed_mask_land_in_its_errors():
    gt = _rect()
    rng = np.random.default_rng(1)
    for _ in range(20):
        mask = perturbed_mask(gt, rng)
        clicks = correction_clicks(gt, mask, 5, rng)
        x, y, label = clicks[:, 0].astype(int), clicks[:, 1].astype(int), clicks[:, 2]
        assert np.all(gt[y, x] == (label == 1)) and np.all(mask[y, x] == (label == 0))


class _AllForeground(torch.nn.Module):
    """A stand-in corrector: predicts foreground everywhere."""
    config = argparse.Namespace(click_encoding="gaussian")

    def forward(self, image, mask, clicks):
        return torch.ones_like(mask)


def test_stage2_batch_layout(monkeypatch):
    labels = np.zeros((100, 150), np.uint16)
    labels[30:70, 40:90] = 7
    entry = data.Entry(np.full((100, 150, 3), 128, np.uint8), labels, [(7,)], "test", "t")
    cache = data.Cache({"davis": [entry], "bsds": [entry], "coco": [entry]}, [])
    args = argparse.Namespace(batch=8, size=64, corr_fraction=0.375, perturbed_fraction=0.25, click_sigma=5.0)
    encoded = []
    monkeypatch.setattr(train, "encode_batch", lambda *a: encoded.append(a) or interactions.encode_batch(*a))
    image, mask, clicks, gt = train.make_batch(cache, args, np.random.default_rng(0), "gaussian", _AllForeground())
    assert image.shape == (8, 3, 64, 64) and mask.shape == clicks.shape == gt.shape == (8, 1, 64, 64)
    assert torch.all(mask[:3] == 1)  # the corrector's prediction
    assert all(mask[i].any() and not torch.equal(mask[i], gt[i]) for i in (3, 4))  # perturbed ground truth
    assert torch.all(mask[5:] == 0)  # first interactions have no mask
    views, inters, masks, _, _ = encoded[-1]
    for i in (3, 4):  # refinement examples: correction clicks only, all inside the errors
        pts, strokes = inters[i]
        assert strokes == []
        x, y, label = pts[:, 0].astype(int), pts[:, 1].astype(int), pts[:, 2]
        assert np.all(views[i].gt[y, x] == (label == 1)) and np.all(masks[i][y, x] == (label == 0))
