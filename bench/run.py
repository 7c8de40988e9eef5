"""Speed of our pipeline vs the plain documented transformers usage, on the full-size Qwen3-ASR-0.6B.

    .venv/bin/python bench/run.py --quick                 # 30 s (2 rounds) and 5 min (1 round): ~7 min on 2 cores
    .venv/bin/python bench/run.py                         # 30 s, 5 min and 30 min, 2 rounds each (much longer)
    .venv/bin/python bench/run.py --device cuda --json out.json

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
reference: until the first window is decoded), generated tokens (rows x steps, counted with forward
hooks) and tokens per second, where the forward time goes (audio encoder, LM prefill, one-token
decode steps; the rest is VAD, features, tokenizing and generate's own overhead), resident memory
when transcription starts and its peak while transcribing (VmHWM, reset after load, so building the
input and loading the model do not count), and on CUDA peak GPU memory. The table shows, per input and
implementation, the round with the lowest wall time; speedup = reference wall / our wall at the same
audio (our throughput / the reference's); every round is in `--json`.

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
import contextlib
import dataclasses
import hashlib
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from model_config import FULL_SIZE_0_6B  # noqa: E402

SAMPLE_RATE = 16_000
WINDOW_S = 30  # the feature extractor's chunk_length: the reference feeds one window per request
TOKENS_PER_S = 4.0
SEED = 0
IMPLS = ("ours", "reference")
LOOP_IMPL = "ours-loop"  # our pipeline with our decode loop (asr/decode.py), the CPU's default
GENERATE_IMPL = "ours-generate"  # our pipeline with transformers' generate, the default on CUDA and MPS
DECODER_IMPLS = (LOOP_IMPL, GENERATE_IMPL)  # --impl decoders
WORDS_IMPL = "ours-words"  # our pipeline with word timestamps (a full-size random forced aligner)
WORDS_IMPLS = ("ours", WORDS_IMPL)  # --word-timestamps: both, in the same run, to report the aligner's cost
WORDS_LANGUAGE = "English"  # forced in both, so that the aligner times every chunk (it needs a language it covers)
WORDS_PER_TOKEN = 0.75  # English with Qwen's tokenizer: about 1.3 tokens a word
FULL_INPUTS_S = (30.0, 300.0, 1800.0)
FULL_ROUNDS = 2
QUICK_ROUNDS = {30.0: 2, 300.0: 1}
CHECKPOINT_VERSION = 1  # bump to rebuild the cached checkpoint after a change to how it is written

EXTRA_SENTENCES = (
    "Our quarterly report shows steady growth in every region except the north.",
    "Remember to back up your files before installing the new operating system.",
    "The train to the airport leaves every fifteen minutes from platform four.",
    "She said the meeting was moved to Thursday because of the holiday.",
    "Could you send me the slides from yesterday's presentation, please?",
    "The library will be closed on Sunday for maintenance work on the roof.",
    "In the second half of the lecture we will look at the history of printing.",
    "He forgot his umbrella at the restaurant and had to walk home in the rain.",
    "The new software release fixes three bugs and improves battery life.",
    "Thank you all for coming, and let us begin with a short introduction.",
    "My grandmother grows tomatoes, beans and sunflowers in her small garden.",
    "The committee approved the proposal by a vote of seven to two.",
    "Please keep your questions short so that everyone has a chance to speak.",
    "The museum's new exhibition covers two thousand years of Chinese painting.",
    "We measured the temperature every hour for three days in a row.",
    "If the server goes down again, call the engineer on duty immediately.",
)


# ----------------------------------------------------------------------------------------------
# Synthetic speech with ground truth


@dataclass(frozen=True)
class SyntheticSpeech:
    """Mono float32 samples at 16 kHz and the sample spans where a sentence is spoken."""

    samples: np.ndarray
    spans: tuple[tuple[int, int], ...]

    @property
    def duration_s(self) -> float:
        return len(self.samples) / SAMPLE_RATE

    @property
    def speech_s(self) -> float:
        return sum(end - start for start, end in self.spans) / SAMPLE_RATE

    def speech_s_between(self, start: int, end: int) -> float:
        """Seconds of ground-truth speech inside samples [start, end)."""
        return sum(max(0, min(end, e) - max(start, s)) for s, e in self.spans) / SAMPLE_RATE


def all_sentences() -> tuple[str, ...]:
    from speech import SENTENCES

    return (*SENTENCES, *EXTRA_SENTENCES)


def voiced_sentences(path: Path | None) -> dict[str, np.ndarray]:
    """Every sentence spoken by espeak-ng, read from `path` (int16 .npz) or, when it is missing, made here
    and saved there: a machine without espeak-ng (the lent GPU) then builds the same inputs."""
    if path is not None and path.is_file():
        with np.load(path) as stored:
            texts = json.loads(str(stored["texts"]))
            return {text: stored[f"s{i}"].astype(np.float32) / 32767 for i, text in enumerate(texts)}
    from speech import speak

    voiced = {text: speak(text) for text in all_sentences()}
    if path is not None:
        waves = enumerate(voiced.values())
        pcm = {f"s{i}": np.round(np.clip(wave, -1, 1) * 32767).astype(np.int16) for i, wave in waves}
        np.savez_compressed(path, texts=json.dumps(list(voiced)), **pcm)
        voiced = voiced_sentences(path)  # the same int16-rounded samples as a later reader gets
    return voiced


def build_speech(
    duration_s: float, *, seed: int = SEED, lead_s: float = 0.5, voiced_path: Path | None = None
) -> SyntheticSpeech:
    """Random sentences (seeded) with random 0.3-2 s pauses, padded with silence to exactly `duration_s`.

    The same seed gives the same sequence, so a shorter input is the start of a longer one.
    """
    sentences = all_sentences()
    voiced = voiced_sentences(voiced_path)
    rng = np.random.default_rng(seed)
    total = round(duration_s * SAMPLE_RATE)
    lead = round(lead_s * SAMPLE_RATE)
    parts: list[np.ndarray] = [np.zeros(lead, np.float32)]
    spans: list[tuple[int, int]] = []
    position = lead
    while True:
        text = sentences[int(rng.integers(len(sentences)))]
        wave = voiced[text]
        if position + len(wave) + lead > total:
            break
        parts.append(wave)
        spans.append((position, position + len(wave)))
        position += len(wave)
        pause = round(float(rng.uniform(0.3, 2.0)) * SAMPLE_RATE)
        parts.append(np.zeros(pause, np.float32))
        position += pause
    samples = np.concatenate(parts)[:total]
    samples = np.pad(samples, (0, total - len(samples)))
    return SyntheticSpeech(samples=samples, spans=tuple(spans))


# ----------------------------------------------------------------------------------------------
# The cached full-size checkpoint


def checkpoint_folder(cache_dir: Path, seed: int = SEED) -> Path:
    key = json.dumps({"config": FULL_SIZE_0_6B, "seed": seed, "version": CHECKPOINT_VERSION}, sort_keys=True)
    return cache_dir / f"qwen3-asr-0.6b-random-seed{seed}-{hashlib.sha256(key.encode()).hexdigest()[:10]}"


def aligner_folder(cache_dir: Path, seed: int = SEED) -> Path:
    key = json.dumps({"config": FULL_SIZE_0_6B, "seed": seed, "version": CHECKPOINT_VERSION}, sort_keys=True)
    return cache_dir / f"qwen3-forcedaligner-0.6b-random-seed{seed}-{hashlib.sha256(key.encode()).hexdigest()[:10]}"


def write_aligner(folder: Path, seed: int = SEED) -> None:
    """A random forced aligner of the speech model's full size, with a 5000-class head (80 ms steps), as
    Qwen3-ForcedAligner-0.6B has. Its own config is not stored here; its checkpoint (1.84 GB) is about the
    speech model's (1.88 GB), so the same architecture stands in for it."""
    import torch
    from tiny_model import write_tiny_aligner
    from transformers import AutoProcessor, Qwen3ASRConfig, Qwen3ASRForTokenClassification

    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=folder.name + ".tmp-", dir=folder.parent))
    try:
        with tempfile.TemporaryDirectory() as tiny:
            processor = AutoProcessor.from_pretrained(write_tiny_aligner(Path(tiny)), local_files_only=True)
        config = Qwen3ASRConfig(
            **FULL_SIZE_0_6B,
            audio_token_id=processor.audio_token_id,
            timestamp_token_id=processor.tokenizer.convert_tokens_to_ids("<timestamp>"),
            num_labels=5000,
            architectures=["Qwen3ASRForTokenClassification"],
        )
        torch.manual_seed(seed)
        Qwen3ASRForTokenClassification(config).eval().to(torch.bfloat16).save_pretrained(staging)
        processor.save_pretrained(staging)
        staging.chmod(0o755)
        os.replace(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_checkpoint(folder: Path, seed: int = SEED) -> None:
    """Write the random full-size checkpoint into `folder` (atomically: a temporary folder, then a rename)."""
    import torch
    from tiny_model import write_tiny_checkpoint
    from transformers import AutoProcessor, GenerationConfig, Qwen3ASRConfig, Qwen3ASRForConditionalGeneration

    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=folder.name + ".tmp-", dir=folder.parent))
    try:
        with tempfile.TemporaryDirectory() as tiny:
            processor = AutoProcessor.from_pretrained(write_tiny_checkpoint(Path(tiny)), local_files_only=True)
        tokenizer = processor.tokenizer
        endoftext, im_end = tokenizer.convert_tokens_to_ids(["<|endoftext|>", "<|im_end|>"])
        config = Qwen3ASRConfig(
            **FULL_SIZE_0_6B,
            audio_token_id=processor.audio_token_id,
            pad_token_id=im_end,
            eos_token_id=[endoftext, im_end],
        )
        torch.manual_seed(seed)
        model = Qwen3ASRForConditionalGeneration(config).eval().to(torch.bfloat16)
        # No EOS: every request generates exactly its max_new_tokens, whatever the random weights say.
        model.generation_config = GenerationConfig(
            eos_token_id=None, pad_token_id=im_end, do_sample=False, max_new_tokens=512
        )
        model.save_pretrained(staging)
        processor.save_pretrained(staging)
        (staging / "bench_checkpoint.json").write_text(json.dumps({"seed": seed, "version": CHECKPOINT_VERSION}))
        staging.chmod(0o755)
        try:
            os.replace(staging, folder)
        except OSError:
            if not folder.is_dir():  # else another run wrote it meanwhile: same seed, same checkpoint
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# ----------------------------------------------------------------------------------------------
# Measurements inside a worker


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
    prep_s: float  # before the first generate: ours VAD + chunking; reference 0 (its features are in other_s)
    encoder_s: float  # audio encoder forward passes
    prefill_s: float  # LM prefill (prompt with audio embeddings), encoder excluded
    decode_s: float  # one-token decode steps
    other_s: float  # wall - the above: VAD, features, tokenizing, generate's overhead, decoding text
    step_ms: dict[str, float]  # median time of one decode step, by rows in the batch ("1", "4", ...)
    cpu_s: float  # user + system CPU time of this process during wall_s (less sensitive to other load)
    load_avg: tuple[float, float]  # 1-minute load average of the machine at the start and end of wall_s
    requests: int  # chunks (ours, retries included) or 30 s windows (reference)
    retries: int  # ours: chunks decoded again because their text looped (random weights rarely make text)
    generate_calls: int
    tokens: int  # generated tokens, rows x steps, counted in the forward passes
    budget_tokens: int  # the tokens each request asked for (ours: padding rows of a batch excluded)
    audio_pad_fraction: float  # share of the audio in batches that is padding to the longest chunk
    nonempty_texts: int
    rss_after_load_mb: float  # resident memory when transcription starts (model loaded, input built)
    peak_rss_mb: float  # the highest resident memory while transcribing (Linux: VmHWM, reset after load)
    peak_gpu_mb: float | None

    @property
    def rtf(self) -> float:
        return self.wall_s / self.audio_s

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.wall_s


class ForwardTimer:
    """Times the forward passes that `generate` makes: prefill (whole prompt) vs one-token decode steps.

    Hooks on the top-level model and on its audio encoder; on CUDA they synchronise so times are real.
    """

    def __init__(self, model: Any, *, cuda: bool) -> None:
        import torch

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

    def _start(self, module: Any, args: tuple, kwargs: dict) -> None:
        self._sync()
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
        else:
            self.steps += 1
            self.decode_s += elapsed
            self.step_times.setdefault(rows, []).append(elapsed)

    def _encoder_start(self, module: Any, args: tuple) -> None:
        self._sync()
        self._encoder_started = time.perf_counter()

    def _encoder_stop(self, module: Any, args: tuple, output: Any) -> None:
        self._sync()
        self.encoder_s += time.perf_counter() - self._encoder_started


@dataclass
class EngineCall:
    started: float
    rows: int
    max_new_tokens: int  # the batch's longest budget: the steps it runs
    budgets: int  # sum of the rows' own budgets
    samples: int  # audio samples in the batch
    padded_samples: int  # rows x longest chunk
    retry: bool  # a chunk decoded again because its text looped


@dataclass
class RecordingEngine:
    """Our engine, with each `transcribe_chunks` call recorded (the pipeline only needs this interface)."""

    engine: Any
    calls: list[EngineCall] = field(default_factory=list)
    words_per_token: float | None = None  # set: each chunk's text becomes that many English words per token

    @property
    def name(self) -> str:
        return self.engine.name

    @property
    def default_batch_size(self) -> int:
        return self.engine.default_batch_size

    def transcribe_chunks(self, chunks: Sequence[np.ndarray], **kwargs: Any) -> Any:
        lengths = [len(chunk) for chunk in chunks]
        budgets = kwargs["max_new_tokens"]
        retry = kwargs.get("repetition_penalty") is not None
        padded = len(lengths) * max(lengths)
        call = EngineCall(time.perf_counter(), len(lengths), max(budgets), sum(budgets), sum(lengths), padded, retry)
        self.calls.append(call)
        results = self.engine.transcribe_chunks(chunks, **kwargs)
        if self.words_per_token is None:
            return results
        # Random weights write token ids the test tokenizer has no text for, so the texts come back empty and an
        # aligner would have nothing to time. For --word-timestamps, both runs get English words instead, as many
        # as real speech has for that many tokens: what the aligner's work grows with.
        return [
            dataclasses.replace(result, text=_words(round(result.num_tokens * self.words_per_token)))
            for result in results
        ]

    def fall_back_to_cpu(self) -> str | None:
        return self.engine.fall_back_to_cpu()


def _words(count: int) -> str:
    """`count` words of the benchmark's sentences, in order, punctuation kept."""
    passage = " ".join(EXTRA_SENTENCES).split()
    return " ".join(passage[i % len(passage)] for i in range(count))


def _status_mb(field_name: str) -> float | None:
    """A memory figure of this process from /proc/self/status (Linux), in MB."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) / 1024  # kB
    return None


def _rss_now_mb() -> float:
    return _status_mb("VmRSS") or _peak_rss_mb()


def _start_peak_rss() -> None:
    """Start a new high-water mark of resident memory, so the peak is the transcription's own and not that of
    building the input or loading the model (Linux: writing 5 to clear_refs resets VmHWM)."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def _peak_rss_mb() -> float:
    """Peak resident memory since `_start_peak_rss` (Linux), or since the process started (elsewhere)."""
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


def run_ours(speech: SyntheticSpeech, args: argparse.Namespace) -> RunResult:
    import asr
    from asr.engine import QwenEngine  # imported before the clock starts, as the reference's transformers is
    from asr.vad import get_speech_spans

    clock = Stopwatch()
    decoder = {LOOP_IMPL: "loop", GENERATE_IMPL: "generate"}.get(args.worker, "auto")  # "ours": the default
    graphs = {"cuda_graphs": True} if args.cuda_graphs and decoder == "loop" else {}
    engine = QwenEngine.load(str(args.checkpoint), device=args.device, decoder=decoder, **graphs)
    aligner = None
    if args.worker == WORDS_IMPL:
        from asr.aligner import QwenAligner

        aligner = QwenAligner.load(str(aligner_folder(args.cache_dir)), device=args.device)
    get_speech_spans(np.zeros(SAMPLE_RATE, np.float32), asr.VadOptions())  # loads Silero once, as the app does
    timer = ForwardTimer(engine._model, cuda=args.device == "cuda")  # the engine keeps its model private
    loaded = Loaded(clock.wall_s(), _rss_now_mb(), engine.info.dtype, timer)
    _start_peak_rss()
    language = WORDS_LANGUAGE if args.word_timestamps else None
    decode = asr.DecodeOptions(
        tokens_per_s=args.tokens_per_s, min_new_tokens_budget=1, batch_size=args.batch_size, language=language
    )
    recording = RecordingEngine(engine, words_per_token=WORDS_PER_TOKEN if args.word_timestamps else None)

    clock = Stopwatch()
    options = asr.TranscribeOptions(decode=decode)
    segments, _ = asr.transcribe(speech.samples, engine=recording, options=options, aligner=aligner)
    first_text_s = clock.wall_s()  # the first chunk is generated before transcribe() returns
    texts = [segment.text for segment in segments]

    calls = recording.calls
    return _result(
        args.worker,
        speech,
        args,
        loaded,
        clock,
        first_text_s=first_text_s,
        prep_s=calls[0].started - clock.started if calls else 0.0,
        batch_size=args.batch_size or engine.default_batch_size,
        requests=sum(call.rows for call in calls),
        retries=sum(call.rows for call in calls if call.retry),
        generate_calls=len(calls),
        budget_tokens=sum(call.budgets for call in calls),
        audio_pad_fraction=1 - sum(c.samples for c in calls) / max(1, sum(c.padded_samples for c in calls)),
        nonempty_texts=len(texts),
    )


def run_reference(speech: SyntheticSpeech, args: argparse.Namespace) -> RunResult:
    from transformers import AutoProcessor, Qwen3ASRForConditionalGeneration

    clock = Stopwatch()
    processor = AutoProcessor.from_pretrained(args.checkpoint)
    model = Qwen3ASRForConditionalGeneration.from_pretrained(args.checkpoint, device_map=args.device)
    timer = ForwardTimer(model, cuda=args.device == "cuda")
    loaded = Loaded(clock.wall_s(), _rss_now_mb(), str(model.dtype).removeprefix("torch."), timer)
    _start_peak_rss()

    window = WINDOW_S * SAMPLE_RATE
    starts = range(0, len(speech.samples), window)
    budgets = [max(1, round(args.tokens_per_s * speech.speech_s_between(s, s + window))) for s in starts]
    texts: list[dict] = []
    first_text_s = 0.0
    clock = Stopwatch()
    for start, budget in zip(starts, budgets, strict=True):
        inputs = processor.apply_transcription_request(audio=speech.samples[start : start + window])
        inputs = inputs.to(model.device, model.dtype)
        output = model.generate(**inputs, max_new_tokens=budget, min_new_tokens=budget)
        texts += processor.decode(output[:, inputs["input_ids"].shape[1] :], return_format="parsed")
        first_text_s = first_text_s or clock.wall_s()
    return _result(
        "reference",
        speech,
        args,
        loaded,
        clock,
        first_text_s=first_text_s,
        prep_s=0.0,
        batch_size=1,
        requests=len(budgets),
        retries=0,
        generate_calls=len(budgets),
        budget_tokens=sum(budgets),
        audio_pad_fraction=0.0,
        nonempty_texts=sum(1 for text in texts if text["transcription"]),
    )


def _result(
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
        peak_rss_mb=_peak_rss_mb(),
        peak_gpu_mb=torch.cuda.max_memory_allocated() / 2**20 if args.device == "cuda" else None,
        **measured,
    )


def worker(args: argparse.Namespace) -> None:
    """One measurement in this (fresh) process; prints one JSON line."""
    if args.worker == "build":
        write_checkpoint(args.checkpoint)
        return
    if args.worker == "build-aligner":
        write_aligner(aligner_folder(args.cache_dir))
        return
    speech = build_speech(args.audio_s, voiced_path=args.voiced)
    import torch
    import transformers

    transformers.utils.logging.disable_progress_bar()
    if args.threads:
        torch.set_num_threads(args.threads)
    run = run_reference if args.worker == "reference" else run_ours
    result = run(speech, args)
    print(json.dumps(dataclasses.asdict(result)), flush=True)


# ----------------------------------------------------------------------------------------------
# The driver: one subprocess per measurement, alternating implementations


@dataclass
class InputRow:
    """One input: the best round of each implementation, their ratio, and every round."""

    audio_s: float
    speech_s: float
    speedup: float  # reference wall / our wall (best rounds): our throughput / the reference's
    speedup_per_round: list[float]
    ours: RunResult
    reference: RunResult
    runs: list[RunResult]


def _spawn(args: argparse.Namespace, worker_kind: str, extra: list[str]) -> str:
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", worker_kind]
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
    if args.cuda_graphs:
        extra += ["--cuda-graphs"]
    if args.voiced:
        extra += ["--voiced", str(args.voiced)]
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


def summarize(runs: list[RunResult]) -> InputRow:
    by_impl = {impl: sorted((r for r in runs if r.impl == impl), key=lambda r: r.round) for impl in IMPLS}
    ours = min(by_impl["ours"], key=lambda r: r.wall_s)
    reference = min(by_impl["reference"], key=lambda r: r.wall_s)
    per_round = [ref.wall_s / our.wall_s for our, ref in zip(by_impl["ours"], by_impl["reference"], strict=False)]
    return InputRow(ours.audio_s, ours.speech_s, reference.wall_s / ours.wall_s, per_round, ours, reference, runs)


def _duration(seconds: float) -> str:
    return f"{seconds:.3g} s" if seconds < 60 else f"{seconds / 60:.3g} min"


HEADER = (
    "| input | impl | wall s | RTF | x real time | first text s | tokens (asked) | tok/s "
    "| encoder / prefill / decode / other s | ms per decode step (rows) | CPU s | peak RSS GB (at start) "
    "| load s | load avg |"
)


def _run_line(run: RunResult) -> str:
    steps = ", ".join(f"{ms:.0f} ({rows})" for rows, ms in run.step_ms.items())
    impl = run.impl if run.impl == "reference" else f"{run.impl}, batch {run.batch_size}"
    return (
        f"| {_duration(run.audio_s)} ({run.speech_s:.0f} s speech) | {impl} | {run.wall_s:.1f} "
        f"| {run.rtf:.3f} | {1 / run.rtf:.2f} | {run.first_text_s:.1f} | {run.tokens} ({run.budget_tokens}) "
        f"| {run.tokens_per_s:.2f} | {run.encoder_s:.1f} / {run.prefill_s:.1f} / {run.decode_s:.1f} / "
        f"{run.other_s:.1f} | {steps} | {run.cpu_s:.0f} "
        f"| {run.peak_rss_mb / 1024:.2f} ({run.rss_after_load_mb / 1024:.2f}) | {run.load_s:.1f} "
        f"| {run.load_avg[0]:.1f}-{run.load_avg[1]:.1f} |"
    )


def table(rows: list[InputRow]) -> str:
    """Markdown: per input, the best round of ours and of the reference, then their ratio."""
    lines = [HEADER, "|" + "---|" * (HEADER.count("|") - 1)]
    for row in rows:
        ours, ref = row.ours, row.reference
        rounds = ", ".join(f"{s:.2f}" for s in row.speedup_per_round)
        lines += [_run_line(ours), _run_line(ref)]
        lines.append(
            f"| {_duration(row.audio_s)} | **ours/ref** | {ours.wall_s / ref.wall_s:.2f} | | "
            f"**speedup {row.speedup:.2f}x** (rounds: {rounds}) | {ours.first_text_s / ref.first_text_s:.2f} "
            f"| {ours.tokens / ref.tokens:.2f} | {ours.tokens_per_s / ref.tokens_per_s:.2f} | "
            f"{_ratio(ours.encoder_s, ref.encoder_s)} / {_ratio(ours.prefill_s, ref.prefill_s)} / "
            f"{_ratio(ours.decode_s, ref.decode_s)} / {_ratio(ours.other_s, ref.other_s)} | "
            f"| {ours.cpu_s / ref.cpu_s:.2f} | {ours.peak_rss_mb / ref.peak_rss_mb:.2f} "
            f"| {ours.load_s / ref.load_s:.2f} | |"
        )
    return "\n".join(lines)


def runs_table(runs: list[RunResult]) -> str:
    """Markdown: every run, when only one implementation was measured (e.g. a batch-size sweep)."""
    return "\n".join([HEADER, "|" + "---|" * (HEADER.count("|") - 1), *map(_run_line, runs)])


def _best_rounds(runs: list[RunResult], impls: tuple[str, ...]) -> list[tuple[float, dict[str, RunResult]]]:
    """Per input length, in order: the fastest round of each of `impls`."""
    return [
        (audio_s, {impl: min((r for r in runs if r.audio_s == audio_s and r.impl == impl), key=lambda r: r.wall_s)
                   for impl in impls})
        for audio_s in sorted({run.audio_s for run in runs})
    ]  # fmt: skip


def decoder_ratios(runs: list[RunResult]) -> str:
    """Our loop / generate, per input: wall time (best rounds) and the median one-token step by batch rows."""
    lines = ["| input | wall loop / generate | step ms loop / generate (rows) |", "|---|---|---|"]
    for audio_s, best in _best_rounds(runs, DECODER_IMPLS):
        loop, generate = best[LOOP_IMPL], best[GENERATE_IMPL]
        shared = [rows for rows in loop.step_ms if rows in generate.step_ms]
        steps = ", ".join(
            f"{loop.step_ms[n]:.0f} / {generate.step_ms[n]:.0f} = {loop.step_ms[n] / generate.step_ms[n]:.2f} ({n})"
            for n in shared
        )
        lines.append(f"| {_duration(audio_s)} | {loop.wall_s / generate.wall_s:.2f} | {steps} |")
    return "\n".join(lines)


def word_timestamp_cost(runs: list[RunResult]) -> str:
    """With word timestamps / without, per input: wall time and peak memory (best rounds)."""
    lines = ["| input | wall with / without word timestamps | peak RSS with / without |", "|---|---|---|"]
    for audio_s, best in _best_rounds(runs, WORDS_IMPLS):
        words, plain = best[WORDS_IMPL], best["ours"]
        lines.append(
            f"| {_duration(audio_s)} | {words.wall_s:.1f} / {plain.wall_s:.1f} s = {words.wall_s / plain.wall_s:.2f} "
            f"| {words.peak_rss_mb / 1024:.2f} / {plain.peak_rss_mb / 1024:.2f} GB |"
        )
    return "\n".join(lines)


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b > 0 else "-"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="30 s (2 rounds) and 5 min (1 round)")
    parser.add_argument("--inputs", help="comma-separated input lengths in seconds (default 30,300,1800)")
    parser.add_argument("--rounds", type=int, help=f"rounds per input (default {FULL_ROUNDS}; --quick: 2 and 1)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's, one per core)")
    parser.add_argument("--batch-size", type=int, help="ours: chunks per generate call (default: the engine's)")
    parser.add_argument(
        "--impl",
        choices=(*IMPLS, LOOP_IMPL, GENERATE_IMPL, "both", "decoders"),
        default="both",
        help=f"one side only, or 'decoders': {LOOP_IMPL} (our decode loop) vs ours (the default, generate)",
    )
    parser.add_argument("--cuda-graphs", action="store_true", help=f"{LOOP_IMPL} on CUDA: replay its step as graphs")
    parser.add_argument(
        "--word-timestamps",
        action="store_true",
        help=f"ours without and with word timestamps ({WORDS_IMPL}), language forced to {WORDS_LANGUAGE}",
    )
    parser.add_argument("--voiced", type=Path, help="spoken sentences cache (.npz): read if there, else made here")
    parser.add_argument("--tokens-per-s", type=float, default=TOKENS_PER_S, help="debugging: fewer tokens")
    parser.add_argument("--max-audio", type=float, help="debugging: cap every input at this many seconds")
    parser.add_argument("--json", type=Path, help="write the rows (every round included) to this file")
    parser.add_argument("--cache-dir", type=Path, default=BENCH_DIR / ".cache")
    parser.add_argument(
        "--worker",
        choices=("build", "build-aligner", *IMPLS, LOOP_IMPL, GENERATE_IMPL, WORDS_IMPL),
        help=argparse.SUPPRESS,
    )
    parser.add_argument("--checkpoint", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--audio-s", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--round", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
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
    rows: list[InputRow] = []
    runs: list[RunResult] = []
    for audio_s, rounds in plan(args):
        for round_ in range(1, rounds + 1):
            for impl in impls:
                run = measure(args, impl, audio_s, round_)
                runs.append(run)
                print(
                    f"{_duration(audio_s)} round {round_} {impl}: wall {run.wall_s:.1f} s, first text "
                    f"{run.first_text_s:.1f} s, {run.tokens} tokens, load {run.load_s:.1f} s, "
                    f"peak RSS {run.peak_rss_mb / 1024:.2f} GB",
                    file=sys.stderr,
                    flush=True,
                )
        if impls == IMPLS:
            rows.append(summarize([run for run in runs if run.audio_s == audio_s]))
    threads = ", ".join(map(str, sorted({run.threads for run in runs})))
    print(f"\nDevice {args.device}, torch threads {threads}; {'best round per cell' if rows else 'every run'}.\n")
    print(table(rows) if rows else runs_table(runs))
    if impls == DECODER_IMPLS:
        print("\n" + decoder_ratios(runs))
    if impls == WORDS_IMPLS:
        print("\n" + word_timestamp_cost(runs))
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
