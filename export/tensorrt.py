"""TensorRT plans for a bundle: build (FP16, optimization profile, timing cache) and refit
(new weights into a refittable engine, e.g. fine-tuned OSVOS head weights, without a
rebuild). Follows the TensorRT 10 Python API; ``tensorrt`` is imported lazily, so this
module imports where TensorRT is absent (everywhere but a GPU machine with NVIDIA's wheel).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ivos.runtime.backends.tensorrt import current_compute_capability, import_tensorrt
from ivos.runtime.bundle import read_bundle

log = logging.getLogger("ivos.export")

TIMING_CACHE = "tensorrt.timing-cache"
"""Timing cache kept in the bundle folder: rebuilding for the same GPU reuses tactic timings."""


def profile_shapes(spec_shape: tuple, dims: Mapping[str, tuple[int, int, int]]) -> tuple[tuple, tuple, tuple]:
    """(min, opt, max) shapes of an input: static dims as they are, named dims from ``dims``."""
    shapes = ([], [], [])
    for d in spec_shape:
        for i in range(3):
            shapes[i].append(d if isinstance(d, int) else dims[d][i])
    return tuple(tuple(s) for s in shapes)  # type: ignore[return-value]


def default_dynamic_dims(bundle) -> dict[str, tuple[int, int, int]]:
    """(min, opt, max) of the named dynamic dims a bundle's inputs have unless the caller says
    otherwise: an OSVOS graph's height and width run from two size multiples (a small crop) up
    to the working size, tuned for the working size (the full frame). Empty for static graphs."""
    if bundle.task != "osvos" or not bundle.has_dynamic_dims:
        return {}
    m = int(bundle.card.get("osvos", {}).get("size_multiple", 32))
    h, w = bundle.working_size
    return {"height": (2 * m, h, h), "width": (2 * m, w, w)}


def build_plan(bundle_dir: str | Path, *, fp16: bool = True, refittable: bool = False, workspace_mib: int = 1024,
               dynamic_dims: Mapping[str, tuple[int, int, int]] | None = None) -> dict[str, Any]:
    """Builds ``model.<sm>.plan`` from the bundle's ONNX and records it in ``model.json``.

    Args:
        fp16: allow FP16 kernels (the parity of the plan should then be checked with the
            bundle's tolerance on real inputs; ``ivos-bench click --backend tensorrt``).
        refittable: build with BuilderFlag.REFIT so ``refit_plan`` can swap weights.
        dynamic_dims: (min, opt, max) per named dynamic dimension, for the optimization profile.
    Returns the artifact entry added to ``model.json``.
    """
    trt = import_tensorrt()
    bundle = read_bundle(bundle_dir)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(bundle.artifact("onnx").read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT could not parse {bundle.artifact('onnx')}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mib << 20)
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    if refittable:
        config.set_flag(trt.BuilderFlag.REFIT)
    cache_path = bundle.path / TIMING_CACHE
    cache = config.create_timing_cache(cache_path.read_bytes() if cache_path.is_file() else b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    profile = builder.create_optimization_profile()
    for spec in bundle.inputs:
        profile.set_shape(spec.name, *profile_shapes(spec.shape, {**default_dynamic_dims(bundle),
                                                                    **(dynamic_dims or {})}))
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError("TensorRT failed to build the plan (see the TensorRT log above)")
    cc = current_compute_capability()
    plan_name = f"model.{cc}.plan"
    (bundle.path / plan_name).write_bytes(bytes(serialized))
    cache_path.write_bytes(bytes(config.get_timing_cache().serialize()))
    entry = {"file": plan_name, "compute_capability": cc, "tensorrt_version": trt.__version__,
             "precision": "fp16" if fp16 else "fp32", "refittable": refittable}
    card = json.loads((bundle.path / "model.json").read_text())
    plans = [p for p in card["artifacts"].get("tensorrt", []) if p.get("file") != plan_name]
    card["artifacts"]["tensorrt"] = plans + [entry]
    (bundle.path / "model.json").write_text(json.dumps(card, indent=2) + "\n")
    log.info("built %s", bundle.path / plan_name)
    return entry


def refit_engine(engine, weights: Mapping[str, np.ndarray]) -> None:
    """Swaps named weights of a deserialized refittable engine in place (no rebuild).

    ``weights`` maps ONNX initializer names to float32 arrays of the original shapes. Raises
    ValueError naming any weight TensorRT does not know or still misses after the update.
    """
    trt = import_tensorrt()
    refitter = trt.Refitter(engine, trt.Logger(trt.Logger.WARNING))
    known = set(refitter.get_all_weights())
    unknown = sorted(set(weights) - known)
    if unknown:
        raise ValueError(f"weights not refittable in this engine: {unknown[:5]}")
    keep_alive = []  # TensorRT reads the host memory during refit_cuda_engine
    for name, value in weights.items():
        arr = np.ascontiguousarray(value, dtype=np.float32)
        keep_alive.append(arr)
        refitter.set_named_weights(name, trt.Weights(arr))
    missing = refitter.get_missing_weights()
    if missing:
        raise ValueError(f"refit is missing weights: {list(missing)[:5]}")
    if not refitter.refit_cuda_engine():
        raise RuntimeError("TensorRT refit_cuda_engine failed")
