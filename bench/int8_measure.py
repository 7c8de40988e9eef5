"""What `bench/cpu_int8.py` measures in one process: forward passes timed by hooks, on speech prompts; and
peak RSS, which needs one fresh process per variant (`python -m bench.cpu_int8 --rss-worker VARIANT`)."""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from asr.audio import SAMPLE_RATE
from bench.int8_variants import load_variant
from testbed.speech import SENTENCES, speak

BENCH_DIR = Path(__file__).resolve().parent


@dataclass
class ForwardTimes:
    """Forward passes of one `generate`: prefill (prompt) vs one-token decode steps, and the audio encoder."""

    prefill_s: list[float] = field(default_factory=list)
    steps_s: list[float] = field(default_factory=list)
    encoder_s: float = 0.0


class Timer:
    def __init__(self, model: Any) -> None:
        self.times = ForwardTimes()
        self._started = self._encoder_started = 0.0
        model.register_forward_pre_hook(self._start)
        model.register_forward_hook(self._stop, with_kwargs=True)
        model.model.audio_tower.register_forward_pre_hook(self._encoder_start)
        model.model.audio_tower.register_forward_hook(self._encoder_stop)

    def _start(self, module: Any, args: tuple) -> None:
        self._started = time.perf_counter()

    def _stop(self, module: Any, args: tuple, kwargs: dict, output: Any) -> None:
        elapsed = time.perf_counter() - self._started
        ids = kwargs.get("input_ids")
        length = ids.shape[1] if ids is not None else kwargs["inputs_embeds"].shape[1]
        (self.times.prefill_s if length > 1 else self.times.steps_s).append(elapsed)

    def _encoder_start(self, module: Any, args: tuple) -> None:
        self._encoder_started = time.perf_counter()

    def _encoder_stop(self, module: Any, args: tuple, output: Any) -> None:
        self.times.encoder_s += time.perf_counter() - self._encoder_started


def speech_clip(seconds: float, offset_s: float = 0.0) -> np.ndarray:
    """`seconds` of the test sentences read in a loop, starting `offset_s` in."""
    loop = np.concatenate([speak(s) for s in SENTENCES])
    need = round((offset_s + seconds) * SAMPLE_RATE)
    samples = np.tile(loop, need // len(loop) + 1)
    return samples[round(offset_s * SAMPLE_RATE) : need]


def prompt(processor: Any, clips: list[np.ndarray]) -> Any:
    return processor.apply_transcription_request(audio=clips, language="English")


def run_generate(model: Any, timer: Timer, inputs: Any, tokens: int) -> tuple[float, ForwardTimes]:
    import torch

    timer.times = ForwardTimes()
    started = time.perf_counter()
    with torch.inference_mode():
        model.generate(**inputs.to(dtype=model.dtype), max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False)
    return time.perf_counter() - started, timer.times


def first_token_logits(model: Any, inputs: Any) -> np.ndarray:
    import torch

    with torch.inference_mode():
        out = model(**inputs.to(dtype=model.dtype), logits_to_keep=1)
    return out.logits[:, -1].float().numpy()


# ----------------------------------------------------------------------------------------------
# Peak RSS: one fresh process per variant


def _status_kb(key: str) -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(key + ":"))


def rss_worker(args: argparse.Namespace) -> None:
    import torch
    from transformers import AutoProcessor

    if args.threads:
        torch.set_num_threads(args.threads)
    processor = AutoProcessor.from_pretrained(args.checkpoint, local_files_only=True)
    clips = [speech_clip(args.rss_seconds, offset_s=3.0 * i) for i in range(args.rss_rows)]
    inputs = prompt(processor, clips)
    model, load_s, quant_s = load_variant(args.checkpoint, args.rss_worker)
    loaded_kb, load_peak_kb = _status_kb("VmRSS"), _status_kb("VmHWM")
    anon_kb, file_kb = _status_kb("RssAnon"), _status_kb("RssFile")
    with open("/proc/self/clear_refs", "w") as refs:  # resets VmHWM to the current RSS (Linux >= 4.0)
        refs.write("5")
    started = time.perf_counter()
    with torch.inference_mode():
        model.generate(**inputs.to(dtype=model.dtype), max_new_tokens=4, min_new_tokens=4, do_sample=False)
    result = {
        "variant": args.rss_worker,
        "load_s": load_s,
        "quant_s": quant_s,
        "rss_loaded_gb": loaded_kb / 1e6,
        "rss_loaded_anon_gb": anon_kb / 1e6,  # private memory
        "rss_loaded_file_gb": file_kb / 1e6,  # mapped checkpoint pages: shared, the kernel can drop them
        "rss_after_anon_gb": _status_kb("RssAnon") / 1e6,
        "rss_after_file_gb": _status_kb("RssFile") / 1e6,
        "peak_load_gb": load_peak_kb / 1e6,
        "peak_infer_gb": _status_kb("VmHWM") / 1e6,
        "ru_maxrss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
        "infer_s": time.perf_counter() - started,
    }
    print(json.dumps(result), flush=True)


def measure_rss(args: argparse.Namespace, variant: str) -> dict[str, Any]:
    command = [
        sys.executable,
        "-m",
        "bench.cpu_int8",
        "--rss-worker",
        variant,
        "--checkpoint",
        str(args.checkpoint),
    ]
    command += ["--rss-rows", str(args.rss_rows), "--rss-seconds", str(args.rss_seconds)]
    if args.threads:
        command += ["--threads", str(args.threads)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run(command, cwd=BENCH_DIR.parent, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.stderr.write(done.stdout[-3000:] + done.stderr[-3000:])
        raise SystemExit(f"RSS worker {variant} failed with exit code {done.returncode}")
    return json.loads([line for line in done.stdout.splitlines() if line.startswith("{")][-1])
