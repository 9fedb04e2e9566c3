"""How a rectangle becomes a click-network prompt (Label Studio's smart rectangle,
``ivos.serve.label_studio``): candidate strategies scored by the IoU of their one-shot mask, the box
being the ground-truth object's bounding box. Chosen on the held-aside everyday photos
(``COCO128``), reported on the others.

    python -m ivos.bench.box_prompt [--dataset COCO128] [--out benchmarks/results/box_prompt.md]

Every strategy clicks once at the box's centre (a positive click); they differ in the view the
network sees (``ImagePredictor.predict(view=)``: the box grown by a margin on each side, padded
where it leaves the image) and whether the mask is cut to the box.
"""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import numpy as np

from ._common import environment_line, write_report

MARGINS = (None, 0.25, 0.5, 0.75, 1.0)
"""View margins tried, as a fraction of the box's side on each side (None: the network's own view)."""


def evaluate(data, predictor) -> dict[str, list[float]]:
    """Strategy name -> IoU per sample."""
    from ivos.mask_metrics import iou
    from ivos.serve.label_studio import box_view

    scores: dict[str, list[float]] = {}
    for sample in data:
        ys, xs = np.nonzero(sample.gt)
        box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
        h, w = sample.gt.shape
        inside = np.zeros((h, w), np.uint8)
        inside[box[1]:box[3], box[0]:box[2]] = 1
        centre = [[(box[0] + box[2]) / 2, (box[1] + box[3]) / 2]]
        predictor.set_image(sample.image)
        for margin in MARGINS:
            view = None if margin is None else box_view(box, margin)
            mask = predictor.predict(centre, [1], view=view).mask
            name = "own view" if margin is None else f"view: box + {margin:g} a side"
            scores.setdefault(name, []).append(iou(mask, sample.gt, sample.ignore))
            scores.setdefault(name + ", cut to the box", []).append(iou(mask * inside, sample.gt, sample.ignore))
    return scores


def main(argv: list[str] | None = None) -> int:
    import ivos
    from ivos.evaluation.datasets import open_dataset

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", nargs="+", default=["COCO128", "GrabCut", "Berkeley"])
    p.add_argument("--model", default="ivos-lite0")
    p.add_argument("--data-root", type=Path, default=None)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    predictor = ivos.ImagePredictor(ivos.load(args.model, threads=1))
    root = ivos.datasets_root(args.data_root)
    lines = ["# Box prompts: one click at the centre, which view", "",
             f"Command: `python -m ivos.bench.box_prompt {shlex.join(sys.argv[1:] if argv is None else argv)}`", "",
             f"Environment: {environment_line()}; {args.model}, 1 thread.", "",
             __doc__.split("\n\n")[0].replace("\n", " "), "",
             "| data set | strategy | mean IoU | median IoU | n |", "|---|---|---:|---:|---:|"]
    for name in args.dataset:
        data = open_dataset(name, root=root)
        print(f"box_prompt: {data.name} ({len(data)})", file=sys.stderr)
        for strategy, v in evaluate(data, predictor).items():
            lines.append(f"| {data.name} | {strategy} | {np.mean(v):.3f} | {np.median(v):.3f} | {len(v)} |")
    text = "\n".join(lines) + "\n"
    print(text)
    write_report(markdown=(args.out, text))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
