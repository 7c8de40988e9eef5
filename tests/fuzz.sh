#!/usr/bin/env bash
# A long fuzz run of the decoder (testbed/fuzz_decoder.py); the test command runs a short, fixed one
# (tests/test_fuzz.py). The corpus grows in tests/fuzz-corpus/ (ignored by git) from run to run; an input that
# breaks the decoder is written to tests/fuzz-crashes/: turn it into a regression case (REGRESSIONS in the
# harness) once it is fixed. Extra arguments go to libFuzzer, e.g. `tests/fuzz.sh -max_total_time=3600`.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p tests/fuzz-corpus tests/fuzz-crashes
exec .venv/bin/python -m testbed.fuzz_decoder -max_total_time=1800 -timeout=60 -rss_limit_mb=4096 \
  -artifact_prefix=tests/fuzz-crashes/ "$@" tests/fuzz-corpus
