"""Speed of our pipeline vs the plain documented transformers usage, on the full-size Qwen3-ASR-0.6B.

    .venv/bin/python -m bench.run --quick                 # 30 s (2 rounds) and 5 min (1 round): ~7 min on 2 cores
    .venv/bin/python -m bench.run                         # 30 s, 5 min and 30 min, 2 rounds each (much longer)
    .venv/bin/python -m bench.run --device cuda --json out.json
    .venv/bin/python -m bench.run --inputs 30 --impl ours --min-chunk-s 24   # ours with the 24 s chunks of before

From the repository root (`-m`), so that `asr`, `bench` and `testbed` import without any path set up. The
pieces: `inputs` (the synthetic speech), `checkpoints` (the random full-size models), `measurement` (what a
worker measures), `implementations` (ours and the reference), `report` (the tables); this module runs them.

The model is the full-size Qwen3-ASR-0.6B architecture with random, seeded weights, written once as
a real checkpoint folder (bf16 safetensors like the hub checkpoint, the test tokenizer, processor and
chat template; `audio_token_id` and the other ids match the tokenizer, vocab_size 151936) under
`bench/.cache/`, and reused; both implementations load it from disk, so load time is real.

Speed does not depend on weight values once the amount of generated text is fixed, so EOS is disabled
(`generation_config.eos_token_id = None`) and every implementation generates about 4 tokens per
second of speech:

- ours: `asr.QwenEngine.load(folder)` + `asr.transcribe(samples, ...)` fully consumed, with
  `DecodeOptions(tokens_per_s=4.0, min_new_tokens_budget=1)`. Ours budgets per second of speech that
  VAD found in a chunk (its padding included), and a batch runs to its longest budget for every row,
  so it generates somewhat more tokens than the reference; both counts are reported (rows x steps,
  measured, and in brackets the tokens the requests asked for).
- reference: `AutoProcessor` + `Qwen3ASRForConditionalGeneration.from_pretrained(folder, device_map=...)`,
  then for each consecutive 30 s window (the feature extractor's window) `apply_transcription_request`
  -> `generate(max_new_tokens = min_new_tokens = round(4 x speech seconds in the window))` ->
  `processor.decode(..., return_format="parsed")`, with the speech seconds taken from the known
  ground-truth spans of the synthetic input.

Inputs: espeak-ng sentences joined by random 0.3-2 s silences (seeded), built in memory, so the
30 s input begins like the 5 min one, which begins like the 30 min one.

Each (implementation, input, round) runs in a fresh subprocess (`--worker`), alternating ours,
reference, ours, reference per input, so peak RSS and model load time are per run and machine drift
hits both. Measured per run: model load (ours: engine + Silero VAD; reference: processor + model),
wall time from the start of transcription to the last text (load excluded), real-time factor, time
to first text (ours: until `transcribe()` returns with the first chunk's text, VAD included;
reference: until the first window is decoded) and where it went (before the model, audio encoder, prefill,
decode steps, the rest), the rows of each generate call and the decode steps that run one after another
(the calls' longest budgets added up: a short file cut into one batch of shorter chunks needs fewer),
generated tokens (rows x steps, counted with forward hooks) and tokens per second, where the forward
time goes (audio encoder, LM prefill, one-token decode steps; the rest is VAD, features, tokenizing and
generate's own overhead), resident memory when transcription starts and its peak while transcribing
(VmHWM, reset after load, so building the input and loading the model do not count) and the stage it was
reached in (encoder, prefill, decode, the aligner's, or outside the model), and on CUDA peak GPU memory.
The table shows, per input and implementation, the round with the lowest wall time; speedup = reference
wall / our wall at the same audio (our throughput / the reference's); every round is in `--json`.

The weights are random, so the generated ids almost all lie outside the small test tokenizer and
decode to "": the texts are empty, nothing loops, and our pipeline retries nothing (`retries` would
count it). The timing hooks (a clock read per forward pass, a CUDA sync on CUDA) sit on both models.

Threads: torch's default, one intra-op thread per physical core, as the app runs (`--threads N` to
change it), the same for both; Silero VAD runs on one thread inside `asr.vad` either way. On a busy
machine, OpenMP threads that spin-wait for a descheduled peer make a 2-thread decode step jump from
~0.11 s to over 1 s at random: the output notes a load average above the core count, and
`--threads 1` gives steadier (slower) ratios there.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from asr.audio import SAMPLE_RATE
from bench.checkpoints import aligner_folder, checkpoint_folder, write_aligner, write_checkpoint
from bench.implementations import (
    DECODER_IMPLS,
    GENERATE_IMPL,
    IMPLS,
    LOOP_IMPL,
    SPEAKERS_IMPL,
    SPEAKERS_IMPLS,
    WORDS_IMPL,
    WORDS_IMPLS,
    WORDS_LANGUAGE,
    run_ours,
    run_reference,
)
from bench.inputs import SyntheticSpeech, build_speech
from bench.measurement import RunResult
from bench.report import (
    InputRow,
    decoder_ratios,
    feature_cost,
    first_text_table,
    format_duration,
    runs_table,
    summarize,
    table,
)
from testbed.voiced import voiced_sentences

BENCH_DIR = Path(__file__).resolve().parent


ROOT = BENCH_DIR.parent


TOKENS_PER_S = 4.0


FULL_INPUTS_S = (30.0, 300.0, 1800.0)


FULL_ROUNDS = 2


QUICK_ROUNDS = {30.0: 2, 300.0: 1}


def worker(args: argparse.Namespace) -> None:
    """One measurement in this (fresh) process; prints one JSON line."""
    if args.worker == "build":
        write_checkpoint(args.checkpoint)
        return
    if args.worker == "build-aligner":
        write_aligner(aligner_folder(args.cache_dir))
        return
    speech = build_speech(args.audio_s, voiced_path=args.voiced)
    if args.from_file:
        speech = _as_wav_file(speech, args)
    import torch
    import transformers

    transformers.utils.logging.disable_progress_bar()
    if args.threads:
        torch.set_num_threads(args.threads)
    run = run_reference if args.worker == "reference" else run_ours
    result = run(speech, args)
    print(json.dumps(dataclasses.asdict(result)), flush=True)


def _as_wav_file(speech: SyntheticSpeech, args: argparse.Namespace) -> SyntheticSpeech:
    """Write the input as a 16-bit WAV, which ours then reads by path as the CLI does, and keep only its length:
    the bench's own copy of the samples (115 MB for 30 minutes) no longer counts in the peak."""
    import atexit
    import shutil
    import tempfile

    import soundfile

    folder = tempfile.mkdtemp(prefix="bench-input-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    args.audio_file = os.path.join(folder, "input.wav")
    soundfile.write(args.audio_file, speech.samples, SAMPLE_RATE, subtype="PCM_16")
    # A zero-stride view: the samples' length for the report's figures, no memory.
    return dataclasses.replace(speech, samples=np.broadcast_to(np.float32(0), speech.samples.shape))


def _spawn(args: argparse.Namespace, worker_kind: str, extra: list[str]) -> str:
    command = [sys.executable, "-m", "bench.run", "--worker", worker_kind]
    command += ["--checkpoint", str(args.checkpoint), "--device", args.device, *extra]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.stderr.write(done.stdout[-4000:] + done.stderr[-4000:])
        raise SystemExit(f"worker {worker_kind} failed with exit code {done.returncode}")
    return done.stdout


def measure(args: argparse.Namespace, impl: str, audio_s: float, round_: int) -> RunResult:
    extra = ["--audio-s", str(audio_s), "--round", str(round_), "--tokens-per-s", str(args.tokens_per_s)]
    if args.threads:
        extra += ["--threads", str(args.threads)]
    if args.batch_size:
        extra += ["--batch-size", str(args.batch_size)]
    if args.min_chunk_s:
        extra += ["--min-chunk-s", str(args.min_chunk_s)]
    if args.cuda_graphs:
        extra += ["--cuda-graphs"]
    if args.voiced:
        extra += ["--voiced", str(args.voiced)]
    if args.from_file:
        extra += ["--from-file"]
    if args.word_timestamps:
        extra += ["--word-timestamps", "--cache-dir", str(args.cache_dir)]
    lines = [line for line in _spawn(args, impl, extra).splitlines() if line.startswith("{")]
    fields = json.loads(lines[-1])
    return RunResult(**{**fields, "load_avg": tuple(fields["load_avg"])})


def plan(args: argparse.Namespace) -> list[tuple[float, int]]:
    """(input seconds, rounds) to run."""
    if args.inputs:
        inputs = {float(s): args.rounds or FULL_ROUNDS for s in args.inputs.split(",")}
    elif args.quick:
        inputs = {s: args.rounds or r for s, r in QUICK_ROUNDS.items()}
    else:
        inputs = {s: args.rounds or FULL_ROUNDS for s in FULL_INPUTS_S}
    cap = args.max_audio or math.inf
    return [(min(seconds, cap), rounds) for seconds, rounds in inputs.items()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="30 s (2 rounds) and 5 min (1 round)")
    parser.add_argument("--inputs", help="comma-separated input lengths in seconds (default 30,300,1800)")
    parser.add_argument("--rounds", type=int, help=f"rounds per input (default {FULL_ROUNDS}; --quick: 2 and 1)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's, one per core)")
    parser.add_argument("--batch-size", type=int, help="ours: chunks per generate call (default: the engine's)")
    parser.add_argument(
        "--min-chunk-s",
        type=float,
        help="ours: TranscribeOptions.min_chunk_s, how short the last batch's chunks may be cut (24: never shorter)",
    )
    parser.add_argument(
        "--impl",
        choices=(*IMPLS, LOOP_IMPL, GENERATE_IMPL, "both", "decoders"),
        default="both",
        help=f"one side only, or 'decoders': {LOOP_IMPL} (our decode loop) vs {GENERATE_IMPL} (transformers' generate)",
    )
    parser.add_argument("--cuda-graphs", action="store_true", help=f"{LOOP_IMPL} on CUDA: replay its step as graphs")
    parser.add_argument(
        "--word-timestamps",
        action="store_true",
        help=f"ours without and with word timestamps ({WORDS_IMPL}), language forced to {WORDS_LANGUAGE}",
    )
    parser.add_argument(
        "--speakers", action="store_true", help=f"ours without and with speaker labels ({SPEAKERS_IMPL}, auto count)"
    )
    parser.add_argument("--voiced", type=Path, help="spoken sentences cache (.npz): read if there, else made here")
    parser.add_argument(
        "--from-file", action="store_true", help="ours: read the input from a WAV file by path, as the CLI does"
    )
    parser.add_argument("--tokens-per-s", type=float, default=TOKENS_PER_S, help="debugging: fewer tokens")
    parser.add_argument("--max-audio", type=float, help="debugging: cap every input at this many seconds")
    parser.add_argument("--json", type=Path, help="write the rows (every round included) to this file")
    parser.add_argument("--cache-dir", type=Path, default=BENCH_DIR / ".cache")
    parser.add_argument(
        "--worker",
        choices=("build", "build-aligner", *IMPLS, LOOP_IMPL, GENERATE_IMPL, WORDS_IMPL, SPEAKERS_IMPL),
        help=argparse.SUPPRESS,
    )
    parser.add_argument("--checkpoint", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--audio-s", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--round", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.from_file and not args.worker and args.impl != "ours":
        parser.error("--from-file is for --impl ours (the reference takes the samples in memory)")
    if args.worker:
        worker(args)
        return 0

    began = time.perf_counter()
    args.checkpoint = checkpoint_folder(args.cache_dir)
    if not args.checkpoint.is_dir():
        print(f"Writing the full-size random checkpoint to {args.checkpoint} (once) ...", file=sys.stderr, flush=True)
        _spawn(args, "build", [])
    if args.voiced:
        voiced_sentences(args.voiced)  # made once here, before the workers read it
    impls = {"both": IMPLS, "decoders": DECODER_IMPLS}.get(args.impl, (args.impl,))
    if args.word_timestamps:
        impls = WORDS_IMPLS
        if not aligner_folder(args.cache_dir).is_dir():
            print("Writing the full-size random aligner (once) ...", file=sys.stderr, flush=True)
            _spawn(args, "build-aligner", ["--cache-dir", str(args.cache_dir)])
    if args.speakers:
        impls = SPEAKERS_IMPLS
    rows: list[InputRow] = []
    runs: list[RunResult] = []
    for audio_s, rounds in plan(args):
        for round_ in range(1, rounds + 1):
            for impl in impls:
                run = measure(args, impl, audio_s, round_)
                runs.append(run)
                print(
                    f"{format_duration(audio_s)} round {round_} {impl}: wall {run.wall_s:.1f} s, first text "
                    f"{run.first_text_s:.2f} s, {run.tokens} tokens, {run.sequential_steps} sequential steps in "
                    f"batches of {run.batch_rows}, load {run.load_s:.1f} s, peak RSS {run.peak_rss_mb / 1024:.2f} GB "
                    f"(stage: {run.peak_stage}), "
                    f"load average {run.load_avg[0]:.1f}-{run.load_avg[1]:.1f}",
                    file=sys.stderr,
                    flush=True,
                )
        if impls == IMPLS:
            rows.append(summarize([run for run in runs if run.audio_s == audio_s]))
    threads = ", ".join(map(str, sorted({run.threads for run in runs})))
    print(f"\nDevice {args.device}, torch threads {threads}; {'best round per cell' if rows else 'every run'}.\n")
    print(table(rows) if rows else runs_table(runs))
    print("\n" + first_text_table(runs))
    if impls == DECODER_IMPLS:
        print("\n" + decoder_ratios(runs))
    if impls == WORDS_IMPLS:
        print("\n" + feature_cost(runs, WORDS_IMPLS, "word timestamps"))
    if impls == SPEAKERS_IMPLS:
        print("\n" + feature_cost(runs, SPEAKERS_IMPLS, "speakers"))
    busiest = max(max(run.load_avg) for run in runs)
    if args.device == "cpu" and busiest > (os.cpu_count() or 1) + 0.5:
        print(
            f"\nNote: the machine was busy (1-minute load average up to {busiest:.1f} on {os.cpu_count()} CPUs), so "
            "wall times are inflated and noisy; compare the rounds, or rerun on an idle machine."
        )
    if args.json:
        payload = [dataclasses.asdict(row) for row in rows] if rows else [dataclasses.asdict(run) for run in runs]
        args.json.write_text(json.dumps(payload, indent=2))
    print(f"\nTotal time {time.perf_counter() - began:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
