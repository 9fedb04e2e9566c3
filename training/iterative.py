"""RITM-style iterative sampling: correction examples whose mask input is the training network's
own prediction after a few clicks of the evaluation's simulated user.

Stage 2's correction examples otherwise pair the frozen stage-1 corrector's prediction with
correction clicks drawn at random in its errors. At run time the network sees something else:
its own previous mask, and the clicks of a user who clicks into the largest error. Here, before
a batch is trained on, the network being trained (eval mode, no gradients) predicts from each
correction example ``rounds`` times; after each prediction the RITM simulated user
(``ivos.evaluation.clicker.next_click``, the NoC protocol's rule) adds one click on that
prediction's largest error, and the prediction becomes the example's mask input (RITM,
Sofiiuk et al. 2022, "iterative training": 0-3 rounds per batch, drawn uniformly).
"""
from __future__ import annotations

import numpy as np
import torch

from ivos.evaluation.clicker import Click, next_click

from .interactions import Interaction, encode_clicks_batch


def add_protocol_click(gt: np.ndarray, pred: np.ndarray, clicks: np.ndarray) -> np.ndarray:
    """``clicks`` (N, 3) float32 (x, y, label) plus the simulated user's next click on the error
    of ``pred`` against ``gt`` (both (S, S) bool), never on a pixel already clicked; unchanged
    when nothing is left to correct."""
    clicked = [Click(int(round(x)), int(round(y)), bool(label)) for x, y, label in clicks]
    click = next_click(gt, pred, clicked=clicked)
    if click is None:
        return clicks
    return np.concatenate([clicks, np.array([[click.x, click.y, float(click.positive)]], np.float32)])


def iterate_corrections(model: torch.nn.Module, image: torch.Tensor, masks: np.ndarray, gts: np.ndarray,
                        interactions: list[Interaction], rounds: int, encoding: str, sigma: float
                        ) -> tuple[np.ndarray, list[Interaction]]:
    """``rounds`` rounds of (the model predicts; the simulated user clicks its largest error).

    Args:
        model: the network being trained; run in eval mode without gradients, left as it was.
        image: (B, 3, S, S) float32 normalised views, on the model's device.
        masks: (B, S, S) bool, each example's mask input before the first round.
        gts: (B, S, S) bool ground truth.
        interactions: per example, clicks (N, 3) float32 (x, y, label) and strokes.
        rounds: >= 0; 0 returns the inputs unchanged.
        encoding, sigma: how clicks are rendered (the model's encoding; Gaussian sigma in px).

    Returns:
        (masks (B, S, S) bool: the last prediction, interactions with one click more per round
        wherever an error was left).
    """
    if rounds <= 0:
        return masks, interactions
    was_training = model.training
    model.eval()
    device = image.device
    try:
        for _ in range(rounds):
            clicks = encode_clicks_batch(gts.shape[1], interactions, encoding, sigma).to(device)
            mask = torch.from_numpy(masks[:, None].astype(np.float32)).to(device)
            with torch.no_grad():
                masks = (model(image, mask, clicks) > 0).squeeze(1).cpu().numpy()
            interactions = [(add_protocol_click(gt, pred, c), strokes)
                            for gt, pred, (c, strokes) in zip(gts, masks, interactions)]
    finally:
        model.train(was_training)
    return masks, interactions
