"""Training losses (training.losses): BCE and the normalised focal loss."""
import pytest
import torch
import torch.nn.functional as F

from training.losses import LOSSES, click_loss, normalized_focal_loss
from training.train import parse_args


def _example(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(3, 1, 16, 16, generator=g) * 3, (torch.rand(3, 1, 16, 16, generator=g) > 0.9).float()


def test_nfl_with_gamma_zero_is_the_plain_bce():
    logits, gt = _example()
    assert torch.allclose(normalized_focal_loss(logits, gt, gamma=0.0), F.binary_cross_entropy_with_logits(logits, gt),
                          atol=1e-5)


def test_nfl_puts_each_examples_weight_on_its_wrong_pixels_whatever_its_size():
    """Two examples, each with one wrong pixel among easy ones: one in a 4-pixel object, one in a
    200-pixel object. BCE gives the wrong pixel of each the same gradient, scaled by 1/pixels;
    the NFL gives each wrong pixel the bulk of its example's weight."""
    gt = torch.zeros(2, 1, 16, 16)
    gt[0, 0, :2, :2] = 1
    gt[1, 0].view(-1)[:200] = 1
    logits = (gt * 2 - 1) * 6  # confident and right everywhere...
    logits[:, 0, 0, 0] = -1.0  # ...but one object pixel per example
    logits.requires_grad_(True)
    normalized_focal_loss(logits, gt).backward()
    grad = logits.grad.abs()
    wrong = grad[:, 0, 0, 0]
    assert torch.allclose(wrong[0], wrong[1], rtol=1e-3)
    assert (wrong > 100 * grad[:, 0, 8, 8]).all()  # easy background pixels barely count
    bce_wrong = torch.autograd.grad(F.binary_cross_entropy_with_logits(logits, gt), logits)[0][:, 0, 0, 0].abs()
    assert (wrong > 10 * bce_wrong).all()


def test_click_loss_names_the_loss_and_the_training_option():
    logits, gt = _example(1)
    assert torch.equal(click_loss("bce", logits, gt), F.binary_cross_entropy_with_logits(logits, gt))
    assert torch.equal(click_loss("nfl", logits, gt), normalized_focal_loss(logits, gt))
    with pytest.raises(ValueError, match="unknown loss 'dice'"):
        click_loss("dice", logits, gt)
    assert parse_args(["--name", "x"]).loss == "bce" and set(LOSSES) == {"bce", "nfl"}
    assert parse_args(["--name", "x", "--loss", "nfl"]).loss == "nfl"
