#!/usr/bin/env bash
# Installs a pinned Label Studio into its own venv, .venv-label-studio, for the end-to-end test
# of `ivos serve` as a Label Studio ML backend. Label Studio is kept out of .venv on purpose:
# it pins Django, pydantic, numpy and friends to versions of its own.
#
# Idempotent: .venv-label-studio/.ivos-label-studio records the pinned version; when it matches
# and label_studio imports there, the script only says so. LABEL_STUDIO_SETUP_FORCE=1 redoes it.
# A fresh install takes about 4 minutes (2 cores); it needs PyPI and, on a bare Debian without
# the venv module, Debian's python3-venv package (installed with apt-get when run as root).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
LABEL_STUDIO_VERSION=1.23.2
GUNICORN_VERSION=27.0.1  # LabelStudioProcess(server="gunicorn"): Label Studio served as in production
VENV=.venv-label-studio
STAMP=$VENV/.ivos-label-studio
# Not `label-studio --version`: that migrates a database under ~/.local/share and then starts the server.
VERSION_PY="import importlib.metadata as m, label_studio, gunicorn; print('label-studio', m.version('label-studio'), 'gunicorn', m.version('gunicorn'))"

if [[ "${LABEL_STUDIO_SETUP_FORCE:-0}" != 1 && -f $STAMP && "$(cat $STAMP)" == "$LABEL_STUDIO_VERSION+$GUNICORN_VERSION" ]] \
    && [[ -x $VENV/bin/label-studio ]] && "$VENV/bin/python" -c "$VERSION_PY" >/dev/null 2>&1; then
  echo "setup_label_studio: $VENV has label-studio $LABEL_STUDIO_VERSION + gunicorn $GUNICORN_VERSION (LABEL_STUDIO_SETUP_FORCE=1 to redo it)"
  exit 0
fi

if [[ ! -x $VENV/bin/python ]]; then
  if ! "$PYTHON" -m venv "$VENV" 2>/dev/null; then
    # Debian's python3 ships without ensurepip until python3-venv is installed.
    rm -rf "$VENV"
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
      "$PYTHON" -m venv "$VENV"
    else
      echo "setup_label_studio: '$PYTHON -m venv' failed; install python3-venv" >&2
      exit 1
    fi
  fi
fi
rm -f "$STAMP"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
"$VENV/bin/python" -m pip install -q --disable-pip-version-check "label-studio==$LABEL_STUDIO_VERSION" \
  "gunicorn==$GUNICORN_VERSION"
"$VENV/bin/python" -c "$VERSION_PY"
echo "$LABEL_STUDIO_VERSION+$GUNICORN_VERSION" > "$STAMP"
