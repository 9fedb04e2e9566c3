"""Helpers every benchmark shares: one definition each of the percentile summary and of the
environment record (where a benchmark ran)."""
from __future__ import annotations

from typing import Iterable

import numpy as np


def percentiles(values: Iterable[float], *, scale: float = 1.0, suffix: str = "") -> dict[str, float]:
    """p50 / p90 / p99 / mean of ``values`` times ``scale`` (e.g. 1e3: seconds -> ms), keys
    ending in ``suffix`` (e.g. "_ms"), and their count "n"."""
    v = np.asarray(list(values), np.float64) * scale
    out = {f"p{q}{suffix}": float(np.percentile(v, q)) for q in (50, 90, 99)}
    out[f"mean{suffix}"] = float(v.mean())
    out["n"] = int(v.size)
    return out


def cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo; else what ``platform`` says)."""
    import platform

    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


VERSIONED = ("numpy", "onnxruntime", "onnxruntime-gpu", "torch", "pillow", "tensorrt", "pydensecrf2")
"""Distributions whose versions every benchmark records (absent ones as None)."""


def environment(**extra) -> dict:
    """Where a benchmark ran, the same record in every report: the git commit, Python, OS, CPU model and count,
    whether its int8 kernels saturate on 8-bit weights (an x86 CPU without VNNI),
    ivos's version, native threads and CUDA devices, the versions of ``VERSIONED``,
    ``IVOS_NUM_THREADS``; plus ``extra`` (e.g. backends, engine threads)."""
    import os
    import platform
    from importlib.metadata import PackageNotFoundError, version

    import ivos
    from ivos.runtime.cpu_features import int8_kernels_saturate

    versions = {}
    for name in VERSIONED:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    machine = ivos.build_info()["machine"]
    return {"git_commit": git_commit(), "python": platform.python_version(), "platform": platform.platform(), "cpu": cpu_model(),
            "cpu_threads": os.cpu_count(), "ivos": ivos.__version__, "native_threads": machine["native_threads"],
            "cuda_devices": machine["cuda_device_names"], "IVOS_NUM_THREADS": os.environ.get("IVOS_NUM_THREADS"),
            "int8_kernels_saturate": int8_kernels_saturate(), "versions": versions, **extra}


def git_commit() -> str | None:
    """The checkout's short commit (None outside a git checkout)."""
    import subprocess

    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def environment_line(env: dict | None = None) -> str:
    """``environment()`` as one line for a markdown report."""
    env = environment() if env is None else env
    present = ", ".join(f"{k} {v}" for k, v in env["versions"].items() if v)
    return (f"Python {env['python']}, {env['platform']}, {env['cpu']} ({env['cpu_threads']} CPUs); "
            f"ivos {env['ivos']}; {present}")


def write_report(*, markdown: tuple[object, str] | None = None, json_data: tuple[object, object] | None = None) -> None:
    """Writes a benchmark's outputs where asked: ``markdown`` (path or None, text) and
    ``json_data`` (path or None, JSON-ready data, written indented with a final newline); folders
    are made as needed. A None path writes nothing."""
    import json
    from pathlib import Path

    for target, content in ((markdown, None), (json_data, "json")):
        if target is None or target[0] is None:
            continue
        path = Path(target[0])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(target[1], indent=1) + "\n" if content == "json" else str(target[1]))
