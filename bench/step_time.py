"""Time of one decode step by batch size: our loop (and on CUDA its graph replay) vs transformers' `generate`.

    .venv/bin/python -m bench.step_time --batch-sizes 1,8            # CPU, the full-size random checkpoint
    .venv/bin/python -m bench.step_time --device cuda --batch-sizes 1,8,32,64 --graphs

Each row of a batch is the same 24 s of spoken sentences (the longest chunk the pipeline makes), so the prompt
is as long as in real use. A step's time is (time for N2 new tokens - time for N1) / (N2 - N1), measured the
same way for every decoder: prefill and setup cancel out. Where each step is a forward call (generate, the loop
without graphs), the median of the steps' own times (forward hooks, synchronised on CUDA) is reported instead,
which a busy machine disturbs less; graph replays call no forward, so they keep the difference. EOS is
disabled in the bench checkpoint, so every call runs its N tokens. The checkpoint is bench.run's (written
there once). Ratios, not absolute times, are what to compare on a busy machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from asr.audio import SAMPLE_RATE
from bench.checkpoints import checkpoint_folder, write_checkpoint
from bench.inputs import build_speech
from bench.run import BENCH_DIR

CHUNK_S = 24.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--batch-sizes", default="1,8", help="comma-separated rows per batch")
    parser.add_argument("--steps", default="4,20", help="N1,N2: new tokens of the two timed calls")
    parser.add_argument("--graphs", action="store_true", help="also time the loop with CUDA graphs (CUDA only)")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--voiced", type=Path, help="spoken sentences cache (.npz), as bench/run.py --voiced")
    parser.add_argument("--cache-dir", type=Path, default=BENCH_DIR / ".cache")
    parser.add_argument("--json", type=Path, help="write the step times (ms) to this file")
    args = parser.parse_args(argv)

    import torch
    from transformers import AutoProcessor, Qwen3ASRForConditionalGeneration

    from asr.decode import StepGraphs, greedy_decode

    if args.threads:
        torch.set_num_threads(args.threads)
    folder = checkpoint_folder(args.cache_dir)
    if not folder.is_dir():
        write_checkpoint(folder)
    dtype = torch.bfloat16
    processor = AutoProcessor.from_pretrained(folder)
    model = Qwen3ASRForConditionalGeneration.from_pretrained(folder, dtype=dtype, device_map=args.device).eval()
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
    chunk = build_speech(CHUNK_S, voiced_path=args.voiced).samples
    assert len(chunk) == CHUNK_S * SAMPLE_RATE
    few, many = (int(n) for n in args.steps.split(","))
    graphs = StepGraphs() if args.graphs and args.device == "cuda" else None

    decoders = {
        "generate": lambda inputs, n: model.generate(**inputs, max_new_tokens=n, min_new_tokens=n, do_sample=False),
        "loop": lambda inputs, n: greedy_decode(model, inputs, [n] * len(inputs["input_ids"]), eos_ids=(), pad_id=0),
    }
    if graphs is not None:
        decoders["loop+graphs"] = lambda inputs, n: greedy_decode(
            model, inputs, [n] * len(inputs["input_ids"]), eos_ids=(), pad_id=0, graphs=graphs
        )

    def timed(decode, inputs, n: int) -> float:
        sync()
        started = time.perf_counter()
        decode(inputs, n)
        sync()
        return time.perf_counter() - started

    steps: list[float] = []
    step_started = [0.0]

    def before(module, args, kwargs) -> None:
        sync()
        step_started[0] = time.perf_counter()

    def after(module, args, kwargs, output) -> None:
        if kwargs["input_ids"].shape[1] == 1:  # a one-token step, not the prefill
            sync()
            steps.append(time.perf_counter() - step_started[0])

    model.register_forward_pre_hook(before, with_kwargs=True)
    model.register_forward_hook(after, with_kwargs=True)

    results: dict[str, dict[str, float]] = {}
    for batch in (int(n) for n in args.batch_sizes.split(",")):
        inputs = processor.apply_transcription_request(audio=[chunk] * batch).to(model.device, dtype)
        for name, decode in decoders.items():
            with torch.inference_mode():
                decode(inputs, few)  # warm-up: kernel choice, memory pools, graph capture
                steps.clear()
                # The best of 3 for each length, then the difference: a preempted call cannot make a step look short.
                few_s, many_s = (min(timed(decode, inputs, n) for _ in range(3)) for n in (few, many))
                # Where the forward runs per step, the median of the hooked steps is steadier on a busy machine.
                step_s = float(np.median(steps)) if steps else (many_s - few_s) / (many - few)
            results.setdefault(name, {})[str(batch)] = 1000 * step_s
            print(f"batch {batch} {name}: {1000 * step_s:.1f} ms a step", file=sys.stderr, flush=True)

    batches = list(results["generate"])
    setting = f"{args.device}, {str(dtype).removeprefix('torch.')}, {torch.get_num_threads()} threads"
    print(f"\nOne decode step, ms ({setting})\n")
    print("| decoder | " + " | ".join(f"batch {b}" for b in batches) + " |")
    print("|---|" + "---|" * len(batches))
    for name, by_batch in results.items():
        cells = " | ".join(f"{by_batch[b]:.1f} ({by_batch[b] / results['generate'][b]:.2f}x generate)" for b in batches)
        print(f"| {name} | {cells} |")
    if args.json:
        args.json.write_text(json.dumps({"device": args.device, "step_ms": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
