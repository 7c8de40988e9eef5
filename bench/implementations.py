"""The implementations compared: our pipeline (with its decoders, with word timestamps) and the plain
documented transformers usage, each measured in a worker process."""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from asr.audio import SAMPLE_RATE
from bench.checkpoints import aligner_folder
from bench.inputs import SyntheticSpeech
from bench.measurement import (
    AlignerTimer,
    ForwardTimer,
    Loaded,
    RunResult,
    Stopwatch,
    finish_run,
    rss_now_mb,
    start_peak_rss,
)
from testbed.voiced import EXTRA_SENTENCES

IMPLS = ("ours", "reference")


LOOP_IMPL = "ours-loop"  # our pipeline with our decode loop (asr/decode.py), the CPU's default


GENERATE_IMPL = "ours-generate"  # our pipeline with transformers' generate, the default on CUDA and MPS


DECODER_IMPLS = (LOOP_IMPL, GENERATE_IMPL)  # --impl decoders


WORDS_IMPL = "ours-words"  # our pipeline with word timestamps (a full-size random forced aligner)


WORDS_IMPLS = ("ours", WORDS_IMPL)  # --word-timestamps: both, in the same run, to report the aligner's cost


SPEAKERS_IMPL = "ours-speakers"  # our pipeline with speaker labels (the real CAM++ weights, auto count)


SPEAKERS_IMPLS = ("ours", SPEAKERS_IMPL)  # --speakers: both, in the same run, to report the labels' cost


WORDS_LANGUAGE = "English"  # forced in both, so that the aligner times every chunk (it needs a language it covers)


WINDOW_S = 30  # the feature extractor's chunk_length: the reference feeds one window per request
WORDS_PER_TOKEN = 0.75  # English with Qwen's tokenizer: about 1.3 tokens a word


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

    @property
    def device(self) -> str:
        return self.engine.device

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
            dataclasses.replace(result, text=english_words(round(result.num_tokens * self.words_per_token)))
            for result in results
        ]

    def fall_back_to_cpu(self) -> str | None:
        return self.engine.fall_back_to_cpu()


def english_words(count: int) -> str:
    """`count` words of the benchmark's sentences, in order, punctuation kept."""
    passage = " ".join(EXTRA_SENTENCES).split()
    return " ".join(passage[i % len(passage)] for i in range(count))


def run_ours(speech: SyntheticSpeech, args: argparse.Namespace) -> RunResult:
    import asr
    from asr.engine import QwenEngine  # imported before the clock starts, as the reference's transformers is
    from asr.vad import get_speech_spans

    clock = Stopwatch()
    decoder = {LOOP_IMPL: "loop", GENERATE_IMPL: "generate"}.get(args.worker, "auto")  # "ours": the default
    graphs = bool(args.cuda_graphs) and decoder == "loop"
    engine = QwenEngine.load(str(args.checkpoint), device=args.device, decoder=decoder, cuda_graphs=graphs)
    aligner = None
    if args.worker == WORDS_IMPL:
        from asr.aligner import QwenAligner

        aligner = QwenAligner.load(str(aligner_folder(args.cache_dir)), device=args.device)
    speakers = asr.SpeakerOptions() if args.worker == SPEAKERS_IMPL else None
    if speakers is not None:
        asr.load_speaker_model(engine.device)  # loaded with the engine, as the app's cache does
    get_speech_spans(np.zeros(SAMPLE_RATE, np.float32), asr.VadOptions())  # loads Silero once, as the app does
    timer = ForwardTimer(engine._model, cuda=args.device == "cuda")  # the engine keeps its model private
    aligner_timer = None if aligner is None else AlignerTimer(aligner, cuda=args.device == "cuda")
    loaded = Loaded(clock.wall_s(), rss_now_mb(), engine.info.dtype, timer)
    start_peak_rss()
    language = WORDS_LANGUAGE if args.word_timestamps else None
    decode = asr.DecodeOptions(
        tokens_per_s=args.tokens_per_s, min_new_tokens_budget=1, batch_size=args.batch_size, language=language
    )
    recording = RecordingEngine(engine, words_per_token=WORDS_PER_TOKEN if args.word_timestamps else None)

    clock = Stopwatch()
    min_chunk_s = args.min_chunk_s or asr.TranscribeOptions().min_chunk_s
    options = asr.TranscribeOptions(decode=decode, speakers=speakers, min_chunk_s=min_chunk_s)
    audio = getattr(args, "audio_file", None) or speech.samples  # a path with --from-file
    segments, _ = asr.transcribe(audio, engine=recording, options=options, aligner=aligner)
    first_text_s = clock.wall_s()  # the first chunk is generated before transcribe() returns
    calls = recording.calls
    first_split = timer.split(first_text_s, calls[0].started - clock.started if calls else first_text_s)
    texts = [segment.text for segment in segments]

    return finish_run(
        args.worker,
        speech,
        args,
        loaded,
        clock,
        first_text_s=first_text_s,
        first_text_split=first_split,
        prep_s=calls[0].started - clock.started if calls else 0.0,
        batch_size=args.batch_size or engine.default_batch_size,
        requests=sum(call.rows for call in calls),
        batch_rows=[call.rows for call in calls],
        sequential_steps=sum(call.max_new_tokens for call in calls),
        retries=sum(call.rows for call in calls if call.retry),
        generate_calls=len(calls),
        budget_tokens=sum(call.budgets for call in calls),
        audio_pad_fraction=1 - sum(c.samples for c in calls) / max(1, sum(c.padded_samples for c in calls)),
        nonempty_texts=len(texts),
        aligner_split=None if aligner_timer is None else aligner_timer.split(),
    )


def run_reference(speech: SyntheticSpeech, args: argparse.Namespace) -> RunResult:
    from transformers import AutoProcessor, Qwen3ASRForConditionalGeneration

    clock = Stopwatch()
    processor = AutoProcessor.from_pretrained(args.checkpoint)
    model = Qwen3ASRForConditionalGeneration.from_pretrained(args.checkpoint, device_map=args.device)
    timer = ForwardTimer(model, cuda=args.device == "cuda")
    loaded = Loaded(clock.wall_s(), rss_now_mb(), str(model.dtype).removeprefix("torch."), timer)
    start_peak_rss()

    window = WINDOW_S * SAMPLE_RATE
    starts = range(0, len(speech.samples), window)
    budgets = [max(1, round(args.tokens_per_s * speech.speech_s_between(s, s + window))) for s in starts]
    texts: list[dict] = []
    first_text_s = 0.0
    first_split: dict[str, float] = {}
    clock = Stopwatch()
    for start, budget in zip(starts, budgets, strict=True):
        inputs = processor.apply_transcription_request(audio=speech.samples[start : start + window])
        inputs = inputs.to(model.device, model.dtype)
        output = model.generate(**inputs, max_new_tokens=budget, min_new_tokens=budget)
        texts += processor.decode(output[:, inputs["input_ids"].shape[1] :], return_format="parsed")
        if not first_text_s:
            first_text_s = clock.wall_s()
            first_split = timer.split(first_text_s, 0.0)
    return finish_run(
        "reference",
        speech,
        args,
        loaded,
        clock,
        first_text_s=first_text_s,
        first_text_split=first_split,
        prep_s=0.0,
        batch_size=1,
        requests=len(budgets),
        batch_rows=[1] * len(budgets),
        sequential_steps=sum(budgets),
        retries=0,
        generate_calls=len(budgets),
        budget_tokens=sum(budgets),
        audio_pad_fraction=0.0,
        nonempty_texts=sum(1 for text in texts if text["transcription"]),
    )
