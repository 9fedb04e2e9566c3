"""What the next click starts from, side by side in one run (RITM simulated user, max 20
clicks, NoC@85/90): ``add_click``, whose working state between clicks is the previous
result's low-resolution logits (the runtime since Engine v2), against the stateless
``predict(coords, labels, mask_input=previous full-size mask)`` (the runtime before: the
final mask, after clamp and CRF, sent back down to the working size).

    python -m ivos.bench.click_working_state --datasets GrabCut Berkeley --model ivos-lite0 --threads 1
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np


class FullSizeMaskSegmenter:
    """``ImagePredictor.predict`` with every click so far and the previous full-size mask."""

    def __init__(self, predictor, name: str):
        self.predictor, self.name = predictor, name

    def set_image(self, image: np.ndarray) -> None:
        self.predictor.set_image(image)

    def predict(self, clicks, prev_mask):
        coords = np.array([[c.x, c.y] for c in clicks], np.float32).reshape(-1, 2)
        labels = np.array([int(c.positive) for c in clicks], np.int64)
        prev = None if prev_mask is None else prev_mask.astype(np.uint8)
        return self.predictor.predict(coords, labels, mask_input=prev).mask


def main(argv: list[str] | None = None) -> int:
    import ivos
    from ivos.evaluation.datasets import open_dataset
    from ivos.evaluation.noc import evaluate
    from ivos.evaluation.segmenter import PredictorSegmenter

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", nargs="+", default=["GrabCut", "Berkeley"])
    p.add_argument("--data-root", type=Path, default=None)
    p.add_argument("--model", default="ivos-lite0")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    model = ivos.load(args.model, threads=args.threads)
    print(f"model {model.bundle.name} ({model.backend}); settings: the bundle's (CRF, flip)")
    print("| dataset | method | NoC@85 | NoC@90 | >20 clicks @90 | ms per click |\n|---|---|---|---|---|---|")
    for name in args.datasets:
        segs = [PredictorSegmenter(ivos.ImagePredictor(model), name="add_click (low-res logits carried)"),
                FullSizeMaskSegmenter(ivos.ImagePredictor(model), "predict (full-size mask fed back)")]
        t0 = time.perf_counter()
        results = evaluate(segs, open_dataset(name, root=args.data_root or ivos.datasets_root()), max_clicks=20)
        for method, r in results.items():
            print(f"| {name} ({r.n_images}) | {method} | {r.noc85:.2f} | {r.noc90:.2f} | {r.n_fail90} | "
                  f"{r.spc * 1e3:.0f} |", flush=True)
        print(f"<!-- {name}: {time.perf_counter() - t0:.0f} s -->", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
