#!/usr/bin/env bash
# Sets up a development environment in .venv on a fresh machine: the CPU build of torch first
# (otherwise pip pulls several GB of CUDA packages for it), then ivos with every CPU extra,
# built in place (the native extension ivos._C is compiled by CMake; CUDA too when nvcc exists).
#
# A finished setup is not redone: .venv/.ivos-setup records a hash of everything the setup
# depends on (this script, pyproject.toml, setup.py, CMakeLists.txt, csrc/, bindings/); when
# it matches and ivos imports, the script only says so. IVOS_SETUP_FORCE=1 redoes it anyway.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
STAMP=.venv/.ivos-setup
inputs_hash() {
  find scripts/setup.sh pyproject.toml setup.py CMakeLists.txt csrc bindings -type f -print0 \
    | sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1
}
if [[ "${IVOS_SETUP_FORCE:-0}" != 1 && -f $STAMP && "$(cat $STAMP)" == "$(inputs_hash)" ]] \
    && .venv/bin/python -c "import ivos._C" 2>/dev/null; then
  echo "setup: .venv is up to date (IVOS_SETUP_FORCE=1 to redo it)"
  exit 0
fi
[[ -x .venv/bin/python ]] || "$PYTHON" -m venv .venv
. .venv/bin/activate
pip install -q --upgrade pip setuptools wheel
pip install -q "torch==2.13.0"
pip install -q -e ".[cpu,export,bench,video,test,crf-ref,train,serve,postgres,ray]"
python -c "import ivos, json; print(json.dumps(ivos.build_info()['compiled']))"
inputs_hash > $STAMP
