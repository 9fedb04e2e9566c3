"""int8-vs-float agreement of a bundle's networks under different x86-64 instruction sets.

ONNX Runtime picks its int8 kernels by CPU feature (AVX-512 VNNI, AVX2, SSE4.1), and their
rounding differs, so the int8 network's masks agree with the float network's more on one CPU
than on another. This measures that spread, on the inputs of real click sessions (DAVIS
*train* frames, the same ones ``tests/engine/test_int8.py`` uses), natively and under
``qemu-x86_64 -cpu MODEL`` (Debian's ``qemu-user``), which emulates an older CPU so that ORT
takes its AVX2 or SSE4.1 kernels. Emulation is slow (minutes) but exact: the emulated
Haswell gives the figure reported from a real AVX2-only AMD EPYC.

Usage::

    python -m ivos.bench.int8_isa --emulate Haswell-v4 Nehalem-v2 [--bundle ivos-cpu]
"""
from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from ivos.runtime.model import resolve_bundle


def davis_train_samples(n: int, data_root: Path | None = None) -> list:
    """n DAVIS *train* frames spread over the split, with objects of at least 1% of the frame;
    [] when the data set is absent."""
    from ivos.data_root import datasets_root
    from ivos.evaluation.datasets import open_dataset

    root = datasets_root(data_root)
    if root is None or not (root / "DAVIS2016" / "ImageSets" / "train.txt").is_file():
        return []
    davis = open_dataset("DAVIS2016", root=root, split="train")
    samples = [davis[int(i)] for i in np.linspace(3, len(davis) - 3, 2 * n)]
    return [s for s in samples if s.gt.mean() > 0.01][:n]


def mask_agreement(float_path: Path, int8_path: Path, inputs_npz: Path) -> dict:
    """Mean/min IoU of (logits > 0) of the two networks over the recorded inputs (1 thread)."""
    import onnxruntime as ort

    z = np.load(inputs_npz)
    n = 1 + max(int(k.split(":")[0]) for k in z.files)
    feeds = [{k.split(":", 1)[1]: z[k] for k in z.files if k.startswith(f"{i}:")} for i in range(n)]
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    ref, q = (ort.InferenceSession(str(p), options, providers=["CPUExecutionProvider"]) for p in (float_path, int8_path))
    ious = []
    for feed in feeds:
        a, b = ref.run(None, feed)[0] > 0, q.run(None, feed)[0] > 0
        ious.append(float((a & b).sum() / max(1, (a | b).sum())))
    return {"n_inputs": n, "mask_iou_mean": float(np.mean(ious)), "mask_iou_min": float(np.min(ious))}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bundle", default="ivos-cpu")
    p.add_argument("--emulate", nargs="*", default=[], help="qemu-x86_64 CPU models (e.g. Haswell-v4 Nehalem-v2)")
    p.add_argument("--data-root", type=Path, default=None)
    p.add_argument("--agreement-only", nargs=3, metavar=("FLOAT", "INT8", "NPZ"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.agreement_only:  # the part that runs under emulation
        print(json.dumps(mask_agreement(*map(Path, args.agreement_only))))
        return

    from ivos.evaluation.recording import record_calibration_inputs

    bundle = resolve_bundle(args.bundle)
    samples = davis_train_samples(3, args.data_root)
    if not samples:
        sys.exit("DAVIS2016 train split not found under the data root (../shared/datasets)")
    inputs = record_calibration_inputs(bundle, samples, clicks_per_sample=3, threads=1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        npz = Path(tmp) / "inputs.npz"
        np.savez(npz, **{f"{i}:{k}": v for i, d in enumerate(inputs) for k, v in d.items()})
        paths = [str(bundle / "model.onnx"), str(bundle / "model.int8.onnx"), str(npz)]
        rows.append({"cpu": f"native ({platform.processor() or platform.machine()})",
                     **mask_agreement(*map(Path, paths))})
        for cpu in args.emulate:
            if shutil.which("qemu-x86_64") is None:
                sys.exit("--emulate needs qemu-x86_64 (Debian: apt-get install qemu-user)")
            out = subprocess.run(["qemu-x86_64", "-cpu", cpu, sys.executable, "-m", "ivos.bench.int8_isa",
                                  "--agreement-only", *paths], capture_output=True, text=True, check=True)
            rows.append({"cpu": f"qemu -cpu {cpu}", **json.loads(out.stdout.strip().splitlines()[-1])})
    print("| CPU | inputs | mask IoU mean | mask IoU min |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['cpu']} | {r['n_inputs']} | {r['mask_iou_mean']:.4f} | {r['mask_iou_min']:.4f} |")


if __name__ == "__main__":
    main()
