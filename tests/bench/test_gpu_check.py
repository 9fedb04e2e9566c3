"""scripts/gpu_check.sh and its measuring module, on a machine without a GPU: the module's
CPU dry run (the same code as the GPU check, with tiny bundles) so it cannot rot, the loud
failures where there is no GPU, and ivos.export.osvos_torch (the OSVOS bundle the check runs
on torch)."""
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="exporting test bundles needs torch (pip install 'ivos[export]')")
pytest.importorskip("onnxruntime", reason="needs onnxruntime (pip install 'ivos[cpu]')")

import ivos  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
HAS_GPU = ivos.build_info()["machine"]["cuda_devices"] > 0


@pytest.fixture(scope="module")
def bundles(tiny_bundles, tiny_networks, tmp_path_factory):
    """(click bundle, OSVOS bundle with model.pt2, the OSVOS bundle without): the suite's tiny
    bundles (``tests/conftest.py``), the OSVOS one with its torch program added."""
    from ivos.export.osvos_torch import add_torch_program

    out = tmp_path_factory.mktemp("gpu-check") / "osvos-torch"
    add_torch_program(tiny_bundles["osvos"], tiny_networks(0)[1], out)
    return tiny_bundles["click"], out, tiny_bundles["osvos"]


def test_osvos_torch_program_runs_like_the_onnx_network(bundles):
    _, with_torch, _ = bundles
    outs = []
    for backend in ("ort", "torch"):
        model = ivos.load(with_torch, backend=backend, device="cpu", precision="fp32", threads=1)
        with model.create_context() as ctx:
            rng = np.random.default_rng(0)
            for name, buf in ctx.inputs.items():
                buf[...] = rng.normal(0, 0.1, buf.shape)
            outs.append({k: v.copy() for k, v in ctx.run().items()})
    for name in ("logits", "low", "high"):
        np.testing.assert_allclose(outs[1][name], outs[0][name], atol=1e-3)


def test_osvos_torch_refuses_weights_of_another_network(bundles, tiny_networks, tmp_path):
    from ivos.export.osvos_torch import add_torch_program

    with pytest.raises(ValueError, match="not the one of"):
        add_torch_program(bundles[2], tiny_networks(1)[1], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_dry_run_on_the_cpu_writes_the_report(bundles, tmp_path):
    from ivos.bench import gpu_check

    click, osvos, _ = bundles
    assert gpu_check.main(["--device", "cpu", "--click-bundle", str(click), "--osvos-bundle", str(osvos),
                           "--iters", "3", "--frames", "3", "--out", str(tmp_path)]) == 0
    text = (tmp_path / "gpu_check.md").read_text()
    for row in ("C++ CPU op", "host path: render into ctx.inputs", "ImagePredictor.add_click",
                "run(fetch=logits): features stay", "run(): logits, low and high"):
        assert text.count(row) >= 1, row
    for backend in ("torch:cpu", "onnxruntime:CPUExecutionProvider"):
        assert f"frame network 64x96, {backend}" in text
    assert "| CUDA kernel: cuda only | not run |" in text and "device path: cuda only | not run" in text
    timed = [line for line in text.splitlines() if line.endswith("| 3 |")]
    assert len(timed) == 10  # 1 kernel + (host click + add_click + 2 frame rows) x 2 backends + propagation
    assert "propagation 480x854, memory mode, onnxruntime:CPUExecutionProvider" in text  # the shipped v2 recipe


@pytest.mark.skipif(HAS_GPU, reason="checks the failure where there is no GPU")
def test_cuda_mode_refuses_to_run_without_a_gpu(bundles, tmp_path):
    from ivos.bench import gpu_check

    with pytest.raises(SystemExit, match="FAILED: .*(CUDA|cuda)"):
        gpu_check.main(["--device", "cuda", "--click-bundle", str(bundles[0]), "--osvos-bundle", str(bundles[1]),
                        "--iters", "3", "--out", str(tmp_path)])
    assert not (tmp_path / "gpu_check.md").exists()


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="checks the failure where there is no GPU")
def test_script_fails_loudly_before_building_without_a_gpu(tmp_path):
    result = subprocess.run(["bash", str(ROOT / "scripts/gpu_check.sh"), str(tmp_path / "out")],
                            capture_output=True, text=True, timeout=60, env={**os.environ, "OUT": ""})
    assert result.returncode == 1
    assert "gpu_check: FAILED: nvidia-smi not found" in result.stderr
    assert not (tmp_path / "out" / "build.log").exists()


def test_script_never_builds_for_native(tmp_path):
    result = subprocess.run(["bash", str(ROOT / "scripts/gpu_check.sh"), str(tmp_path / "out")], capture_output=True,
                            text=True, timeout=60, env={**os.environ, "IVOS_CUDA_ARCHS": "native"})
    assert result.returncode == 1 and "never 'native'" in result.stderr
