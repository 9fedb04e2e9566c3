"""TensorRT path for fine-tuned OSVOS heads: build the plan ONCE as refittable, then refit
only the head's weights after each fine-tune (no rebuild: a refit takes milliseconds, a
build minutes).

ONNX Runtime takes the head's weights as graph inputs (``model.onnx``). TensorRT refits
weights that were *constants* at build time, so ``make_refittable_onnx`` turns the
``head.*`` graph inputs back into initializers (holding the parent head) with the same
names; the TensorRT ONNX parser names refittable weights after the ONNX initializers, so
the refitter addresses them by exactly the names the fine-tuning step produces.

Follows the TensorRT 10 Python API (``BuilderFlag.REFIT``, ``Refitter.set_named_weights``,
``Refitter.refit_cuda_engine``). TensorRT is imported lazily; without it every entry point
raises ``BackendUnavailable`` naming the package. Written against the documentation and
not run here (no TensorRT on these machines; tests skip).
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ivos.runtime.backends.tensorrt import current_compute_capability, import_tensorrt
from ivos.runtime.bundle import read_bundle
from ivos.video.osvos.head import check_head_params

from .tensorrt import default_dynamic_dims, profile_shapes

log = logging.getLogger("ivos.export")


def make_refittable_onnx(bundle_dir: str | Path, out_path: str | Path) -> Path:
    """Writes a copy of the bundle's ``model.onnx`` whose ``head.*`` inputs are initializers
    holding the parent head (inputs left: image, prior)."""
    import onnx
    from onnx import numpy_helper

    bundle = read_bundle(bundle_dir)
    model = onnx.load(str(bundle.artifact("onnx")))
    with np.load(bundle.artifact("head_parent")) as z:
        parent = {k: z[k] for k in z.files}
    keep = [i for i in model.graph.input if i.name not in parent]
    del model.graph.input[:]
    model.graph.input.extend(keep)
    for name, value in parent.items():
        model.graph.initializer.append(numpy_helper.from_array(value.astype(np.float32), name))
    onnx.checker.check_model(model)
    onnx.save(model, str(out_path))
    return Path(out_path)


def build_refittable_plan(bundle_dir: str | Path, plan_path: str | Path, *, fp16: bool = False,
                          workspace_gib: float = 2.0) -> Path:
    """Builds a refittable TensorRT plan of the OSVOS graph for this GPU. BackendUnavailable
    without TensorRT."""
    trt = import_tensorrt()
    plan_path = Path(plan_path)
    onnx_path = make_refittable_onnx(bundle_dir, plan_path.with_suffix(".refit.onnx"))
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT could not parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_flag(trt.BuilderFlag.REFIT)
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))
    bundle = read_bundle(bundle_dir)
    dims = default_dynamic_dims(bundle)
    if dims:  # a dynamic-size graph (crops): one profile from a small crop to the full frame
        profile = builder.create_optimization_profile()
        for spec in bundle.inputs:
            if spec.name in ("image", "prior"):
                profile.set_shape(spec.name, *profile_shapes(spec.shape, dims))
        config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError("TensorRT failed to build the OSVOS plan (see the log above)")
    plan_path.write_bytes(bytes(serialized))
    log.info("built refittable plan %s for %s (TensorRT %s)", plan_path, current_compute_capability(),
             trt.__version__)
    return plan_path


class HeadRefitter:
    """Refits the head of a deserialized refittable OSVOS engine in place.

    Args:
        engine: ``trt.ICudaEngine`` from a plan of ``build_refittable_plan``.
        low_channels, high_channels: the backbone's feature widths (bundle card ``osvos``).
    """

    def __init__(self, engine, low_channels: int, high_channels: int):
        trt = import_tensorrt()
        self._trt = trt
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._refitter = trt.Refitter(engine, self._logger)
        self._channels = (low_channels, high_channels)

    def refit(self, params: dict[str, np.ndarray]) -> None:
        """Sets every head weight by name and refits; the engine's execution contexts see the
        new weights on their next run."""
        trt = self._trt
        params = check_head_params(params, *self._channels)
        keep_alive = []  # TensorRT reads the host arrays during refit_cuda_engine
        for name, value in params.items():
            arr = np.ascontiguousarray(value, np.float32)
            keep_alive.append(arr)
            if not self._refitter.set_named_weights(name, trt.Weights(arr)):
                raise RuntimeError(f"TensorRT refitter does not know weight {name!r}: was the plan built by "
                                   "build_refittable_plan?")
        missing = self._refitter.get_missing_weights()
        if missing:
            raise RuntimeError(f"TensorRT refit still misses weights: {list(missing)[:5]}")
        if not self._refitter.refit_cuda_engine():
            raise RuntimeError("TensorRT refit_cuda_engine failed")
