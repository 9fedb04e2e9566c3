"""The click path's CUDA hot path (docs/design-guide.md section 3) on a stand-in device: clicks are
rendered straight into the network's device input buffer, flip re-renders them mirrored,
and the result equals the host path's. The stand-in's "device memory" is host arrays and its
network a real ONNX Runtime CPU context, so this runs without a GPU; ``scripts/gpu_check.sh``
runs the real thing."""
import numpy as np
import pytest

import ivos
import ivos.image.click_pipeline as click_pipeline
from ivos.ops.clicks import render_clicks
from ivos.runtime.backends.device import DeviceRunContext
from ivos.runtime.model import Model


class StandInDeviceContext(DeviceRunContext):
    """Device memory = numpy arrays; running = the inner CPU context on them."""

    def __init__(self, inner):
        self._inner = inner
        self.mem = {n: np.zeros_like(a) for n, a in {**inner.inputs, **inner.outputs}.items()}
        self._init_buffers({n: np.zeros_like(a) for n, a in inner.inputs.items()},
                           {n: np.zeros_like(a) for n, a in inner.outputs.items()},
                           {n: a.ctypes.data for n, a in self.mem.items()}, stream=1)

    def _upload(self, name):
        self.mem[name][...] = self._staged[name]

    def _execute(self):
        for name, buf in self._inner.inputs.items():
            buf[...] = self.mem[name]
        for name, out in self._inner.run().items():
            self.mem[name][...] = out

    def _download(self, name):
        self.outputs[name][...] = self.mem[name]

    def _synchronize(self):
        pass

    def _release(self):
        pass


class StandInDeviceRunner:
    """Wraps a CPU runner: contexts are ``StandInDeviceContext``s."""

    def __init__(self, inner):
        self._inner = inner
        self.name, self.device, self.precision = "stand-in:cuda", "cuda", inner.precision
        self.input_specs, self.output_specs = inner.input_specs, inner.output_specs
        self.contexts = []

    def create_context(self, dims=None):
        ctx = StandInDeviceContext(self._inner.create_context(dims))
        self.contexts.append(ctx)
        return ctx


@pytest.fixture
def device_kernel(monkeypatch):
    """``render_clicks_cuda`` replaced by the CPU renderer writing into the stand-in's memory."""
    calls = []

    def fake_cuda(buffer, height, width, clicks, *, sigma, strokes=None, stream=None):
        calls.append(np.array(clicks, np.float32))
        owner = next(ctx for ctx in runner_registry if buffer.ptr == ctx.mem["clicks"].ctypes.data)
        owner.mem["clicks"][0, 0] = render_clicks(height, width, clicks, sigma=sigma, strokes=strokes or [])

    runner_registry = []
    monkeypatch.setattr(click_pipeline, "render_clicks_cuda", fake_cuda)
    return calls, runner_registry


def _image(h=120, w=200):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    img[30:90, 60:140] = (200, 40, 40)
    return img


@pytest.mark.parametrize("flip", [False, True])
def test_device_clicks_give_the_host_path_result(tiny_bundle, device_kernel, flip):
    calls, registry = device_kernel
    host_model = ivos.load(tiny_bundle, backend="ort", threads=1)
    runner = StandInDeviceRunner(host_model.runner)
    device_model = Model(host_model.bundle, runner)
    host, device = ivos.ImagePredictor(host_model, flip=flip), ivos.ImagePredictor(device_model, flip=flip)
    image = _image()
    for predictor in (host, device):
        predictor.set_image(image)
    registry.extend(runner.contexts)
    assert "clicks" not in runner.contexts[0].inputs  # handed to the device writer
    for x, y, positive in [(100, 60, True), (20, 10, False), (130, 80, True)]:
        want, got = host.add_click(x, y, positive), device.add_click(x, y, positive)
        np.testing.assert_allclose(got.probabilities, want.probabilities, atol=1e-6)
        assert np.array_equal(got.mask, want.mask)
    # one render per run, plus the mirrored render and the render back with flip
    assert len(calls) == 3 * (3 if flip else 1)
    if flip:
        size = host_model.working_size[0]
        np.testing.assert_allclose(calls[1][:, 0], size - 1 - calls[0][:, 0])
