"""How well an outline-exact mask can score on the COCO128 held-aside set: each instance's
ground-truth mask (``coco128-seg/masks``) against its own annotated polygon
(``coco128-seg/labels_yolo``) rasterised by pixel coverage, per object-size bucket.

    python -m ivos.bench.outline_ceiling [--click-json benchmarks/results/click_refocus_coco.json] \\
        [--out benchmarks/results/outline_ceiling.md]

A pixel is inside the outline when at least ``--coverage`` of it (0.5: the outline's own
area) lies inside the polygon (measured on an 8x supersampled raster) and the id map gives it
to no other instance (where outlines overlap, the map holds the one drawn last). Where
the benchmark's masks were filled differently (every pixel the polygon touches, say), even a
segmentation that follows the annotated outline exactly stays below IoU 1 on small objects,
and the gap grows as the object shrinks: the table says how many objects can reach 0.90 at
all with such a mask. ``--click-json`` (an ``ivos-bench click --dataset COCO128 --json``
file) adds, per bucket, how many of that run's failures at 90% are among them.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import numpy as np

from ._common import environment_line, write_report

SUPERSAMPLE = 8
"""Sub-pixels per pixel side when measuring polygon coverage."""


def coverage(polygon: np.ndarray, height: int, width: int) -> np.ndarray:
    """Share of each pixel inside ``polygon`` ((N, 2) float (x, y) pixels, pixel (0, 0) spanning
    [0, 1) x [0, 1)): float32 (height, width) in [0, 1]."""
    from PIL import Image, ImageDraw

    s = SUPERSAMPLE
    canvas = Image.new("L", (width * s, height * s), 0)
    ImageDraw.Draw(canvas).polygon([(float(x) * s, float(y) * s) for x, y in polygon], fill=255)
    return np.asarray(canvas, np.float32).reshape(height, s, width, s).mean(axis=(1, 3)) / 255.0


def read_polygons(label_file: Path, height: int, width: int) -> list[np.ndarray]:
    """The instances' polygons of a YOLO segmentation label file (``class x1 y1 x2 y2 ...``,
    coordinates normalised to [0, 1]), in pixels, in file order (instance id = index + 1)."""
    polygons = []
    for line in label_file.read_text().splitlines():
        values = line.split()
        if not values:
            continue
        if len(values) < 7 or len(values) % 2 == 0:
            raise ValueError(f"{label_file}: a polygon line needs a class and at least 3 (x, y) pairs, got {line!r}")
        polygons.append(np.asarray(values[1:], np.float64).reshape(-1, 2) * [width, height])
    return polygons


def outline_ious(root: Path, min_coverage: float) -> dict[str, tuple[float, float]]:
    """``<stem>#<id>`` -> (area fraction, IoU of the ground-truth mask against the polygon's
    pixels of at least ``min_coverage`` that no other instance holds), for the held-aside
    instances ``ivos-bench click`` evaluates (``coco128_heldaside``'s samples)."""
    from PIL import Image

    from ivos.evaluation.datasets import coco128_heldaside
    from ivos.mask_metrics import iou

    base = root / "coco128-seg"
    instances: dict[str, list[int]] = {}
    for name in coco128_heldaside(root).names:
        stem, instance = name.split("#")
        instances.setdefault(stem, []).append(int(instance))
    out = {}
    for stem, ids in instances.items():
        with Image.open(base / "masks" / f"{stem}.png") as im:
            labels = np.asarray(im)
        h, w = labels.shape
        polygons = read_polygons(base / "labels_yolo" / f"{stem}.txt", h, w)
        for i in ids:
            gt = labels == i
            # The id map holds one instance a pixel: where outlines overlap, another instance
            # took the pixel, and the outline's mask leaves it too.
            outline = (coverage(polygons[i - 1], h, w) >= min_coverage) & ((labels == 0) | gt)
            out[f"{stem}#{i}"] = (np.count_nonzero(gt) / gt.size, iou(outline, gt))
    return out


def table(ious: dict[str, tuple[float, float]], failed: set[str] | None) -> list[str]:
    """Markdown rows per ``ivos.evaluation.noc.SIZE_BUCKETS`` bucket (and all)."""
    from ivos.evaluation.noc import SIZE_BUCKETS

    head = "| object area | n | outline IoU median | mean | outline below 0.90 |"
    rule = "|---|---:|---:|---:|---:|"
    if failed is not None:
        head += " the run's failures@90 | of them, outline below 0.90 |"
        rule += "---:|---:|"
    rows = [head, rule]
    for label, low, high in SIZE_BUCKETS + (("all", 0.0, 1.01),):
        names = [n for n, (a, _) in ious.items() if low <= a < high]
        if not names:
            continue
        v = np.array([ious[n][1] for n in names])
        row = f"| {label} | {len(names)} | {np.median(v):.3f} | {v.mean():.3f} | {int(np.sum(v < 0.9))} |"
        if failed is not None:
            fails = [n for n in names if n in failed]
            row += f" {len(fails)} | {sum(ious[n][1] < 0.9 for n in fails)} |"
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    import ivos

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-root", type=Path, default=None)
    p.add_argument("--coverage", type=float, default=0.5, help="least share of a pixel inside the polygon (0, 1]")
    p.add_argument("--click-json", type=Path, help="an ivos-bench click --dataset COCO128 --json file")
    p.add_argument("--method", default=None, help="the --click-json method (default: its first)")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    if not 0 < args.coverage <= 1:
        p.error(f"--coverage must be in (0, 1], got {args.coverage}")
    failed = None
    if args.click_json is not None:
        methods = json.loads(args.click_json.read_text())["methods"]
        method = args.method or next(iter(methods))
        if method not in methods:
            p.error(f"--method {method!r} is not in {args.click_json} (it has {', '.join(methods)})")
        failed = {s["name"] for s in methods[method]["per_sample"] if max(s["ious"]) < 0.9}
    root = ivos.datasets_root(args.data_root)
    if root is None:
        p.error("no data root: pass --data-root or set IVOS_DATA_ROOT (the folder that holds coco128-seg)")
    ious = outline_ious(root, args.coverage)
    command = shlex.join(sys.argv[1:] if argv is None else argv)
    lines = ["# The outline ceiling of the COCO128 held-aside masks", "",
             f"Command: `python -m ivos.bench.outline_ceiling {command}`", "",
             f"Environment: {environment_line()}.", "",
             __doc__.split("\n\n")[0].replace("\n", " ") + f" Pixel coverage >= {args.coverage:g}."
             + ("" if failed is None else f" Failures: `{args.click_json}`, {method}."), ""]
    text = "\n".join(lines + table(ious, failed)) + "\n"
    print(text)
    write_report(markdown=(args.out, text))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
