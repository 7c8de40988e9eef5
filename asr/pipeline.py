"""`transcribe()`: decoded audio -> speech spans -> chunks -> engine batches -> segments.

The first chunk is transcribed on its own before `transcribe()` returns, for two reasons: the
first words reach the user within seconds whatever the file's length, and `TranscriptionInfo`
can name the detected language before the rest is generated. The remaining chunks are
generated lazily, batch by batch, as the caller iterates.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import BinaryIO, Protocol

import numpy as np

from .audio import SAMPLE_RATE, decode_audio
from .errors import DeviceMemoryError, TranscriptionCancelled
from .options import DecodeOptions, TranscribeOptions
from .results import Chunk, ChunkText, DecodedAudio, Segment, SegmentFlag, SourceInfo, Transcript, TranscriptionInfo
from .segment import collect_chunks
from .tempfiles import private_workdir
from .vad import get_speech_spans

logger = logging.getLogger(__name__)

AudioSource = str | os.PathLike | bytes | BinaryIO | DecodedAudio | np.ndarray
ProgressCallback = Callable[[float, float], None]  # (processed audio seconds, total audio seconds)

NO_SPEECH_NOTE = "no speech detected"
# A text counts as a decoding loop when its tail is one unit (up to this many characters)
# repeated at least _LOOP_MIN_REPEATS times over at least _LOOP_MIN_CHARS characters.
_LOOP_MAX_UNIT_CHARS = 50
_LOOP_MIN_REPEATS = 4
_LOOP_MIN_CHARS = 40


class Engine(Protocol):
    """What the pipeline needs from a speech model: `engine.QwenEngine`, or a fake in orchestration tests."""

    name: str
    default_batch_size: int

    def transcribe_chunks(
        self,
        chunks: Sequence[np.ndarray],
        *,
        language: str | None,
        context: str,
        max_new_tokens: int,
        repetition_penalty: float | None = None,
    ) -> list[ChunkText]: ...


def is_repetition_loop(text: str) -> bool:
    """True when the end of `text` is one short unit repeated over and over ("the the the ...")."""
    for unit_chars in range(1, min(_LOOP_MAX_UNIT_CHARS, len(text) // _LOOP_MIN_REPEATS) + 1):
        unit = text[-unit_chars:]
        repeats, end = 1, len(text) - unit_chars
        while end >= unit_chars and text[end - unit_chars : end] == unit:
            repeats, end = repeats + 1, end - unit_chars
        if repeats >= _LOOP_MIN_REPEATS and repeats * unit_chars >= _LOOP_MIN_CHARS:
            return True
    return False


def _as_decoded(audio: AudioSource, options: TranscribeOptions, workdir: Path) -> DecodedAudio:
    """Decode files and bytes; take arrays as mono float32 samples at 16 kHz, as they are."""
    if isinstance(audio, DecodedAudio):
        return audio
    if isinstance(audio, np.ndarray):
        samples = np.asarray(audio, dtype=np.float32).reshape(-1)
        facts = SourceInfo(len(samples) / SAMPLE_RATE, SAMPLE_RATE, 1, "pcm_f32le", "array")
        return DecodedAudio(samples, facts)
    return decode_audio(audio, max_duration_s=options.max_duration_s, spill_dir=workdir)


def _short_first_chunk(samples: np.ndarray, chunks: list[Chunk], options: TranscribeOptions) -> list[Chunk]:
    """Cut the first chunk at a pause to at most `first_chunk_s`; the rest of it becomes the second chunk.

    Decoding time grows with the chunk's text, so a short first chunk is what makes the first words
    come fast. The cut uses the same quietest-point rule as all chunking.
    """
    if not chunks or chunks[0].num_samples <= options.first_chunk_s * SAMPLE_RATE:
        return chunks
    head = chunks[0]
    first, *rest = collect_chunks(samples, list(head.spans), max_chunk_s=options.first_chunk_s)
    remainder = Chunk(rest[0].start_sample, head.end_sample, tuple(span for piece in rest for span in piece.spans))
    return [first, remainder, *chunks[1:]]


def _check_cancel(cancel: threading.Event | None, done: int) -> None:
    if cancel is not None and cancel.is_set():
        raise TranscriptionCancelled(f"Transcription cancelled after {done} finished segment(s).")


def _generate_fitting(engine: Engine, waves: list[np.ndarray], budgets: list[int], request: dict) -> list[ChunkText]:
    """Generate a batch; when the device runs out of memory, split it in halves and try again.

    Only a single chunk that does not fit is an error: the message says what to try.
    """
    try:
        return engine.transcribe_chunks(waves, max_new_tokens=max(budgets), **request)
    except DeviceMemoryError:
        if len(waves) == 1:
            raise
        half = len(waves) // 2
        logger.warning("Out of memory on a batch of %d chunks; retrying in halves", len(waves))
        return _generate_fitting(engine, waves[:half], budgets[:half], request) + _generate_fitting(
            engine, waves[half:], budgets[half:], request
        )


def _transcribe_batch(
    engine: Engine, samples: np.ndarray, chunks: Sequence[Chunk], decode: DecodeOptions
) -> list[Segment]:
    """Run one batch through the engine, retry loops once with a penalty, and place texts on the timeline."""
    waves = [samples[chunk.start_sample : chunk.end_sample] for chunk in chunks]
    budgets = [decode.max_new_tokens(chunk.num_samples / SAMPLE_RATE) for chunk in chunks]
    request = {"language": decode.language, "context": decode.context}
    results = _generate_fitting(engine, waves, budgets, request)
    segments = []
    for chunk, wave, budget, result in zip(chunks, waves, budgets, results, strict=True):
        flags: list[SegmentFlag] = []
        if is_repetition_loop(result.text):
            (result,) = engine.transcribe_chunks(
                [wave], max_new_tokens=budget, repetition_penalty=decode.retry_repetition_penalty, **request
            )
            flags.append(SegmentFlag.RETRIED)
            if is_repetition_loop(result.text):
                flags.append(SegmentFlag.REPETITION_LOOP)
        if not result.finished:
            flags.append(SegmentFlag.TOKEN_CAP)
        if result.text:
            start_s, end_s = chunk.start_sample / SAMPLE_RATE, chunk.end_sample / SAMPLE_RATE
            segments.append(Segment(start_s, end_s, result.text, result.language, tuple(flags)))
    return segments


def transcribe(
    audio: AudioSource,
    *,
    engine: Engine,
    options: TranscribeOptions | None = None,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> tuple[Iterator[Segment], TranscriptionInfo]:
    """Transcribe speech; segments come lazily, in time order, as batches finish.

    Args:
        audio: a path, bytes, a binary file object, `DecodedAudio`, or mono float32 samples at 16 kHz.
        engine: a loaded engine (e.g. `QwenEngine.load(...)`); shared, never modified.
        options: all settings; validated before any decoding or model work.
        progress: called with (processed seconds, total seconds) after each batch.
        cancel: set it from another thread to stop between batches.

    Returns:
        (segments, info): a lazy iterator of `Segment`s and the facts known before generation.
        Nothing after the first chunk runs until you iterate, so errors (including
        `TranscriptionCancelled`) can be raised while iterating. The run's private temporary
        folder is removed when the iterator ends, fails, is closed, or is garbage-collected.

    Raises:
        OptionsError, AudioDecodeError, TranscriptionCancelled, and engine errors.
    """
    options = options or TranscribeOptions()
    options.validate()
    cleanup = ExitStack()
    try:
        workdir = cleanup.enter_context(private_workdir())
        decoded = _as_decoded(audio, options, workdir)
        _check_cancel(cancel, 0)
        samples = decoded.samples
        if progress is not None:
            progress(0.0, len(samples) / SAMPLE_RATE)  # the total is known now; the first words come next
        spans = get_speech_spans(samples, options.vad)
        chunks = _short_first_chunk(samples, collect_chunks(samples, spans, max_chunk_s=options.max_chunk_s), options)
        _check_cancel(cancel, 0)
        first = _transcribe_batch(engine, samples, chunks[:1], options.decode) if chunks else []
    except BaseException:
        cleanup.close()
        raise
    duration_s = len(samples) / SAMPLE_RATE
    info = TranscriptionInfo(
        source=decoded.source,
        duration_s=duration_s,
        speech_s=sum(span.end_sample - span.start_sample for span in spans) / SAMPLE_RATE,
        num_chunks=len(chunks),
        language=options.decode.language or next((s.language for s in first if s.language), None),
        options=options,
        model=engine.name,
        notes=() if chunks else (NO_SPEECH_NOTE,),
    )
    logger.info("%.1f s of audio, %.1f s of speech in %d chunk(s)", duration_s, info.speech_s, len(chunks))
    segments = _generate_rest(engine, samples, chunks, first, options, progress, cancel, cleanup)
    weakref.finalize(segments, cleanup.close)  # also when the caller drops the iterator unstarted
    return segments, info


def _generate_rest(
    engine: Engine,
    samples: np.ndarray,
    chunks: list[Chunk],
    first: list[Segment],
    options: TranscribeOptions,
    progress: ProgressCallback | None,
    cancel: threading.Event | None,
    cleanup: ExitStack,
) -> Iterator[Segment]:
    """Yield the first chunk's segments, then generate and yield the other chunks batch by batch."""
    duration_s = len(samples) / SAMPLE_RATE
    batch_size = options.decode.batch_size or engine.default_batch_size
    done, position, ready = 0, min(1, len(chunks)), first
    with cleanup:
        while True:
            for segment in ready:
                done += 1
                yield segment
            if progress is not None:
                finished = position >= len(chunks)
                progress(duration_s if finished else chunks[position - 1].end_sample / SAMPLE_RATE, duration_s)
            if position >= len(chunks):
                return
            _check_cancel(cancel, done)
            batch = chunks[position : position + batch_size]
            ready = _transcribe_batch(engine, samples, batch, options.decode)
            position += len(batch)


def transcribe_all(
    audio: AudioSource,
    *,
    engine: Engine,
    options: TranscribeOptions | None = None,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> Transcript:
    """Like `transcribe`, but runs to the end and returns the whole `Transcript`."""
    segments, info = transcribe(audio, engine=engine, options=options, progress=progress, cancel=cancel)
    return Transcript(segments=tuple(segments), info=info)
