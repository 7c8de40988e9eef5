#!/usr/bin/env bash
# The project's test command (README, "Run the tests"); CI calls it from .ci/run.
# Sets up everything a fresh Debian machine needs, then lints and runs the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v espeak-ng >/dev/null || need_apt+=(espeak-ng)
command -v chromium >/dev/null || need_apt+=(chromium)
ldconfig -p 2>/dev/null | grep -q libportaudio.so.2 || need_apt+=(libportaudio2)  # sounddevice: python -m asr live
if ((${#need_apt[@]})); then
  if [ "$(id -u)" -ne 0 ]; then
    echo "Please install: ${need_apt[*]} (e.g. sudo apt-get install ${need_apt[*]})" >&2
    exit 1
  fi
  echo "Installing Debian packages: ${need_apt[*]}"
  apt-get install -y -q "${need_apt[@]}" >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q "${need_apt[@]}" >/dev/null; }
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "Creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
# torch first and pinned: any looser torch requirement would pull gigabytes of CUDA wheels.
.venv/bin/python -m pip install -q --disable-pip-version-check torch==2.13.0
.venv/bin/python -m pip install -q --disable-pip-version-check -r requirements-dev.txt
.venv/bin/python -m pip install -q --disable-pip-version-check -r requirements-cluster.txt  # Ray, for the batch tests
# The project itself, editable: the `asr` command in .venv/bin works from any folder (as the launchers set it up).
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps -e .

.venv/bin/ruff check asr tests testbed bench launchers app.py live_page.py page_restore.py page_speakers.py page_table.py
.venv/bin/ruff format --check asr tests testbed bench launchers app.py live_page.py page_restore.py page_speakers.py page_table.py
.venv/bin/lint-imports --no-logo  # the module map in pyproject.toml (docs/architecture.md)
.venv/bin/mypy  # the type checker; what it checks is in pyproject.toml ([tool.mypy])

set +e
.venv/bin/python -m pytest "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests for this selection" >&2
  exit 0
fi
exit "$status"
