"""training.iterative: the network's own predictions and the simulated user's clicks become the
correction examples' inputs."""
import numpy as np
import torch

from training.iterative import add_protocol_click, iterate_corrections


def _square(size: int = 32, lo: int = 8, hi: int = 24) -> np.ndarray:
    gt = np.zeros((size, size), bool)
    gt[lo:hi, lo:hi] = True
    return gt


def test_protocol_click_goes_into_the_largest_error_and_never_repeats():
    gt = _square()
    pred = np.zeros_like(gt)
    first = add_protocol_click(gt, pred, np.zeros((0, 3), np.float32))
    assert first.shape == (1, 3) and first[0, 2] == 1 and gt[int(first[0, 1]), int(first[0, 0])]
    second = add_protocol_click(gt, pred, first)
    assert second.shape == (2, 3) and not np.array_equal(second[0, :2], second[1, :2])
    over = np.ones_like(gt)  # everything predicted: the error is background, a negative click
    neg = add_protocol_click(gt, over, np.zeros((0, 3), np.float32))
    assert neg[0, 2] == 0 and not gt[int(neg[0, 1]), int(neg[0, 0])]
    assert add_protocol_click(gt, gt, first).shape == (1, 3)  # nothing left to correct


class _Fixed(torch.nn.Module):
    """Predicts the same mask whatever it is given; records its inputs and mode."""

    def __init__(self, mask: np.ndarray):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.logits = torch.from_numpy(np.where(mask, 5.0, -5.0).astype(np.float32))[None, None]
        self.calls = []

    def forward(self, image, mask, clicks):
        self.calls.append((self.training, mask.clone(), clicks.clone(), torch.is_grad_enabled()))
        return self.logits.expand(image.shape[0], -1, -1, -1)


def test_rounds_feed_the_models_prediction_back_and_add_one_click_each():
    gt = _square()
    half = gt.copy()
    half[:, 16:] = False  # the model finds the left half of the object
    model = _Fixed(half).train()
    image = torch.zeros(2, 3, 32, 32)
    start = np.zeros((2, 32, 32), bool)
    inters = [(np.array([[12, 12, 1]], np.float32), []), (np.array([[14, 14, 1]], np.float32), [])]
    masks, out = iterate_corrections(model, image, start, np.stack([gt, gt]), inters, 2, "gaussian", 5.0)
    assert model.training and len(model.calls) == 2
    assert all(not training and not grad for training, _, _, grad in model.calls)
    assert model.calls[0][1].sum() == 0 and torch.equal(model.calls[1][1][0, 0], torch.from_numpy(half).float())
    assert np.array_equal(masks[0], half) and np.array_equal(masks[1], half)
    for clicks, _ in out:
        assert clicks.shape == (3, 3) and np.all(clicks[1:, 2] == 1)  # the missing right half: positive clicks
        assert np.all(clicks[1:, 0] >= 16)


def test_zero_rounds_change_nothing():
    model = _Fixed(_square())
    start = np.zeros((1, 32, 32), bool)
    inters = [(np.array([[12, 12, 1]], np.float32), [])]
    masks, out = iterate_corrections(model, torch.zeros(1, 3, 32, 32), start, start, inters, 0, "gaussian", 5.0)
    assert masks is start and out is inters and not model.calls
