"""`import ivos` must stay light: no torch, onnxruntime, tensorrt or cv2 at import time."""
import json
import subprocess
import sys

HEAVY = ("torch", "onnxruntime", "tensorrt", "cv2")


def test_import_ivos_loads_no_heavy_dependency():
    code = (
        "import sys, json, ivos; ivos.build_info();"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_build_info_reports_compiled_and_machine():
    import ivos

    info = ivos.build_info()
    assert isinstance(info["compiled"]["cuda"], bool)
    assert info["machine"]["cpu_threads"] >= 1
    assert info["machine"]["native_threads"] >= 1
    if not info["compiled"]["cuda"]:
        assert info["machine"]["cuda_devices"] == 0
    json.dumps(info)  # serialisable
