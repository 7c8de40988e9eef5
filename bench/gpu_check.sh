#!/usr/bin/env bash
# The GPU proof of the decode loop (issue 10) in one run of under 8 minutes, printing one table.
#
#   bench/gpu_check.sh prepare   # here, once: wheels the GPU machine lacks and the spoken sentences -> .whl/
#   bench/gpu_check.sh           # there (device run with carry [".whl"]); results under $OUT (else gpu-check/)
#   GPU_CHECK_DEVICE=cpu GPU_CHECK_QUICK=1 GPU_CHECK_TIMEOUT_SCALE=10 bench/gpu_check.sh   # a dry run on a CPU
#
# There: the decode-step time by batch size (generate, our loop, our loop with CUDA graphs); ours with
# its default decoder (generate) and the plain transformers reference at 30 s and 5 min; ours with our
# decode loop at 30 min, and with CUDA graphs at 30 s, 5 min and 30 min; and the CUDA tests (`pytest -m cuda`: loop = generate on the GPU, out-of-memory
# halving, the fall-back to the CPU). See ../shared/gpu-notes.md for what is installed there.
set -uo pipefail
cd "$(dirname "$0")/.."
WHEELS=.whl
VOICED=$WHEELS/voiced.npz

if [ "${1:-}" = prepare ]; then
  set -e
  mkdir -p "$WHEELS"
  grep -qx '/.whl/' .git/info/exclude 2>/dev/null || grep -qx '/.whl/' .gitignore
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$WHEELS" transformers==5.23.0 av==18.1.0 soundfile==0.14.0 cffi==2.1.1 pycparser==3.12 \
    silero-vad==6.2.3
  # silero-vad's wheel is 11 MB of model variants; only its code and data/silero_vad.jit (2.3 MB) travel.
  rm -rf "$WHEELS/extra" && mkdir -p "$WHEELS/extra"
  unzip -q -d "$WHEELS/extra" "$WHEELS"/silero_vad-*.whl 'silero_vad/*.py' 'silero_vad/data/silero_vad.jit'
  rm "$WHEELS"/silero_vad-*.whl
  .venv/bin/python -c "from pathlib import Path; from testbed.voiced import voiced_sentences; voiced_sentences(Path('$VOICED'))"
  du -sh "$WHEELS"
  exit 0
fi

OUT=${OUT:-gpu-check}
mkdir -p "$OUT"
DEVICE=${GPU_CHECK_DEVICE:-cuda}
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_VERBOSITY=error
PY=python3
[ -x .venv/bin/python ] && PY=.venv/bin/python
if compgen -G "$WHEELS/*.whl" >/dev/null && ! $PY -c "import transformers.models.qwen3_asr" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$WHEELS"/*.whl \
    && export PYTHONPATH=/tmp/site:$PWD/$WHEELS/extra || exit 1
fi
if [ -n "${GPU_CHECK_QUICK:-}" ]; then  # the dry run: tiny sizes
  BATCHES=1,2 INPUTS=30 LONG=60 STEPS=2,4
else
  BATCHES=1,8,32,64 INPUTS=30,300 LONG=1800 STEPS=4,20
fi
[ "$DEVICE" = cuda ] && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
started=$SECONDS
SCALE=${GPU_CHECK_TIMEOUT_SCALE:-1}  # the stages' limits below fit 8 minutes on an H100/H200
stage() { echo "== $1 ($((SECONDS - started)) s)" >&2; }
BENCH=(-m bench.run --device "$DEVICE" --rounds 1 --voiced "$VOICED")

stage "decode step by batch size"
timeout $((120 * SCALE)) $PY -m bench.step_time --device "$DEVICE" --batch-sizes $BATCHES --steps $STEPS --graphs \
  --voiced "$VOICED" --json "$OUT/steps.json" >"$OUT/steps.md"
stage "ours (default: generate) vs the reference at $INPUTS s"
timeout $((150 * SCALE)) $PY "${BENCH[@]}" --inputs $INPUTS --json "$OUT/reference.json" >"$OUT/reference.md"
stage "ours with the loop at $LONG s"
timeout $((75 * SCALE)) $PY "${BENCH[@]}" --impl ours-loop --inputs $LONG --json "$OUT/long.json" >"$OUT/long.md"
if [ "$DEVICE" = cuda ]; then
  stage "ours at $INPUTS,$LONG s with CUDA graphs"
  timeout $((90 * SCALE)) $PY "${BENCH[@]}" --impl ours-loop --cuda-graphs --inputs $INPUTS,$LONG --json "$OUT/graphs.json" >"$OUT/graphs.md"
  export ASR_TEST_VOICED=$PWD/$VOICED  # no espeak-ng there: the tests read the sentences voiced here
  stage "pytest -m cuda"
  timeout $((75 * SCALE)) $PY -m pytest -m cuda -q -p no:cacheprovider tests/test_decode.py tests/test_engine.py >"$OUT/pytest.txt" 2>&1
  tail -3 "$OUT/pytest.txt"
fi
stage "done"
$PY -m bench.gpu_table "$OUT" | tee "$OUT/table.md"
