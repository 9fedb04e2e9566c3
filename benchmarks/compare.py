"""``ivos-bench compare``: is network B really better than network A? A paired comparison of two
``ivos-bench click`` methods over one or more held-aside sets and their union, with a bootstrap
interval for every difference.

    ivos-bench compare --a old_coco.json old_bsds.json --b new_coco.json new_bsds.json \\
        --labels v6 v7 --markdown benchmarks/results/compare_v6_v7.md

The files of ``--a`` and ``--b`` pair up by position (the same set each: their samples must
have the same names); a file holding both methods (old and new in one run) may be named on both
sides with ``--method-a``/``--method-b``. Without a method name a file must hold exactly one.

The union pools every object of every set (its NoC is the object-weighted mean of the sets').
The interval resamples objects with replacement within each set (a stratified, paired
bootstrap: both methods keep the same resampled objects), so it says how much the difference
could move with another draw of objects like these; it says nothing about training noise (two
seeds of one recipe differ by more). ``P(B<A)`` is the share of resamples in which B needs
fewer clicks. Per object-size bucket (``ivos.evaluation.noc.SIZE_BUCKETS``) the same, pooled
over the sets.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ivos.errors import InvalidInput
from ivos.evaluation.noc import SIZE_BUCKETS, size_bucket

from ._common import write_report

THRESHOLDS = ("noc90", "noc85")
"""The per-sample NoC keys compared (the issue's threshold first)."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--a", nargs="+", type=Path, required=True, help="--json files of ivos-bench click: the reference (A)")
    p.add_argument("--b", nargs="+", type=Path, required=True, help="the same sets, the candidate (B), in the same order")
    p.add_argument("--method-a", help="method name in the --a files (default: their only method)")
    p.add_argument("--method-b", help="method name in the --b files (default: their only method)")
    p.add_argument("--sets", nargs="+", help="a name per set (default: each A file's dataset name)")
    p.add_argument("--labels", nargs=2, default=("A", "B"), metavar=("A", "B"), help="names for the two columns")
    p.add_argument("--resamples", type=int, default=10000, help="bootstrap resamples (default 10000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--markdown", type=Path, help="write the table here")
    p.add_argument("--json", type=Path, help="write the figures here")


@dataclass(frozen=True)
class PairedSet:
    """One set's objects, both methods. noc[key] is an (n, 2) int array (column 0 = A, 1 = B);
    iou1 (n, 2) the IoU after the first click; area (n,) the objects' shares of their images."""
    name: str
    noc: dict[str, np.ndarray]
    iou1: np.ndarray
    area: np.ndarray

    def subset(self, keep: np.ndarray) -> "PairedSet":
        return PairedSet(self.name, {k: v[keep] for k, v in self.noc.items()}, self.iou1[keep], self.area[keep])


def pick_method(run: dict, name: str | None, path: Path) -> dict:
    """The method ``name`` of an ``ivos-bench click`` JSON, or its only one when ``name`` is None."""
    methods = run.get("methods")
    if not isinstance(methods, dict) or not methods:
        raise InvalidInput(f"{path}: not an ivos-bench click --json file (no 'methods')")
    if name is None:
        if len(methods) != 1:
            raise InvalidInput(f"{path} holds {len(methods)} methods ({', '.join(methods)}); name one with --method-a/--method-b")
        return next(iter(methods.values()))
    if name not in methods:
        raise InvalidInput(f"{path}: no method {name!r}; it has {', '.join(methods)}")
    return methods[name]


def samples_by_name(a: dict, b: dict, who: str) -> tuple[dict, dict]:
    """Two methods' ``per_sample`` results as name -> sample dicts, checked to cover the same
    samples (``who`` names the comparison in the error)."""
    sa = {s["name"]: s for s in a.get("per_sample", [])}
    sb = {s["name"]: s for s in b.get("per_sample", [])}
    if not sa:
        raise InvalidInput(f"{who}: the first run has no per-sample results")
    if sa.keys() != sb.keys():
        only = sorted(sa.keys() ^ sb.keys())
        raise InvalidInput(f"{who}: the runs cover different samples ({len(sa)} vs {len(sb)}; "
                           f"{len(only)} in one only, e.g. {only[:3]})")
    return sa, sb


def pair(a: dict, b: dict, name: str) -> PairedSet:
    """The per-sample results of two methods on one set, matched by sample name."""
    sa, sb = samples_by_name(a, b, name)
    names = sorted(sa)
    noc = {k: np.array([[sa[n][k], sb[n][k]] for n in names], np.int64) for k in THRESHOLDS}
    iou1 = np.array([[sa[n]["ious"][0], sb[n]["ious"][0]] for n in names], np.float64)
    area = np.array([sa[n].get("area_fraction", 0.0) for n in names], np.float64)
    return PairedSet(name, noc, iou1, area)


def bootstrap_mean_diff(groups: list[np.ndarray], resamples: int, rng: np.random.Generator) -> np.ndarray:
    """(resamples,) pooled means of per-object differences, each resample drawing every group's
    objects with replacement within that group (group sizes kept)."""
    total = sum(len(g) for g in groups)
    sums = np.zeros(resamples)
    for g in groups:
        idx = rng.integers(0, len(g), size=(resamples, len(g)))
        sums += g[idx].sum(axis=1)
    return sums / total


def compare(sets: list[PairedSet], resamples: int, seed: int) -> dict:
    """Per key (NoC@90, NoC@85, mIoU@1): A, B, B - A, its 95% bootstrap interval, P(B < A) and
    the objects B wins/loses; for each set, the union, and each size bucket of the union."""
    rng = np.random.default_rng(seed)

    def figures(parts: list[PairedSet]) -> dict:
        parts = [p for p in parts if len(p.area)]
        out = {"n": int(sum(len(p.area) for p in parts))}
        columns = {**{k: [p.noc[k] for p in parts] for k in THRESHOLDS}, "miou1": [p.iou1 for p in parts]}
        for key, arrays in columns.items():
            both = np.concatenate(arrays)
            diffs = [x[:, 1] - x[:, 0] for x in arrays]
            boot = bootstrap_mean_diff(diffs, resamples, rng)
            d = np.concatenate(diffs)
            out[key] = {"a": float(both[:, 0].mean()), "b": float(both[:, 1].mean()), "diff": float(d.mean()),
                        "ci95": [float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))],
                        "p_b_lower": float((boot < 0).mean()),
                        "b_lower": int((d < 0).sum()), "b_higher": int((d > 0).sum())}
        return out

    report = {"sets": {p.name: figures([p]) for p in sets}}
    if len(sets) > 1:
        report["union"] = figures(sets)
    report["by_size"] = {}
    for label, _, _ in SIZE_BUCKETS:
        parts = [p.subset(np.array([size_bucket(a) == label for a in p.area], bool)) for p in sets]
        if any(len(p.area) for p in parts):
            report["by_size"][label] = figures(parts)
    return report


def markdown(report: dict, labels: tuple[str, str], resamples: int) -> str:
    a, b = labels
    head = (f"| objects | n | NoC@90 {a} | NoC@90 {b} | {b} - {a} [95% CI] | P({b}<{a}) | objects {b} better / worse "
            f"| NoC@85 {b} - {a} [95% CI] | mIoU@1 {a} / {b} |")
    lines = [head, "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    rows = [(name, f) for name, f in report["sets"].items()]
    if "union" in report:
        rows.append(("**union**", report["union"]))
    rows += [(f"union, {label}" if "union" in report else label, f) for label, f in report["by_size"].items()]
    for name, f in rows:
        n90, n85, m1 = f["noc90"], f["noc85"], f["miou1"]
        lines.append(f"| {name} | {f['n']} | {n90['a']:.2f} | {n90['b']:.2f} | {n90['diff']:+.2f} "
                     f"[{n90['ci95'][0]:+.2f}, {n90['ci95'][1]:+.2f}] | {n90['p_b_lower']:.2f} | "
                     f"{n90['b_lower']} / {n90['b_higher']} | {n85['diff']:+.2f} [{n85['ci95'][0]:+.2f}, "
                     f"{n85['ci95'][1]:+.2f}] | {m1['a']:.3f} / {m1['b']:.3f} |")
    lines += ["", f"Paired over the same objects; interval and P from {resamples} bootstrap resamples of the "
              "objects within each set (object-sampling noise only, not training noise)."]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    if len(args.a) != len(args.b):
        raise InvalidInput(f"--a names {len(args.a)} files and --b {len(args.b)}; give one per set on each side")
    if args.sets and len(args.sets) != len(args.a):
        raise InvalidInput(f"--sets names {len(args.sets)} sets for {len(args.a)} pairs of files")
    if args.resamples < 100:
        raise InvalidInput(f"--resamples must be >= 100, got {args.resamples}")
    sets = []
    for i, (path_a, path_b) in enumerate(zip(args.a, args.b)):
        run_a, run_b = (json.loads(p.read_text()) for p in (path_a, path_b))
        name = args.sets[i] if args.sets else run_a.get("dataset", path_a.stem)
        if any(s.name == name for s in sets):
            name = f"{name} ({path_a.stem})"
        sets.append(pair(pick_method(run_a, args.method_a, path_a), pick_method(run_b, args.method_b, path_b), name))
    report = compare(sets, args.resamples, args.seed)
    text = markdown(report, tuple(args.labels), args.resamples)
    print(text)
    files = "\n".join(f"- {args.labels[0]}: `{pa}`, {args.labels[1]}: `{pb}`" for pa, pb in zip(args.a, args.b))
    methods = f" (--method-a {args.method_a or 'the only one'}, --method-b {args.method_b or 'the only one'})"
    write_report(markdown=(args.markdown, f"# {args.labels[1]} vs {args.labels[0]}: paired click comparison\n\n"
                                          f"Files{methods}:\n{files}\n\n{text}\n"),
                 json_data=(args.json, {"labels": list(args.labels), "resamples": args.resamples, "seed": args.seed,
                                        "files": [[str(pa), str(pb)] for pa, pb in zip(args.a, args.b)], **report}))
    return 0
