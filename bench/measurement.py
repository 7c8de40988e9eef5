"""What one worker measures: the run's figures, forward-pass timing hooks, wall and CPU clocks, memory."""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.inputs import SyntheticSpeech


@dataclass
class RunResult:
    """One (implementation, input, round), measured in its own process."""

    impl: str
    round: int
    audio_s: float
    speech_s: float
    device: str
    dtype: str
    threads: int
    batch_size: int  # ours: chunks per generate call; reference: 1
    load_s: float  # model (and, for ours, Silero VAD) load, not part of wall_s
    wall_s: float  # start of transcription to the last text
    first_text_s: float  # start of transcription to the first text
    first_text_split: dict[str, float]  # where first_text_s went: see `ForwardTimer.split`
    prep_s: float  # before the first generate: ours VAD + chunking; reference 0 (its features are in other_s)
    encoder_s: float  # audio encoder forward passes
    prefill_s: float  # LM prefill (prompt with audio embeddings), encoder excluded
    decode_s: float  # one-token decode steps
    other_s: float  # wall - the above: VAD, features, tokenizing, generate's overhead, decoding text
    step_ms: dict[str, float]  # median time of one decode step, by rows in the batch ("1", "4", ...)
    cpu_s: float  # user + system CPU time of this process during wall_s (less sensitive to other load)
    load_avg: tuple[float, float]  # 1-minute load average of the machine at the start and end of wall_s
    requests: int  # chunks (ours, retries included) or 30 s windows (reference)
    batch_rows: list[int]  # rows of each generate call, in order (ours: the first chunk alone, then the batches)
    sequential_steps: int  # the calls' longest budgets added up: the decode steps that run one after another
    retries: int  # ours: chunks decoded again because their text looped (random weights rarely make text)
    generate_calls: int
    tokens: int  # generated tokens, rows x steps, counted in the forward passes
    budget_tokens: int  # the tokens each request asked for (ours: padding rows of a batch excluded)
    audio_pad_fraction: float  # share of the audio in batches that is padding to the longest chunk
    nonempty_texts: int
    rss_after_load_mb: float  # resident memory when transcription starts (model loaded, input built)
    peak_rss_mb: float  # the highest resident memory while transcribing (Linux: VmHWM, reset after load)
    peak_gpu_mb: float | None
    peak_stage: str  # the stage in which resident memory last reached a new high (`PeakStage`)
    # ours-words: where the aligner's passes went (`AlignerTimer.split`); None without word timestamps
    aligner_split: dict[str, float] | None = None

    @property
    def rtf(self) -> float:
        return self.wall_s / self.audio_s

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.wall_s


class PeakStage:
    """Which stage the peak of resident memory happened in: at the end of each stage (the hooks of the
    `ForwardTimer`s), if the high-water mark rose since the last look, the stage that just ran raised it. The
    kernel updates the mark before memory is given back, so a peak inside a stage is seen at its end. One look
    reads /proc/self/status (tens of microseconds), against a decode step's tens of milliseconds."""

    OUTSIDE = "outside the model"  # between forward passes: VAD, features, the pipeline, the text

    def __init__(self) -> None:
        self.stage = self.OUTSIDE
        self._high_mb = 0.0

    def restart(self) -> None:
        self.stage, self._high_mb = self.OUTSIDE, peak_rss_mb()

    def ended(self, stage: str) -> None:
        high = peak_rss_mb()
        if high > self._high_mb:
            self.stage, self._high_mb = stage, high


PEAK_STAGE = PeakStage()


class ForwardTimer:
    """Times the forward passes that `generate` makes: prefill (whole prompt) vs one-token decode steps.

    Hooks on the top-level model and on its audio encoder; on CUDA they synchronise so times are real. The same
    hooks tell `PEAK_STAGE` where each stage ends (`name` tells the aligner's apart).
    """

    def __init__(self, model: Any, *, cuda: bool, name: str = "") -> None:
        import torch

        self._name = name
        self._sync: Callable[[], None] = torch.cuda.synchronize if cuda else (lambda: None)
        self.encoder_s = self.prefill_s = self.decode_s = 0.0
        self.prefills = self.steps = self.tokens = 0
        self.step_times: dict[int, list[float]] = {}
        self._started = self._encoder_started = 0.0
        model.register_forward_pre_hook(self._start, with_kwargs=True)
        model.register_forward_hook(self._stop, with_kwargs=True)
        encoder = model.model.audio_tower
        encoder.register_forward_pre_hook(self._encoder_start)
        encoder.register_forward_hook(self._encoder_stop)

    def split(self, wall_s: float, before_model_s: float) -> dict[str, float]:
        """Where `wall_s` seconds from the start went so far: before the first call to the model (ours: VAD and
        chunking), the audio encoder, the prefill without it, the decode steps (and how many), and the rest
        (features, tokenizing, the text)."""
        model_s = self.prefill_s + self.decode_s
        return {
            "before_model_s": before_model_s,
            "encoder_s": self.encoder_s,
            "prefill_s": self.prefill_s - self.encoder_s,
            "decode_s": self.decode_s,
            "steps": float(self.steps),
            "other_s": wall_s - before_model_s - model_s,
        }

    def _start(self, module: Any, args: tuple, kwargs: dict) -> None:
        self._sync()
        PEAK_STAGE.ended(PEAK_STAGE.OUTSIDE)
        self._started = time.perf_counter()

    def _stop(self, module: Any, args: tuple, kwargs: dict, output: Any) -> None:
        self._sync()
        elapsed = time.perf_counter() - self._started
        ids = kwargs.get("input_ids")
        rows, length = ids.shape if ids is not None else kwargs["inputs_embeds"].shape[:2]
        self.tokens += rows
        if length > 1:
            self.prefills += 1
            self.prefill_s += elapsed
            PEAK_STAGE.ended(self._name + "prefill")
        else:
            self.steps += 1
            self.decode_s += elapsed
            self.step_times.setdefault(rows, []).append(elapsed)
            PEAK_STAGE.ended(self._name + "decode")

    def _encoder_start(self, module: Any, args: tuple) -> None:
        self._sync()
        PEAK_STAGE.ended(self._name + "prefill")  # the embeddings before the encoder
        self._encoder_started = time.perf_counter()

    def _encoder_stop(self, module: Any, args: tuple, output: Any) -> None:
        self._sync()
        self.encoder_s += time.perf_counter() - self._encoder_started
        PEAK_STAGE.ended(self._name + "encoder")


class AlignerTimer:
    """Times the forced aligner's passes (`align` calls): its audio encoder and the rest of its one forward pass
    (a `ForwardTimer` on its model: every call is a prefill), and what is left of the call (the processor:
    features, tokenizing the words, reading the times off the logits)."""

    def __init__(self, aligner: Any, *, cuda: bool) -> None:
        import torch

        sync: Callable[[], None] = torch.cuda.synchronize if cuda else (lambda: None)
        self.forward = ForwardTimer(aligner._model, cuda=cuda, name="aligner ")  # it keeps its model private
        self.pass_s = 0.0
        self.passes = 0
        align = aligner.align

        def timed_align(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return align(*args, **kwargs)
            finally:
                sync()
                self.pass_s += time.perf_counter() - started
                self.passes += 1

        aligner.align = timed_align

    def split(self) -> dict[str, float]:
        forward = self.forward
        return {
            "passes": float(self.passes),
            "pass_s": self.pass_s,
            "encoder_s": forward.encoder_s,
            "prefill_s": forward.prefill_s - forward.encoder_s,
            "processor_s": self.pass_s - forward.prefill_s,
        }


def _status_mb(field_name: str) -> float | None:
    """A memory figure of this process from /proc/self/status (Linux), in MB."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) / 1024  # kB
    return None


def rss_now_mb() -> float:
    return _status_mb("VmRSS") or peak_rss_mb()


def start_peak_rss() -> None:
    """Start a new high-water mark of resident memory, so the peak is the transcription's own and not that of
    building the input or loading the model (Linux: writing 5 to clear_refs resets VmHWM)."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")
    PEAK_STAGE.restart()


def peak_rss_mb() -> float:
    """Peak resident memory since `start_peak_rss` (Linux), or since the process started (elsewhere)."""
    return _status_mb("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # ru_maxrss: KiB


class Stopwatch:
    """Wall time, this process's CPU time and the machine's load average, from creation on."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self._cpu = self._cpu_now()
        self._load = os.getloadavg()[0]

    @staticmethod
    def _cpu_now() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    def wall_s(self) -> float:
        return time.perf_counter() - self.started

    def cpu_s(self) -> float:
        return self._cpu_now() - self._cpu

    def load_avg(self) -> tuple[float, float]:
        return self._load, os.getloadavg()[0]


@dataclass
class Loaded:
    """What loading took, before the transcription clock starts."""

    load_s: float
    rss_after_load_mb: float
    dtype: str
    timer: ForwardTimer


def finish_run(
    impl: str,
    speech: SyntheticSpeech,
    args: argparse.Namespace,
    loaded: Loaded,
    clock: Stopwatch,
    **measured: Any,
) -> RunResult:
    """Stop the clock and put the figures of one run together."""
    import torch

    wall_s, cpu_s, load_avg = clock.wall_s(), clock.cpu_s(), clock.load_avg()
    PEAK_STAGE.ended(PEAK_STAGE.OUTSIDE)
    timer = loaded.timer
    return RunResult(
        impl=impl,
        round=args.round,
        audio_s=speech.duration_s,
        speech_s=speech.speech_s,
        device=args.device,
        dtype=loaded.dtype,
        threads=torch.get_num_threads(),
        load_s=loaded.load_s,
        wall_s=wall_s,
        encoder_s=timer.encoder_s,
        prefill_s=timer.prefill_s - timer.encoder_s,
        decode_s=timer.decode_s,
        other_s=wall_s - timer.prefill_s - timer.decode_s,
        step_ms={str(rows): 1000 * float(np.median(times)) for rows, times in sorted(timer.step_times.items())},
        cpu_s=cpu_s,
        load_avg=load_avg,
        tokens=timer.tokens,
        rss_after_load_mb=loaded.rss_after_load_mb,
        peak_rss_mb=peak_rss_mb(),
        peak_gpu_mb=torch.cuda.max_memory_allocated() / 2**20 if args.device == "cuda" else None,
        peak_stage=PEAK_STAGE.stage,
        **measured,
    )
