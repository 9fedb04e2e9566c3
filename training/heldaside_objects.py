"""Writes the held-aside BSDS objects as an image/mask folder pair, for choosing inference
settings on data that is neither trained on nor reported.

The DAVIS sequences held aside (``data.VAL_DAVIS``) can be read from the data root directly
(``click_sweep --sequences``); the held-aside BSDS objects exist only inside the training
cache (the split is drawn with a fixed seed, ``data.N_VAL_BSDS`` images). This module writes
``per_image`` objects of each of those images (the first human segmentation; objects chosen
with seed 0) as ``DIR/images/<id>_<k>.png`` (RGB) and ``DIR/masks/<id>_<k>.png`` (0/255), the
layout of ``ivos-bench click --dataset folder`` and ``python -m ivos.bench.click_sweep
--images --masks``. Write them outside the repository (data sets stay in ../shared):

    python -m training.heldaside_objects --out /tmp/heldaside-bsds
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from .data import Cache, default_data_root, heldaside_bsds_images, load_cache

DEFAULT_PER_IMAGE = 3
"""Objects written per held-aside BSDS image."""


def heldaside_bsds_objects(cache: Cache, per_image: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, image (H, W, 3) uint8 RGB, mask (H, W) bool) for up to ``per_image`` objects of
    each held-aside BSDS image's first segmentation, chosen with a fixed seed."""
    rng = np.random.default_rng(0)
    out = []
    for entry in heldaside_bsds_images(cache):
        image_id = entry.key.split("/")[1]
        picks = rng.choice(len(entry.objects), min(per_image, len(entry.objects)), replace=False)
        for k in sorted(picks.tolist()):
            mask = np.isin(entry.labels, entry.objects[k])
            out.append((f"{image_id}_{k}", entry.image, mask))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="folder to write images/ and masks/ into")
    p.add_argument("--per-image", type=int, default=DEFAULT_PER_IMAGE, help="objects per held-aside image")
    p.add_argument("--data-root", type=Path, default=None)
    p.add_argument("--runs-dir", type=Path, default=Path("runs"), help="where the training cache lives")
    args = p.parse_args(argv)
    if args.per_image < 1:
        p.error(f"--per-image must be >= 1, got {args.per_image}")
    cache = load_cache(args.data_root or default_data_root(), args.runs_dir / "cache")
    objects = heldaside_bsds_objects(cache, args.per_image)
    (args.out / "images").mkdir(parents=True, exist_ok=True)
    (args.out / "masks").mkdir(parents=True, exist_ok=True)
    for name, image, mask in objects:
        cv2.imwrite(str(args.out / "images" / f"{name}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(args.out / "masks" / f"{name}.png"), mask.astype(np.uint8) * 255)
    print(f"wrote {len(objects)} held-aside BSDS objects to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
