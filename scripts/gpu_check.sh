#!/usr/bin/env bash
# The prepared GPU check: one command, at most 8 minutes (its stages' timeouts add up to 480 s)
# on one NVIDIA H200 (or any NVIDIA GPU of the architectures below) with Python 3.12, a CUDA
# build of torch and nvcc, and no network.
#
#   bash scripts/gpu_check.sh [OUT_DIR]        (default: $OUT, else /tmp/ivos-gpu-check-out)
#
# 1. preflight: nvidia-smi lists a GPU, nvcc exists, torch sees CUDA; else it stops at once.
# 2. build ivos._C with CUDA (IVOS_CUDA=ON, explicit IVOS_CUDA_ARCHS, never "native"; cudart
#    linked statically: checked with ldd) in a throwaway venv layered over python3's packages.
#    Wheels the machine lacks travel in wheels/ (installed with --no-index when present).
# 3. the `cuda`-marked tests (click kernel against the numpy reference, runner device paths);
#    a skip is allowed only for what the machine cannot have (TensorRT, onnxruntime-gpu).
# 4. latency on the GPU (python -m ivos.bench.gpu_check --device cuda): click kernel, click and
#    per-frame network through the runner (torch CUDA; ONNX Runtime CUDA when importable),
#    host path against device path, and with ONNX Runtime CUDA the default (v2) propagation per
#    frame (osvos-lite0's trunk and head graphs on the GPU). Writes OUT_DIR/gpu_check.md (+ .json, test logs) and
#    copies the report to benchmarks/results/gpu_check.md.
# Every failure is loud (FAILED: ... on stderr, exit status 1); nothing falls back to the CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT_DIR=${1:-${OUT:-/tmp/ivos-gpu-check-out}}
mkdir -p "$OUT_DIR" && OUT_DIR=$(cd "$OUT_DIR" && pwd)
PYTHON=${PYTHON:-python3}
VENV=${IVOS_GPU_VENV:-/tmp/ivos-gpu-check-venv}
export IVOS_CUDA=ON IVOS_CUDA_ARCHS=${IVOS_CUDA_ARCHS:-80;86;89;90} PYTHONUNBUFFERED=1
START=$SECONDS

die() { echo "gpu_check: FAILED: $*" >&2; exit 1; }
stage() { echo "== [$((SECONDS - START)) s] $*"; }
[[ $IVOS_CUDA_ARCHS == *native* ]] && die "IVOS_CUDA_ARCHS must list architectures, never 'native'"

stage "preflight"
command -v nvidia-smi >/dev/null || die "nvidia-smi not found: this check needs an NVIDIA GPU and its driver"
nvidia-smi -L | tee "$OUT_DIR/nvidia-smi.txt" | grep -q GPU || die "nvidia-smi lists no GPU"
command -v nvcc >/dev/null || die "nvcc not found: building ivos._C with CUDA needs the CUDA toolkit"
"$PYTHON" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' \
  || die "$PYTHON's torch sees no CUDA device (it needs a CUDA build of torch)"

stage "venv over $PYTHON's packages"
rm -rf "$VENV"
"$PYTHON" -m venv --without-pip "$VENV"
# python3 may itself be a venv: a .pth puts its site-packages (torch, numpy, pip, ...) behind ours.
"$PYTHON" -c 'import site; print("\n".join(site.getsitepackages()))' \
  > "$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/ivos-parent.pth"
PY="$VENV/bin/python"
if compgen -G "wheels/*.whl" >/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps wheels/*.whl || die "installing wheels/*.whl"
fi
for module in numpy PIL pybind11 setuptools pytest torch onnx onnxruntime; do
  "$PY" -c "import $module" 2>/dev/null || die "python module $module is missing: put its wheel in wheels/"
done

stage "build ivos._C (IVOS_CUDA=ON, archs $IVOS_CUDA_ARCHS)"
timeout 180 "$PY" -m pip install -q --no-index --no-deps --no-build-isolation -e . > "$OUT_DIR/build.log" 2>&1 \
  || { tail -40 "$OUT_DIR/build.log" >&2; die "building ivos._C (log: $OUT_DIR/build.log)"; }
SO=engine/_C.$("$PY" -c 'import sysconfig; print(sysconfig.get_config_var("SOABI"))').so
if ldd "$SO" | grep -q 'libcudart\.so'; then die "$SO links libcudart dynamically (must be static)"; fi
"$PY" - <<'PY' || die "ivos._C does not run CUDA here"
import json, ivos
info = ivos.build_info()
print(json.dumps(info["compiled"]), info["machine"]["cuda_device_names"])
assert info["compiled"]["cuda"], "built without CUDA"
assert info["machine"]["cuda_devices"] > 0, "ivos._C sees no CUDA device"
PY

stage "cuda-marked tests"
set +e
timeout 120 "$PY" -m pytest -q -m cuda -rs -p no:cacheprovider tests/ops/test_render_clicks.py \
  tests/engine/test_runner.py tests/engine/test_tensorrt.py --junitxml="$OUT_DIR/cuda_tests.xml" \
  2>&1 | tee "$OUT_DIR/cuda_tests.txt"
status=${PIPESTATUS[0]}
set -e
[[ $status == 0 ]] || die "cuda-marked tests failed (exit $status): $OUT_DIR/cuda_tests.txt"
"$PY" - "$OUT_DIR/cuda_tests.xml" <<'PY' || die "cuda-marked tests were skipped (see above)"
import sys, xml.etree.ElementTree as ET
ALLOWED = ("TensorRT", "onnxruntime-gpu")  # what this machine cannot have
cases = list(ET.parse(sys.argv[1]).iter("testcase"))
bad = [(c.get("name"), s.get("message")) for c in cases for s in c.findall("skipped")
       if not any(word in (s.get("message") or "") for word in ALLOWED)]
ran = [c for c in cases if not c.findall("skipped")]
print(f"{len(ran)} cuda tests ran, {len(cases) - len(ran)} skipped")
for name, why in bad:
    print(f"not allowed to skip: {name}: {why}")
sys.exit(1 if bad or not ran else 0)
PY

stage "OSVOS bundle with a torch program"
rm -rf /tmp/ivos-osvos-lite0-torch
timeout 90 "$PY" -m ivos.export.osvos_torch --weights export/weights/osvos-lite0.pt --bundle osvos-lite0 \
  --out /tmp/ivos-osvos-lite0-torch || die "exporting osvos-lite0 for torch"

stage "latency"
timeout 90 "$PY" -m ivos.bench.gpu_check --device cuda --osvos-bundle /tmp/ivos-osvos-lite0-torch \
  --iters 200 --out "$OUT_DIR" || die "measuring (see above)"
cp "$OUT_DIR/gpu_check.md" "$ROOT/benchmarks/results/gpu_check.md"
stage "done: $OUT_DIR/gpu_check.md"
