"""``ivos-bench parity``: do two ``ivos-bench click`` runs of the same method agree sample by
sample? For the exported-vs-reference check (``--backend ort`` vs ``--backend torch``) and
int8 vs float: mean NoC@85/90 and failures of each, how many samples have the same NoC, the
largest per-sample NoC difference and the largest per-click IoU difference.

    ivos-bench parity ORT.json TORCH.json --method ivos-cpu --labels "ORT fp32" "torch eager"
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ivos.errors import InvalidInput

from .compare import pick_method, samples_by_name


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs=2, type=Path, help="two --json files of ivos-bench click")
    p.add_argument("--method", nargs="+", required=True,
                   help="method name in each file (one name for both, or one per file)")
    p.add_argument("--labels", nargs=2, help="row labels (default: each file's backend)")
    p.add_argument("--markdown", type=Path, help="also write the table here")


def compare(a: dict, b: dict) -> dict:
    """Per-sample agreement of two methods' results (same samples, same max_clicks)."""
    sa, sb = samples_by_name(a, b, "parity")
    out = {"n_samples": len(sa)}
    for t in ("noc85", "noc90"):
        diffs = [abs(sa[n][t] - sb[n][t]) for n in sa]
        out[f"same_{t}"] = sum(d == 0 for d in diffs)
        out[f"max_abs_{t}_diff"] = max(diffs)
    out["max_abs_iou_diff"] = max(abs(x - y) for n in sa for x, y in zip(sa[n]["ious"], sb[n]["ious"]))
    return out


def markdown(rows: list[tuple[str, dict]], agreement: dict, dataset: str) -> str:
    lines = [f"| {dataset} | NoC@85 | NoC@90 | #fail@90 |", "|---|---:|---:|---:|"]
    lines += [f"| {label} | {m['noc85']:.2f} | {m['noc90']:.2f} | {m['n_fail90']} |" for label, m in rows]
    n = agreement["n_samples"]
    lines += ["", f"Samples with the same NoC@85: {agreement['same_noc85']}/{n}, same NoC@90: "
              f"{agreement['same_noc90']}/{n}; largest per-sample NoC difference "
              f"{agreement['max_abs_noc85_diff']} (@85) / {agreement['max_abs_noc90_diff']} (@90); "
              f"largest per-click IoU difference {agreement['max_abs_iou_diff']:.4f}."]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    names = args.method * 2 if len(args.method) == 1 else args.method
    if len(names) != 2:
        raise InvalidInput(f"--method takes one name or two, got {len(args.method)}")
    runs = [json.loads(p.read_text()) for p in args.runs]
    methods = [pick_method(r, n, p) for r, n, p in zip(runs, names, args.runs)]
    labels = args.labels or [r.get("environment", {}).get("model_backend", str(p)) for r, p in zip(runs, args.runs)]
    agreement = compare(*methods)
    text = markdown(list(zip(labels, methods)), agreement, runs[0].get("dataset", "dataset"))
    print(text)
    if args.markdown:
        commands = "\n".join(f"- `{r.get('command', '?')}`" for r in runs)
        args.markdown.write_text(f"# NoC parity: {labels[0]} vs {labels[1]}\n\nRuns:\n{commands}\n\n"
                                 f"Compared with: `ivos-bench parity {' '.join(map(str, args.runs))} "
                                 f"--method {' '.join(args.method)}`\n\n{text}\n")
    return 0
