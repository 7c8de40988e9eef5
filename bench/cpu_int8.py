"""CPU int8 dynamic quantisation vs bfloat16 and float32 on the full-size Qwen3-ASR-0.6B (random weights).

    .venv/bin/python -m bench.cpu_int8                                 # about 6 minutes on 2 cores
    .venv/bin/python -m bench.cpu_int8 --rounds 3 --rss-variants ""    # more rounds, no RSS processes
    .venv/bin/python -m bench.cpu_int8 --variants fp32,bf16,int8,int8-lm,int8-pc --json out.json
    PYTHONPATH=DIR .venv/bin/python -m bench.cpu_int8 --variants fp32,bf16,ao-int8wo  # torchao from DIR

The model is the cached random checkpoint that `bench/run.py` writes under `bench/.cache/` (bf16
safetensors, like the hub checkpoint); it is written here first if missing. Variants, each loaded
from that folder:

- fp32: `dtype=torch.float32`.
- bf16: `dtype=torch.bfloat16` (the app's CPU default).
- int8: fp32, then `torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)`:
  torch's default dynamic qconfig (one scale per weight tensor; activations quantised on the fly, one
  scale per tensor per call); every Linear (audio encoder, text decoder, LM head); the rest stays fp32.
- int8-lm: bf16, then only the text decoder's Linear layers and the LM head become dynamic int8 with
  `per_channel_dynamic_qconfig` (one weight scale per output channel), one layer at a time (see
  `quantize_text_decoder`); the audio encoder stays bf16. This is the variant proposed for the engine.
- int8-pc (opt-in): as int8, with `per_channel_dynamic_qconfig`.
- ao-int8wo, ao-int8dyn (opt-in, only when `torchao` imports; it is not a project dependency): bf16 +
  `torchao.quantization.quantize_(model, Int8WeightOnlyConfig())`, and fp32 +
  `Int8DynamicActivationInt8WeightConfig()`, both eager (no `torch.compile`).

`torch.ao.quantization` is deprecated in favour of torchao, and so are torch's quantized tensor dtypes
(qint8 ...; pytorch issue 184982): both warnings are silenced here.

Measured (speed does not depend on the weights' values once the number of tokens is fixed):

1. Decode: `generate(min_new_tokens = max_new_tokens = --tokens)` on a 10 s espeak-ng speech prompt
   (the checkpoint's processor, as in `cpu_dtype.py`), batch 1 and batch 8 (8 different 10 s clips).
   Forward hooks time each forward pass: the first is the prefill (audio encoder + LM over the prompt),
   the others are one-token decode steps; the median step is reported, plus prefill and the whole
   `generate`.
2. Audio encoder + prefill of one 24 s chunk (the app's longest chunk): `generate(max_new_tokens=1)`.
3. Peak RSS (--rss-variants), each variant alone in a fresh process: RSS after loading (and quantising,
   then `malloc_trim`), split into anonymous and file-backed pages, the peak while loading, and (after
   resetting the peak through /proc/self/clear_refs) the peak during the app's largest call, 8 chunks of
   24 s (--rss-rows, --rss-seconds) with 4 new tokens. bf16 weights stay memory-mapped from the
   checkpoint and are paged in on first use (file-backed, so small right after loading: compare the
   peaks); fp32 and int8 load the checkpoint as fp32 first, hence their load peak.
4. Accuracy-risk proxy (token agreement on random weights means nothing): the logits for the first
   generated token on 20 different 4 s speech prompts (windows of the speech loop, 10 per forward pass),
   compared with fp32: relative error mean|delta| / mean|fp32 logits|, and how many of the 20 greedy
   first tokens (argmax) agree with fp32 (and lie in fp32's top 5). Random weights give nearly flat
   logits (the median fp32 top-1 margin is printed), so argmax disagreement here is pessimistic; they
   also lack the activation outliers of trained LLMs, which is where per-tensor int8 activations lose
   accuracy, so a small error here is optimistic. Only the real checkpoint on real speech settles it.

Timing variants all live in this one process and alternate within each round (A B C A B C), so machine
drift hits all; each figure is the best of the rounds, with ratios to bf16 and fp32, and the per-round
ratios are printed so noise is visible. On a busy 2-core machine a step can jump several-fold at random
(OpenMP spin-wait, see `run.py`): look at the load averages printed, and rerun when they exceed 2.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.checkpoints import checkpoint_folder, write_checkpoint
from bench.int8_measure import (
    BENCH_DIR,
    Timer,
    first_token_logits,
    measure_rss,
    prompt,
    rss_worker,
    run_generate,
    speech_clip,
)
from bench.int8_variants import ALL_VARIANTS, DEFAULT_VARIANTS, load_variant, torchao_available

ACCURACY_PROMPTS = 20  # 4 s windows of the speech loop, 1.5 s apart, 10 per forward pass


def _ratio(reference: float, value: float) -> str:
    return f"{reference / value:.2f}x"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--variants", default=",".join(DEFAULT_VARIANTS), help=f"any of {', '.join(ALL_VARIANTS)}")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=10.0, help="decode prompt length")
    parser.add_argument("--chunk-seconds", type=float, default=24.0, help="encoder + prefill chunk")
    parser.add_argument("--rss-rows", type=int, default=8)
    parser.add_argument("--rss-seconds", type=float, default=24.0)
    parser.add_argument(
        "--rss-variants", default="fp32,bf16,int8,int8-lm", help="variants measured for peak RSS ('' for none)"
    )
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--cache-dir", type=Path, default=BENCH_DIR / ".cache")
    parser.add_argument("--json", type=Path, help="write every measurement to this file")
    parser.add_argument("--rss-worker", choices=ALL_VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--checkpoint", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rss_worker:
        rss_worker(args)
        return

    began = time.perf_counter()
    variants = [v for v in args.variants.split(",") if v]
    unknown = set(variants) - set(ALL_VARIANTS)
    if unknown:
        parser.error(f"unknown variants: {', '.join(sorted(unknown))}")
    if "bf16" not in variants or "fp32" not in variants:
        parser.error("fp32 and bf16 are the references: keep both in --variants")
    if not torchao_available():
        dropped = [v for v in variants if v.startswith("ao-")]
        variants = [v for v in variants if not v.startswith("ao-")]
        if dropped:
            print(f"torchao does not import here: skipping {', '.join(dropped)}", flush=True)

    import torch
    from transformers import AutoProcessor
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.threads:
        torch.set_num_threads(args.threads)
    args.checkpoint = checkpoint_folder(args.cache_dir)
    if not args.checkpoint.is_dir():
        print(f"Writing the full-size random checkpoint to {args.checkpoint} (once) ...", flush=True)
        write_checkpoint(args.checkpoint)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, quantized engine "
          f"{torch.backends.quantized.engine}, load average {os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip

    report: dict[str, Any] = {"variants": variants, "threads": torch.get_num_threads(), "rounds": []}

    # 3. Peak RSS, each variant alone in a fresh process (first, while this process is still small).
    rss: dict[str, dict[str, Any]] = {}
    for variant in [v for v in variants if v in args.rss_variants.split(",")]:
        rss[variant] = r = measure_rss(args, variant)
        print(f"RSS {variant}: load {r['load_s']:.1f} s + quantise {r['quant_s']:.1f} s; loaded "
              f"{r['rss_loaded_gb']:.2f} GB (anon {r['rss_loaded_anon_gb']:.2f} + file "
              f"{r['rss_loaded_file_gb']:.2f}; after the call {r['rss_after_anon_gb']:.2f} + "
              f"{r['rss_after_file_gb']:.2f}); peak while loading {r['peak_load_gb']:.2f} GB; peak on "
              f"{args.rss_rows} x {args.rss_seconds:g} s {r['peak_infer_gb']:.2f} GB "
              f"({r['infer_s']:.1f} s)", flush=True)  # fmt: skip
    report["rss"] = rss

    processor = AutoProcessor.from_pretrained(args.checkpoint, local_files_only=True)
    models: dict[str, Any] = {}
    timers: dict[str, Timer] = {}
    load_times: dict[str, tuple[float, float]] = {}
    for variant in variants:
        model, load_s, quant_s = load_variant(args.checkpoint, variant)
        models[variant], timers[variant], load_times[variant] = model, Timer(model), (load_s, quant_s)
        print(f"loaded {variant} ({model.dtype}) in {load_s:.1f} s + quantise {quant_s:.1f} s", flush=True)

    # 4. Accuracy proxy (also warms every variant up).
    clips = [speech_clip(4.0, offset_s=1.5 * i) for i in range(ACCURACY_PROMPTS)]
    prompts = [prompt(processor, clips[i : i + 10]) for i in range(0, len(clips), 10)]
    logits: dict[str, np.ndarray] = {}
    for variant, model in models.items():
        started = time.perf_counter()
        logits[variant] = np.concatenate([first_token_logits(model, p) for p in prompts])
        print(f"logits {variant}: {time.perf_counter() - started:.1f} s", flush=True)
    reference = logits["fp32"]
    top2 = np.sort(reference, axis=1)[:, -2:]
    margin = float(np.median(top2[:, 1] - top2[:, 0]))
    accuracy: dict[str, dict[str, float]] = {}
    for variant, values in logits.items():
        delta = np.abs(values - reference)
        accuracy[variant] = {
            "rel_err": float(delta.mean() / np.abs(reference).mean()),
            "mean_abs_delta": float(delta.mean()),
            "argmax_agree": int((values.argmax(1) == reference.argmax(1)).sum()),
            "in_fp32_top5": int(
                sum(a in set(row) for a, row in zip(values.argmax(1), np.argsort(reference, 1)[:, -5:], strict=True))
            ),
        }
    report["accuracy"] = {"prompts": ACCURACY_PROMPTS, "fp32_median_top1_margin": margin, **accuracy}
    print(f"accuracy done ({ACCURACY_PROMPTS} prompts; fp32 median top-1 margin {margin:.4f}, "
          f"mean |fp32 logit| {float(np.abs(reference).mean()):.4f})", flush=True)  # fmt: skip

    # 1 + 2. Speed, alternating the variants within each round.
    decode_1 = prompt(processor, [speech_clip(args.seconds)])
    decode_8 = prompt(processor, [speech_clip(args.seconds, offset_s=3.0 * i) for i in range(8)])
    chunk = prompt(processor, [speech_clip(args.chunk_seconds)])
    rounds: list[dict[str, dict[str, float]]] = []
    for round_ in range(1, args.rounds + 1):
        row: dict[str, dict[str, float]] = {}
        for variant, model in models.items():
            cell: dict[str, float] = {}
            for name, inputs in (("b1", decode_1), ("b8", decode_8)):
                total, times = run_generate(model, timers[variant], inputs, args.tokens)
                cell[f"{name}_step_s"] = statistics.median(times.steps_s)
                cell[f"{name}_prefill_s"] = times.prefill_s[0]
                cell[f"{name}_total_s"] = total
            total, times = run_generate(model, timers[variant], chunk, 1)
            cell["chunk_encoder_s"], cell["chunk_prefill_s"] = times.encoder_s, times.prefill_s[0]
            cell["load_avg"] = os.getloadavg()[0]
            row[variant] = cell
            print(f"round {round_} {variant}: step b1 {cell['b1_step_s'] * 1e3:.0f} ms, b8 "
                  f"{cell['b8_step_s'] * 1e3:.0f} ms; prefill {args.seconds:g} s b1 {cell['b1_prefill_s']:.2f} s; "
                  f"{args.chunk_seconds:g} s chunk encoder {cell['chunk_encoder_s']:.2f} s, encoder + prefill "
                  f"{cell['chunk_prefill_s']:.2f} s; generate b1 {cell['b1_total_s']:.1f} s, b8 "
                  f"{cell['b8_total_s']:.1f} s (load avg {cell['load_avg']:.1f})", flush=True)  # fmt: skip
        rounds.append(row)
        ratios = ", ".join(f"{v} {row['bf16']['b1_step_s'] / row[v]['b1_step_s']:.2f}x" for v in variants)
        print(f"round {round_} b1 step speed vs bf16: {ratios}", flush=True)
    report["rounds"] = rounds
    report["load_s"] = load_times

    def best(variant: str, key: str) -> float:
        return min(r[variant][key] for r in rounds)

    keys = ("b1_step_s", "b8_step_s", "b1_prefill_s", "chunk_encoder_s", "chunk_prefill_s", "b1_total_s")
    table = {v: {k: best(v, k) for k in keys} for v in variants}
    report["best"] = table
    print(f"\nBest of {args.rounds} rounds; speed ratios are bf16 time / variant time (>1: faster than bf16), "
          f"then fp32 time / variant time. {torch.get_num_threads()} threads.\n")  # fmt: skip
    print("| variant | decode step b1 | vs bf16 / fp32 | decode step b8 | vs bf16 / fp32 "
          f"| {args.chunk_seconds:g} s encoder | {args.chunk_seconds:g} s encoder + prefill | vs bf16 / fp32 "
          f"| generate b1 {args.tokens} tok | load + quantise | RSS loaded | peak RSS load | peak RSS "
          f"{args.rss_rows}x{args.rss_seconds:g} s | logits rel. err vs fp32 | argmax = fp32 |")  # fmt: skip
    print("|---" * 16 + "|")
    for v in variants:
        t, bf, fp, acc = table[v], table["bf16"], table["fp32"], accuracy[v]
        measured = rss.get(v)
        memory = (f"{measured['rss_loaded_gb']:.2f} GB | {measured['peak_load_gb']:.2f} GB "
                  f"| {measured['peak_infer_gb']:.2f} GB" if measured else "- | - | -")  # fmt: skip
        print(f"| {v} | {t['b1_step_s'] * 1e3:.0f} ms | {_ratio(bf['b1_step_s'], t['b1_step_s'])} / "
              f"{_ratio(fp['b1_step_s'], t['b1_step_s'])} | {t['b8_step_s'] * 1e3:.0f} ms | "
              f"{_ratio(bf['b8_step_s'], t['b8_step_s'])} / {_ratio(fp['b8_step_s'], t['b8_step_s'])} | "
              f"{t['chunk_encoder_s']:.2f} s | {t['chunk_prefill_s']:.2f} s | "
              f"{_ratio(bf['chunk_prefill_s'], t['chunk_prefill_s'])} / "
              f"{_ratio(fp['chunk_prefill_s'], t['chunk_prefill_s'])} | {t['b1_total_s']:.1f} s | "
              f"{load_times[v][0]:.1f} + {load_times[v][1]:.1f} s | {memory} | {acc['rel_err']:.2e} | "
              f"{acc['argmax_agree']}/{ACCURACY_PROMPTS} (top-5: {acc['in_fp32_top5']}) |")  # fmt: skip
    print(f"\nfp32 logits: median top-1 margin {margin:.4f} (random weights: nearly flat). "
          f"Total {time.perf_counter() - began:.0f} s.")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
