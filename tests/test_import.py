"""`import ivos` must stay light: no torch, onnxruntime, tensorrt, cv2, PyAV or scipy at import
time, and none of the packages built on the runtime (ivos.export, ivos.bench) nor the evaluation
protocol (ivos.evaluation, used only by benchmarks, calibration and training)."""
import json
import subprocess
import sys

HEAVY = ("torch", "onnxruntime", "tensorrt", "cv2", "av", "scipy")
NOT_AT_IMPORT = ("ivos.export", "ivos.bench", "ivos.evaluation")


def _loaded_after(code: str, names: tuple[str, ...]) -> list[str]:
    """The ``names`` present in ``sys.modules`` after running ``code`` in a fresh interpreter."""
    probe = f"{code}; import sys, json; print(json.dumps([m for m in {names!r} if m in sys.modules]))"
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_ivos_loads_no_heavy_dependency():
    assert _loaded_after("import ivos; ivos.build_info()", HEAVY + NOT_AT_IMPORT) == []


def test_heavy_check_sees_a_heavy_import():
    """The probe itself works: a module that does load one is reported."""
    assert _loaded_after("import ivos, scipy.ndimage", HEAVY) == ["scipy"]


def test_evaluation_protocol_imports_light():
    """The shared evaluation modules load numpy only; scipy comes with the first simulated click."""
    code = "import ivos.evaluation.noc, ivos.evaluation.datasets, ivos.evaluation.recording, ivos.data_root"
    assert _loaded_after(code, HEAVY + ("ivos.export", "ivos.bench")) == []


def test_build_info_reports_compiled_and_machine():
    import ivos

    info = ivos.build_info()
    assert isinstance(info["compiled"]["cuda"], bool)
    assert info["machine"]["cpu_threads"] >= 1
    assert info["machine"]["native_threads"] >= 1
    if not info["compiled"]["cuda"]:
        assert info["machine"]["cuda_devices"] == 0
    json.dumps(info)  # serialisable
