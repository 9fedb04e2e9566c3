#!/usr/bin/env bash
# Sets up a development environment in .venv on a fresh machine: the CPU build of torch first
# (otherwise pip pulls several GB of CUDA packages for it), then ivos with every CPU extra,
# built in place (the native extension ivos._C is compiled by CMake; CUDA too when nvcc exists).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[[ -x .venv/bin/python ]] || "$PYTHON" -m venv .venv
. .venv/bin/activate
pip install -q --upgrade pip setuptools wheel
pip install -q "torch==2.13.0"
pip install -q -e ".[cpu,export,bench,video,test,crf-ref]"
python -c "import ivos, json; print(json.dumps(ivos.build_info()['compiled']))"
