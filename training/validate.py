"""Validation NoC with the RITM simulated user (``ivos.evaluation.clicker.next_click``).

The validation set is ``n`` fixed held-aside objects (half DAVIS frames from the held-aside
sequences, half BSDS objects from held-aside images), each as a deterministic object-centred
crop with context (``make_view(augment=False)``) at the training size: the view the runtime
would show the network after the first click. Per object the user clicks up to
``MAX_CLICKS`` times at the interior-most point of the worst error region; the network gets
all clicks so far and (if it uses one) its previous binary prediction as the mask. No click
clamping and no CRF here: this measures the network alone.
"""
from __future__ import annotations

import numpy as np
import torch

from ivos.evaluation.clicker import Click, next_click
from ivos.export.click_encodings import encode_clicks
from ivos.mask_metrics import iou
from ivos.network_io import CLICK_SIGMA

from .augment import View, make_view
from .data import Cache, heldaside_bsds_images
from .interactions import normalise_image

MAX_CLICKS = 20
IOU_THRESHOLDS = (0.85, 0.90)


def make_val_set(cache: Cache, n: int, size: int) -> list[View]:
    """n fixed views: n//2 DAVIS frames evenly spaced over the held-aside frames, the rest one
    object per held-aside BSDS image (first segmentation, object chosen with seed 0)."""
    rng = np.random.default_rng(0)
    davis = [e for e in cache.val if e.source == "davis"]
    bsds = heldaside_bsds_images(cache)
    picks = [(davis[int(i)], 0) for i in np.linspace(0, len(davis) - 1, n // 2)]
    picks += [(e, int(rng.integers(len(e.objects)))) for e in bsds[: n - n // 2]]
    views = [make_view(e, obj, size, rng, augment=False) for e, obj in picks]
    return [v for v in views if v is not None]


@torch.no_grad()
def validate(model, views: list[View], batch: int = 20) -> dict[str, float]:
    """Runs the simulated user on every view. Returns miou@1, miou@5, noc@85, noc@90 (a view
    that never reaches the threshold counts MAX_CLICKS) and n."""
    model.eval()
    device = next(model.parameters()).device
    size = views[0].gt.shape[0]
    encoding = model.config.click_encoding
    ious = np.zeros((len(views), MAX_CLICKS))
    for lo in range(0, len(views), batch):
        chunk = views[lo:lo + batch]
        images = torch.from_numpy(np.stack([normalise_image(v.image) for v in chunk])).to(device)
        preds = np.zeros((len(chunk), size, size), bool)
        clicks: list[list[Click]] = [[] for _ in chunk]
        active = np.arange(len(chunk))
        for k in range(MAX_CLICKS):
            for i in active:
                c = next_click(chunk[i].gt, preds[i], is_first=(k == 0), clicked=clicks[i])
                if c is not None:
                    clicks[i].append(c)
            enc = np.stack([encode_clicks(size, size, np.array([[c.x, c.y, int(c.positive)] for c in clicks[i]], np.float32),
                                          encoding, sigma=CLICK_SIGMA) for i in active])
            mask = torch.from_numpy(preds[active, None].astype(np.float32)).to(device)
            logits = model(images[torch.from_numpy(active).to(device)], mask, torch.from_numpy(enc).to(device))
            preds[active] = (logits > 0).squeeze(1).cpu().numpy()
            for i in active:
                ious[lo + i, k:] = iou(preds[i], chunk[i].gt)  # later clicks keep it if the view stops here
            # a view that reached the top threshold after the 5th click no longer changes any metric
            if k >= 4:
                active = active[ious[lo + active, k] < IOU_THRESHOLDS[-1]]
            if not len(active):
                break
    out = {"n": len(views), "miou@1": float(ious[:, 0].mean()), "miou@5": float(ious[:, 4].mean())}
    for t in IOU_THRESHOLDS:
        reached = ious >= t
        noc = np.where(reached.any(axis=1), reached.argmax(axis=1) + 1, MAX_CLICKS)
        out[f"noc@{round(t * 100)}"] = float(noc.mean())
    return out
