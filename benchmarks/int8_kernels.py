"""The int8 click network's arithmetic on this CPU, side by side in one process.

For each bundle: the float graph, the int8 graph on ONNX Runtime's fast kernels (the default),
and the int8 graph on its exact kernels (``session.x64quantprecision``, what
``IVOS_ORT_EXACT_INT8=1`` sets). On x86 CPUs without VNNI the fast uint8 x int8 kernels add
pairs of products in 16 bits and saturate on 8-bit weights; the exact ones widen to 16-bit
operands first (slower); on CPUs with VNNI both are exact. Reported per configuration: the
network's time per run (p50, 1 thread, configurations interleaved run by run) and the mask
agreement with the float network (IoU of ``logits > 0``) on the network inputs of real click
sessions (RITM simulated user, DAVIS *train* frames, ``ivos.evaluation.recording``).

Usage::

    python -m ivos.bench.int8_kernels --bundles engine/models/ivos-lite0 /tmp/cand/lite0-8bit --frames 6 --json out.json
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from ivos.mask_metrics import iou

from ._common import environment, percentiles
from .int8_isa import davis_train_samples


def _session(path: Path, exact: bool):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.x64quantprecision", "1" if exact else "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def compare(bundles: list[Path], inputs: list[dict[str, np.ndarray]], rounds: int) -> list[dict]:
    """Rows (bundle, configuration, network ms percentiles, mask IoU with float mean/min):
    every configuration runs every input once per round, configurations interleaved."""
    configs = []
    for bundle in bundles:
        configs.append((bundle, "fp32", _session(bundle / "model.onnx", False)))
        configs.append((bundle, "int8 fast kernels", _session(bundle / "model.int8.onnx", False)))
        configs.append((bundle, "int8 exact kernels", _session(bundle / "model.int8.onnx", True)))
    times = {i: [] for i in range(len(configs))}
    masks = {i: [] for i in range(len(configs))}
    for r in range(rounds):
        for feed in inputs:
            for i, (_, _, session) in enumerate(configs):
                start = time.perf_counter()
                logits = session.run(None, feed)[0]
                times[i].append(time.perf_counter() - start)
                if r == 0:
                    masks[i].append(logits > 0)
    rows = []
    for i, (bundle, name, _) in enumerate(configs):
        reference = masks[3 * (i // 3)]  # the float graph of the same bundle
        ious = [iou(a, b) for a, b in zip(reference, masks[i])]
        rows.append({"bundle": str(bundle), "config": name, "network_ms": percentiles(times[i], scale=1e3),
                     "mask_iou_vs_float_mean": float(np.mean(ious)), "mask_iou_vs_float_min": float(np.min(ious))})
    return rows


def main(argv: list[str] | None = None) -> None:
    from ivos.evaluation.recording import record_calibration_inputs
    from ivos.runtime.cpu_features import int8_kernels_saturate
    from ivos.runtime.model import resolve_bundle

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bundles", nargs="+", default=["ivos-lite0"], help="click bundles with an int8 graph")
    p.add_argument("--frames", type=int, default=6, help="DAVIS train frames of simulated click sessions")
    p.add_argument("--clicks", type=int, default=4, help="simulated clicks per frame")
    p.add_argument("--rounds", type=int, default=3, help="timed passes over the inputs")
    p.add_argument("--data-root", type=Path, default=None)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    bundles = [resolve_bundle(b) for b in args.bundles]
    samples = davis_train_samples(args.frames, args.data_root)
    if not samples:
        raise SystemExit("DAVIS2016 train split not found under the data root (../shared/datasets)")
    inputs = record_calibration_inputs(bundles[0], samples, clicks_per_sample=args.clicks, threads=1)
    rows = compare(bundles, inputs, args.rounds)
    saturate = int8_kernels_saturate()
    print(f"{len(inputs)} network inputs; this CPU's fast int8 kernels {'can' if saturate else 'cannot'} saturate")
    print("| bundle | configuration | network p50 ms | mask IoU vs float (mean / min) |\n|---|---|---:|---|")
    for r in rows:
        print(f"| {r['bundle']} | {r['config']} | {r['network_ms']['p50']:.1f} | "
              f"{r['mask_iou_vs_float_mean']:.4f} / {r['mask_iou_vs_float_min']:.4f} |")
    if args.json:
        command = " ".join(sys.argv[1:] if argv is None else argv)
        args.json.write_text(json.dumps({"command": f"python -m ivos.bench.int8_kernels {command}",
                                         "environment": environment(int8_kernels_saturate=saturate),
                                         "n_inputs": len(inputs), "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
