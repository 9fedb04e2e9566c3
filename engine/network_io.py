"""The contract between ivos's networks and the code that feeds them: constants that training,
export and the runtime must agree on, in one leaf module (it imports nothing), so that none of
them has to import another to learn them.

A bundle's card (``model.json``) carries its own copies (working size, mean, std, click sigma):
the runtime reads those; these are what training and export write into new bundles.
"""
from __future__ import annotations

WORKING_SIZE = 320
"""Side (px) of the square view the click network is trained and run on."""

IMAGENET_MEAN = (0.485, 0.456, 0.406)
"""Per-channel RGB mean subtracted from images in 0..1 (the ImageNet trunks' statistics)."""

IMAGENET_STD = (0.229, 0.224, 0.225)
"""Per-channel RGB standard deviation the mean-subtracted images are divided by."""

CLICK_SIGMA = 5.0
"""Standard deviation (working-size px) of the +/- Gaussian a click is rendered as (paper 2.1)."""
