"""The runner interface (``ivos.runtime.backends.base``): the host path every predictor uses, fetch,
close / context managers, and the device path's shared logic (``DeviceRunContext``) on a
stand-in device made of host memory. The CUDA backends themselves run in the ``cuda`` tests
at the end (skipped without a GPU; ``scripts/gpu_check.sh`` runs them on one)."""
import importlib.util

import numpy as np
import pytest

import ivos
from ivos.runtime.backends.base import DeviceBuffer
from ivos.runtime.backends.device import DeviceRunContext

HAS_GPU = ivos.build_info()["machine"]["cuda_devices"] > 0
needs_gpu = pytest.mark.skipif(not HAS_GPU, reason="no CUDA device (ivos.build_info()['machine']['cuda_devices'] == 0)")


def _random_inputs(ctx, seed=0):
    rng = np.random.default_rng(seed)
    for buf in ctx.inputs.values():
        buf[...] = rng.normal(0, 1, buf.shape).astype(buf.dtype)


@pytest.mark.parametrize("backend", ["ort", "torch"])
def test_host_path_binds_writable_buffers_and_returns_them(tiny_bundle, backend):
    model = ivos.load(tiny_bundle, backend=backend, device="cpu", precision="fp32", threads=1)
    with model.create_context() as ctx:
        assert ctx.device == "cpu" and ctx.stream == 0
        assert list(ctx.inputs) == [s.name for s in model.bundle.inputs]
        for spec in model.bundle.inputs:
            buf = ctx.inputs[spec.name]
            assert buf.shape == tuple(spec.shape) and buf.dtype == np.float32
            assert buf.flags.c_contiguous and buf.flags.writeable
        _random_inputs(ctx)
        out = ctx.run()
        assert out is ctx.outputs  # the predictors' contract: the bound buffers themselves
        first = out["logits"].copy()
        ctx.inputs["clicks"][...] += 1.0  # written in place: the next run must see it
        assert not np.array_equal(ctx.run()["logits"], first)


def test_backends_agree_through_the_interface(tiny_bundle):
    logits = []
    for backend in ("ort", "torch"):
        with ivos.load(tiny_bundle, backend=backend, device="cpu", precision="fp32", threads=1) as model:
            with model.create_context() as ctx:
                _random_inputs(ctx, seed=3)
                logits.append(ctx.run(fetch=("logits",))["logits"].copy())
    np.testing.assert_allclose(logits[0], logits[1], atol=1e-4)


def test_fetch_returns_only_the_named_outputs():
    model = ivos.load("osvos-cpu", backend="ort", device="cpu", threads=1)
    ctx = model.create_context()
    _random_inputs(ctx)
    everything = {k: v.copy() for k, v in ctx.run().items()}
    assert sorted(everything) == ["high", "logits", "low"]
    got = ctx.run(fetch=("logits",))
    assert list(got) == ["logits"] and got["logits"] is ctx.outputs["logits"]
    np.testing.assert_array_equal(got["logits"], everything["logits"])
    assert ctx.run(fetch=()) == {}
    ctx.close()


@pytest.mark.parametrize("fetch, words", [("logits", "sequence"), (("logits", "prob"), "prob"), (3, "sequence")])
def test_bad_fetch_names_what_was_wrong(tiny_bundle, fetch, words):
    ctx = ivos.load(tiny_bundle, backend="ort", threads=1).create_context()
    with pytest.raises(ivos.InvalidInput, match=words):
        ctx.run(fetch=fetch)


def test_close_is_idempotent_and_a_closed_context_refuses(tiny_bundle):
    model = ivos.load(tiny_bundle, backend="ort", threads=1)
    ctx = model.create_context()
    ctx.close()
    ctx.close()
    assert ctx.closed
    with pytest.raises(ivos.InvalidInput, match="closed"):
        ctx.run()
    with model.create_context() as ctx2:
        pass
    assert ctx2.closed


def test_a_closed_runner_refuses_new_contexts_but_open_ones_still_run(tiny_bundle):
    with ivos.load(tiny_bundle, backend="ort", threads=1) as model:
        ctx = model.create_context()
    assert model.runner.closed
    with pytest.raises(ivos.InvalidInput, match="closed"):
        model.create_context()
    assert ctx.run()["logits"].shape == (1, 1, 64, 64)
    ctx.close()


def test_no_backend_defines_del():
    from ivos.runtime.backends import base, device, ort, tensorrt, torch_backend  # noqa: F401

    for module in (base, device, ort, tensorrt, torch_backend):
        for value in vars(module).values():
            if isinstance(value, type) and value.__module__ == module.__name__:
                assert "__del__" not in vars(value), f"{value.__name__} defines __del__: use close()"


def test_device_calls_on_a_cpu_context_say_what_to_do(tiny_bundle):
    ctx = ivos.load(tiny_bundle, backend="ort", threads=1).create_context()
    with pytest.raises(ivos.InvalidInput, match=r"ctx.inputs\['clicks'\]"):
        ctx.device_input("clicks")
    with pytest.raises(ivos.InvalidInput, match="CPU"):
        ctx.device_output("logits")


# ---- the device path's shared logic, on a stand-in device -------------------------------

class HostDeviceContext(DeviceRunContext):
    """A DeviceRunContext whose 'device memory' is numpy arrays and whose network doubles the
    input 'x' into output 'y' and writes 'x + 1' into 'z'. Records what it was asked to do."""

    def __init__(self):
        self.mem = {n: np.zeros((1, 1, 4, 5), np.float32) for n in ("x", "y", "z")}
        self.log = []
        self.released = 0
        host_in = {"x": np.zeros((1, 1, 4, 5), np.float32)}
        host_out = {n: np.zeros((1, 1, 4, 5), np.float32) for n in ("y", "z")}
        self._init_buffers(host_in, host_out, {n: a.ctypes.data for n, a in self.mem.items()}, stream=77)

    def _upload(self, name):
        self.log.append(("upload", name))
        self.mem[name][...] = self._staged[name]

    def _execute(self):
        self.log.append(("execute",))
        self.mem["y"][...] = 2 * self.mem["x"]
        self.mem["z"][...] = self.mem["x"] + 1

    def _download(self, name):
        self.log.append(("download", name))
        self.outputs[name][...] = self.mem[name]

    def _synchronize(self):
        self.log.append(("sync",))

    def _release(self):
        self.released += 1


def test_device_context_uploads_runs_downloads_fetched_then_syncs_once():
    ctx = HostDeviceContext()
    ctx.inputs["x"][...] = 3.0
    out = ctx.run(fetch=("y",))
    assert ctx.log == [("upload", "x"), ("execute",), ("download", "y"), ("sync",)]
    assert list(out) == ["y"] and np.all(out["y"] == 6.0)
    assert np.all(ctx.outputs["z"] == 0.0)  # not fetched: never copied back
    ctx.log.clear()
    assert ctx.run() is ctx.outputs and np.all(ctx.outputs["z"] == 4.0)
    assert ctx.log == [("upload", "x"), ("execute",), ("download", "y"), ("download", "z"), ("sync",)]


def test_device_input_hands_the_buffer_to_a_device_writer():
    ctx = HostDeviceContext()
    staged = ctx.inputs["x"]
    buf = ctx.device_input("x")
    assert buf == ctx.device_input("x")  # the same buffer every time
    assert (buf.ptr, buf.shape, buf.dtype, buf.stream, buf.nbytes) == (
        ctx.mem["x"].ctypes.data, (1, 1, 4, 5), np.dtype(np.float32), 77, 80)
    assert "x" not in ctx.inputs  # a host write there would be silently ignored: it is gone
    staged[...] = 100.0
    ctx.mem["x"][...] = 5.0  # what a kernel on ctx.stream would have written
    ctx.log.clear()
    assert np.all(ctx.run()["y"] == 10.0)
    assert ("upload", "x") not in ctx.log
    assert ctx.device_output("z").ptr == ctx.mem["z"].ctypes.data
    with pytest.raises(ivos.InvalidInput, match="not an input"):
        ctx.device_input("y")
    with pytest.raises(ivos.InvalidInput, match="not an output"):
        ctx.device_output("x")


def test_device_context_close_releases_once():
    ctx = HostDeviceContext()
    with ctx:
        ctx.run()
    ctx.close()
    assert ctx.released == 1
    with pytest.raises(ivos.InvalidInput, match="closed"):
        ctx.device_input("x")


def test_device_buffer_exposes_the_cuda_array_interface():
    buf = DeviceBuffer(4096, (1, 1, 8, 9), np.dtype(np.float32), stream=0)
    cai = buf.__cuda_array_interface__
    assert cai == {"shape": (1, 1, 8, 9), "typestr": "<f4", "data": (4096, False), "version": 3,
                   "strides": None, "stream": None}  # 0 is not a valid CAI stream: None = no sync
    assert DeviceBuffer(4096, (2,), np.dtype(np.float32), stream=5).__cuda_array_interface__["stream"] == 5


@pytest.mark.parametrize(
    "buffer, words",
    [(DeviceBuffer(4096, (1, 1, 8, 8), np.dtype(np.float32)), r"\(8, 9\) plane"),
     (DeviceBuffer(4096, (2, 1, 8, 9), np.dtype(np.float32)), "plane"),
     (DeviceBuffer(4096, (1, 1, 8, 9), np.dtype(np.float16)), "float32"),
     (DeviceBuffer(0, (1, 1, 8, 9), np.dtype(np.float32)), "null")],
)
def test_render_clicks_cuda_checks_a_device_buffer_before_touching_it(buffer, words):
    with pytest.raises(ivos.InvalidInput, match=words):
        ivos.render_clicks_cuda(buffer, 8, 9, [[1, 1, 1]], sigma=2.0)


# ---- CUDA backends (GPU only) -------------------------------------------------------------

def _cuda_backends():
    out = [pytest.param("torch", marks=pytest.mark.skipif(
        importlib.util.find_spec("torch") is None, reason="needs torch"))]
    from ivos.runtime.backends.ort import ort_cuda_available

    out.append(pytest.param("ort", marks=pytest.mark.skipif(
        not ort_cuda_available(), reason="needs onnxruntime-gpu (the installed onnxruntime has no CUDA provider)")))
    return out


@pytest.mark.cuda
@needs_gpu
@pytest.mark.parametrize("backend", _cuda_backends())
def test_cuda_context_matches_the_cpu_and_takes_clicks_rendered_on_the_device(tiny_bundle, backend):
    clicks = np.array([[20.0, 30.0, 1.0], [50.0, 10.0, 0.0]], np.float32)
    cpu = ivos.load(tiny_bundle, backend="ort", device="cpu", precision="fp32", threads=1).create_context()
    gpu_model = ivos.load(tiny_bundle, backend=backend, device="cuda", precision="fp32")
    assert gpu_model.device == "cuda" and "CPU" not in gpu_model.backend, gpu_model.backend
    gpu = gpu_model.create_context()
    assert gpu.device == "cuda" and gpu.stream != 0
    for ctx in (cpu, gpu):
        _random_inputs(ctx, seed=5)
        ivos.render_clicks(64, 64, clicks, sigma=5.0, out=ctx.inputs["clicks"][0, 0])
    want = cpu.run()["logits"].copy()
    np.testing.assert_allclose(gpu.run()["logits"], want, atol=1e-3)
    # The hot path: the kernel renders into the network's device input on the context's stream.
    buf = gpu.device_input("clicks")
    assert "clicks" not in gpu.inputs
    ivos.render_clicks_cuda(buf, 64, 64, clicks, sigma=5.0)
    np.testing.assert_allclose(gpu.run(fetch=("logits",))["logits"], want, atol=1e-3)
    host = np.empty((64, 64), np.float32)
    ivos._C.cuda_memcpy_to_host(host, gpu.device_output("logits").ptr)
    np.testing.assert_allclose(host, want[0, 0], atol=1e-3)
    gpu.close()
    cpu.close()


@pytest.mark.cuda
@needs_gpu
@pytest.mark.skipif(importlib.util.find_spec("cuda") is None, reason="needs cuda-python (pip install 'ivos[gpu]')")
def test_cudart_context_round_trips_through_device_memory():
    """The cuda-python buffers, copies and stream ORT CUDA and TensorRT contexts use, with a
    device-to-device copy standing in for the network."""
    from ivos.runtime.backends.cudart import CudartRunContext, check_cuda, import_cudart

    class CopyContext(CudartRunContext):
        def __init__(self):
            self._allocate(import_cudart(), {"x": np.zeros((1, 1, 16, 24), np.float32)},
                           {"y": np.zeros((1, 1, 16, 24), np.float32)})

        def _execute(self):
            x, y = self._buffers["x"], self._buffers["y"]
            check_cuda(self._cudart.cudaMemcpyAsync(y.ptr, x.ptr, x.nbytes,
                                                    self._cudart.cudaMemcpyKind.cudaMemcpyDeviceToDevice,
                                                    self._stream_obj))

    with CopyContext() as ctx:
        ctx.inputs["x"][...] = np.arange(16 * 24, dtype=np.float32).reshape(1, 1, 16, 24)
        np.testing.assert_array_equal(ctx.run()["y"], ctx.inputs["x"])
        clicks = [[5.0, 6.0, 1.0]]
        ivos.render_clicks_cuda(ctx.device_input("x"), 16, 24, clicks, sigma=2.0)
        np.testing.assert_allclose(ctx.run()["y"][0, 0], ivos.render_clicks(16, 24, clicks, sigma=2.0, device="numpy"),
                                   atol=1e-5)
