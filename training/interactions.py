"""Turning augmented views into network inputs: the first interaction of a training example
(clicks and strokes drawn by ``click_sim``) and the batched, encoded tensors.

Mix of the first interaction (iFCN-style, biased towards what users do first: one or two
positive clicks): 1-5 positives (P = .4 .25 .15 .1 .1), 0-5 negatives (P(0) = .4, else
uniform 1..5) by a uniformly chosen strategy, and with probability P_STROKE one positive
and/or negative stroke in place of a click (paper 4.1).
"""
from __future__ import annotations

import numpy as np
import torch

from ivos.evaluation.clicker import next_click
from ivos.export.click_encodings import encode_clicks
from ivos.network_io import CLICK_SIGMA, IMAGENET_MEAN, IMAGENET_STD

_MEAN = np.array(IMAGENET_MEAN, np.float32)
_STD = np.array(IMAGENET_STD, np.float32)

from . import click_sim
from .augment import View

P_STROKE = 0.15
"""Probability of a positive (and, independently, of a negative) stroke."""

Interaction = tuple[np.ndarray, list[tuple[np.ndarray, int]]]
"""Clicks (N, 3) float32 (x, y, label) and strokes [(points (M, 2) xy, label)]."""


def first_interaction(view: View, rng: np.random.Generator) -> Interaction:
    """Simulated first interaction on ``view`` (see the module docstring). Always holds at
    least one positive click or stroke when the object has room for one."""
    n_pos = int(rng.choice([1, 2, 3, 4, 5], p=[0.4, 0.25, 0.15, 0.1, 0.1]))
    n_neg = 0 if rng.random() < 0.4 else int(rng.integers(1, 6))
    strokes = []
    if rng.random() < P_STROKE:
        s = click_sim.stroke(view.gt, rng, 1)
        if s is not None:
            strokes.append(s)
            n_pos -= 1
    if rng.random() < P_STROKE:
        s = click_sim.stroke(~view.gt & click_sim.hull_band(view.gt, d_margin=0), rng, 0)
        if s is not None:
            strokes.append(s)
    pos = click_sim.positive_clicks(view.gt, n_pos, rng)
    if not len(pos) and not any(label == 1 for _, label in strokes):
        # objects thinner than 2 * d_margin: click their deepest pixel instead
        y, x = np.unravel_index(np.argmax(click_sim.inside_distance(view.gt)), view.gt.shape)
        pos = np.array([[x, y, 1]], np.float32)
    neg = click_sim.negative_clicks(view.gt, n_neg, rng, int(rng.integers(1, 4)),
                                    other_objects=view.others, previous=pos)
    return np.concatenate([pos, neg]), strokes


def protocol_first_interaction(view: View) -> Interaction:
    """The NoC protocol's first interaction on ``view``: one positive click at the object's
    interior-most pixel (``ivos.evaluation.clicker.next_click(is_first=True)``), no strokes: what
    every evaluation, and a user clicking an object's middle, starts from. (The random mix of
    ``first_interaction`` holds a lone positive click in about 12% of the examples, anywhere
    inside the object.) ``view.gt`` must hold an object pixel."""
    click = next_click(view.gt, None, is_first=True)
    if click is None:
        raise ValueError("the view holds no object pixel to click")
    return np.array([[click.x, click.y, 1.0]], np.float32), []


def first_interactions(views: list[View], rng: np.random.Generator, protocol_fraction: float = 0.0
                       ) -> list[Interaction]:
    """Each view's first interaction: with probability ``protocol_fraction`` the protocol's
    (``protocol_first_interaction``), else the random mix (``first_interaction``); a view
    without object pixels always gets the random mix. Off (0), it draws nothing from ``rng``:
    recipes without it reproduce batch for batch."""
    return [protocol_first_interaction(v) if protocol_fraction > 0 and rng.random() < protocol_fraction
            and v.gt.any() else first_interaction(v, rng) for v in views]


def normalise_image(image: np.ndarray) -> np.ndarray:
    """(S, S, 3) uint8 RGB -> (3, S, S) float32 ImageNet-normalised."""
    return ((image.astype(np.float32) / 255.0 - _MEAN) / _STD).transpose(2, 0, 1)


def encode_clicks_batch(size: int, interactions: list[Interaction], encoding: str,
                        sigma: float = CLICK_SIGMA) -> torch.Tensor:
    """Click channels (B, C, S, S) float32 of ``interactions`` on S x S views (Gaussian ``sigma`` px)."""
    return torch.from_numpy(np.stack([encode_clicks(size, size, c, encoding, sigma=sigma, strokes=s)
                                      for c, s in interactions]))


def encode_batch(views: list[View], interactions: list[Interaction], masks: np.ndarray | None,
                 encoding: str, sigma: float = CLICK_SIGMA) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Network inputs for a batch: image (B, 3, S, S), mask (B, 1, S, S) (zeros when ``masks``
    is None, else ``masks`` (B, S, S) bool), clicks (B, C, S, S) rendered with Gaussian
    ``sigma`` (px), target gt (B, 1, S, S); all float32 tensors."""
    size = views[0].gt.shape[0]
    image = torch.from_numpy(np.stack([normalise_image(v.image) for v in views]))
    clicks = encode_clicks_batch(size, interactions, encoding, sigma)
    gt = torch.from_numpy(np.stack([v.gt for v in views])[:, None].astype(np.float32))
    mask = torch.zeros_like(gt) if masks is None else torch.from_numpy(masks[:, None].astype(np.float32))
    return image, mask, clicks, gt
