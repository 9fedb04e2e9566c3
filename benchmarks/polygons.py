"""Why ``ivos.formats.annotations`` traces polygons itself instead of calling OpenCV: polygons of
a mask, rasterised back by pycocotools (what every COCO consumer does), ours vs
``cv2.findContours``. OpenCV's contours run through the boundary pixels' centres, so the
polygon misses half a pixel along every edge; ours run along the pixel edges.

    python -m ivos.bench.polygons [--out benchmarks/results/polygons.md]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

SIZE = 64


def shapes() -> dict[str, np.ndarray]:
    """Test masks (SIZE x SIZE uint8): thin, small and large objects."""
    yy, xx = np.mgrid[:SIZE, :SIZE]
    disk = lambda r: (yy - 32) ** 2 + (xx - 32) ** 2 <= r * r  # noqa: E731
    return {"bar 2 px wide": (yy >= 10) & (yy < 50) & (xx >= 30) & (xx < 32),
            "disk r=5": disk(5), "square 10x10": (yy >= 20) & (yy < 30) & (xx >= 20) & (xx < 30),
            "disk r=20": disk(20), "ring r=12..20": disk(20) & ~disk(12)}


def compare() -> list[tuple[str, int, float, float]]:
    """(shape, pixels, IoU of ours, IoU of OpenCV's) after a pycocotools round trip."""
    import cv2
    import pycocotools.mask as mask_api

    from ivos.formats.annotations import coco_polygons, mask_contours
    from ivos.mask_metrics import iou

    def fill(polygons):
        return mask_api.decode(mask_api.merge(mask_api.frPyObjects(polygons, SIZE, SIZE)))

    rows = []
    for name, mask in shapes().items():
        mask = mask.astype(np.uint8)
        ours = fill(coco_polygons(mask_contours(mask)))
        contours, _ = cv2.findContours(mask, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_NONE)
        # OpenCV's holes are separate polygons: even-odd over all of them, as COCO viewers draw them
        theirs = np.zeros_like(mask)
        for c in contours:
            if len(c) >= 3:
                theirs ^= fill([c.reshape(-1).astype(float).tolist()])
        rows.append((name, int(mask.sum()), iou(ours, mask), iou(theirs, mask)))
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, help="write the markdown table here")
    args = p.parse_args(argv)
    lines = ["| mask | pixels | IoU, ours | IoU, cv2.findContours |", "|---|---:|---:|---:|"]
    lines += [f"| {n} | {px} | {a:.3f} | {b:.3f} |" for n, px, a, b in compare()]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text("# Polygons of a mask, rasterised back by pycocotools: ours vs OpenCV\n\n"
                            "Command: `python -m ivos.bench.polygons --out benchmarks/results/polygons.md`\n\n"
                            + __doc__.split("\n\n")[0].replace("\n", " ") + "\n\n" + text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
