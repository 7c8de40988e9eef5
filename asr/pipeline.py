"""`transcribe()`: decoded audio -> speech spans -> chunks -> engine batches -> segments.

The first words come first. VAD scans only the file's first seconds, the first chunk (cut in a
pause to at most `first_chunk_s`) is transcribed alone, and `transcribe()` returns with it: the
first text and the language are there within about two seconds whatever the file's length. The
rest of the file is scanned and generated lazily, batch by batch, as the caller iterates; the last
batch (a short file's only one) is filled with shorter chunks, cut at pauses, so that it needs fewer
sequential decode steps (`segment.collect_batched_chunks`).
"""

from __future__ import annotations

import functools
import logging
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .audio import SAMPLE_RATE, AudioSource, decode_audio, release_resident_pages
from .chinese import convert_segment
from .errors import TranscriptionCancelled
from .generation import Aligner, Engine, GenerationRequest, NoticeCallback, align, generate_fitting
from .guards import is_context_echo, is_repetition_loop
from .options import DecodeOptions, TranscribeOptions
from .placement import segments_of_chunk
from .progress import RunProgress, ShareProgress, Stage, StageProgress, part_of
from .results import (
    Chunk,
    DecodedAudio,
    Segment,
    SegmentFlag,
    SourceInfo,
    SpeakerTurn,
    SpeechSpan,
    Transcript,
    TranscriptionInfo,
)
from .segment import chunk_waveform, collect_batched_chunks, collect_chunks
from .speakers import SpeakerEmbedder, find_speaker_turns, label_segments, load_speaker_model
from .tempfiles import private_workdir
from .vad import get_speech_spans

logger = logging.getLogger(__name__)

# What `transcribe` takes: anything `decode_audio` reads, decoded audio, or 16 kHz mono samples.
TranscribeInput = AudioSource | DecodedAudio | np.ndarray
SecondsProgress = Callable[[float, float], None]  # (processed audio seconds, total audio seconds)

NO_SPEECH_NOTE = "no speech detected"
# VAD first scans this many first_chunk_s of the file (4 s -> 10 s: under 0.2 s), enough to hold the first chunk.
_HEAD_CHUNKS = 2.5
_VAD_LEAD_IN_SAMPLES = SAMPLE_RATE  # the rest's VAD starts 1 s before the first chunk's end, to settle first
_SPEAKERS_SCAN_SHARE = 0.1  # of the speaker pass, its speech scan (5 min: 0.3 s of 16.5 s, docs/speakers.md)


def _as_decoded(
    audio: TranscribeInput, options: TranscribeOptions, workdir: Path, cancel: threading.Event | None
) -> DecodedAudio:
    """Decode files and bytes; take arrays as mono float32 samples at 16 kHz, as they are."""
    if isinstance(audio, DecodedAudio):
        return audio
    if isinstance(audio, np.ndarray):
        samples = np.asarray(audio, dtype=np.float32).reshape(-1)
        facts = SourceInfo(len(samples) / SAMPLE_RATE, SAMPLE_RATE, 1, "pcm_f32le", "array")
        return DecodedAudio(samples, facts)
    return decode_audio(audio, max_duration_s=options.max_duration_s, spill_dir=workdir, cancel=cancel)


def _first_chunk(samples: np.ndarray, spans: list[SpeechSpan], options: TranscribeOptions) -> Chunk | None:
    """The first chunk: the opening speech, cut (in a pause, by the usual rule) to at most `first_chunk_s`.

    Decoding time grows with the chunk's text, so a short first chunk is what makes the first words come fast.
    """
    return collect_chunks(samples, spans, max_chunk_s=options.first_chunk_s)[0] if spans else None


def _spans_from(spans: list[SpeechSpan], start: int) -> list[SpeechSpan]:
    """The parts of `spans` at or after sample `start`."""
    return [SpeechSpan(max(span.start_sample, start), span.end_sample) for span in spans if span.end_sample > start]


def _plan_first_chunk(
    samples: np.ndarray, options: TranscribeOptions, cancel: threading.Event | None, scan: ShareProgress | None
) -> tuple[Chunk | None, list[SpeechSpan] | None]:
    """Find the first chunk, scanning only the head of the file when that is enough.

    Returns the first chunk (None: no speech anywhere) and the speech spans after it when the whole
    file had to be scanned anyway (None: the rest is scanned later, after the first words are out).
    The head is enough when the first chunk ends inside it: a span cut off by the head's end would
    reach the head's last sample. `scan` hears of a scan of the whole file.
    """
    head_end = min(len(samples), round(_HEAD_CHUNKS * options.first_chunk_s * SAMPLE_RATE))
    spans = get_speech_spans(samples[:head_end], options.vad, cancel=cancel)
    first = _first_chunk(samples, spans, options)
    if head_end < len(samples) and (first is None or first.end_sample >= head_end):
        spans = get_speech_spans(samples, options.vad, cancel=cancel, progress=scan)  # late speech, or none
        first = _first_chunk(samples, spans, options)
    elif head_end < len(samples):
        return first, None
    return first, [] if first is None else _spans_from(spans, first.end_sample)


def _spans_after(
    samples: np.ndarray,
    start: int,
    options: TranscribeOptions,
    cancel: threading.Event | None,
    scan: ShareProgress | None,
) -> list[SpeechSpan]:
    """Speech spans from sample `start` on; the VAD starts a little earlier to settle on the audio before it."""
    lead_in = max(0, start - _VAD_LEAD_IN_SAMPLES)
    spans = get_speech_spans(samples[lead_in:], options.vad, cancel=cancel, progress=scan)
    moved = [SpeechSpan(span.start_sample + lead_in, span.end_sample + lead_in) for span in spans]
    return _spans_from(moved, start)


def _speaker_pass(
    samples: np.ndarray,
    options: TranscribeOptions,
    model: SpeakerEmbedder,
    cancel: threading.Event | None,
    progress: ShareProgress | None,
) -> tuple[list[SpeechSpan], tuple[SpeakerTurn, ...]]:
    """Who speaks when over the whole recording, and its speech spans (the scan is the pass's first part)."""
    assert options.speakers is not None  # only run with speakers on
    spans = get_speech_spans(samples, options.vad, cancel=cancel, progress=part_of(progress, 0.0, _SPEAKERS_SCAN_SHARE))
    found = part_of(progress, _SPEAKERS_SCAN_SHARE, 1.0)
    return spans, find_speaker_turns(samples, spans, options.speakers, model, cancel=cancel, progress=found)


def label_speakers(
    transcript: Transcript,
    samples: np.ndarray,
    *,
    speaker_model: SpeakerEmbedder,
    cancel: threading.Event | None = None,
    stage: StageProgress | None = None,
) -> Transcript:
    """`transcript` of `samples` (16 kHz mono) labelled by the speaker pass a file gets, with its options' speakers.

    For a transcript made in pieces (a live session's finals): the pass runs once over the whole recording, so
    a voice has one label from start to end. `stage` hears `Stage.SPEAKERS` from 0 to 1.
    """
    progress = None if stage is None else functools.partial(stage, Stage.SPEAKERS)
    if progress is not None:
        progress(0.0)
    _, turns = _speaker_pass(samples, transcript.info.options, speaker_model, cancel, progress)
    return Transcript(
        segments=tuple(label_segments(transcript.segments, turns)),
        info=replace(transcript.info, speaker_turns=turns),
    )


def _check_cancel(cancel: threading.Event | None, done: int) -> None:
    if cancel is not None and cancel.is_set():
        raise TranscriptionCancelled(f"Transcription cancelled after {done} finished segment(s).")


def _transcribe_batch(
    engine: Engine,
    aligner: Aligner | None,
    samples: np.ndarray,
    chunks: Sequence[Chunk],
    decode: DecodeOptions,
    notice: NoticeCallback | None,
    cancel: threading.Event | None,
    progress: RunProgress,
) -> list[Segment]:
    """Run one batch through the engine, retry loops once with a penalty, time the words, cut sentences.

    Each chunk's token budget follows its seconds of speech, not its length: pauses hold no words. A
    cancel stops the batch's generation at its next step, and its cut-short texts are dropped. The
    engine's and the aligner's progress inside the batch reach the caller through `progress` (`asr/progress.py`).
    """
    waves, timelines = zip(*(chunk_waveform(samples, chunk) for chunk in chunks), strict=True)
    speech_s = [chunk.speech_samples / SAMPLE_RATE for chunk in chunks]
    budgets = [decode.max_new_tokens(seconds) for seconds in speech_s]
    inside = progress.batch(chunks[-1].end_sample, sum(map(len, waves)) / SAMPLE_RATE, speech_s, budgets)
    request = GenerationRequest(list(waves), budgets, decode.language, decode.context, cancel, inside)
    results = generate_fitting(engine, request, notice)
    if inside is not None:
        inside.learn(results, speech_s)
    all_flags: list[list[SegmentFlag]] = []
    for index, result in enumerate(results):
        flags: list[SegmentFlag] = []
        if is_repetition_loop(result.text, decode.guards):
            retry = replace(request.part(index, index + 1), progress=None)  # the batch's share is all reported
            (result,) = retry.run(engine, decode.retry_repetition_penalty)
            results[index] = result
            flags.append(SegmentFlag.RETRIED)
            if is_repetition_loop(result.text, decode.guards):
                flags.append(SegmentFlag.REPETITION_LOOP)
        if not result.finished:
            flags.append(SegmentFlag.TOKEN_CAP)
        all_flags.append(flags)
    if cancel is not None and cancel.is_set():
        raise TranscriptionCancelled("Transcription cancelled while generating.")
    echoes = [is_context_echo(result.text, decode.context, decode.guards) for result in results]
    to_align = [replace(result, text="") if echo else result for result, echo in zip(results, echoes, strict=True)]
    aligned = align(aligner, list(waves), to_align, None if inside is None else inside.aligning)
    segments = []
    for result, tokens, chunk, timeline, flags, echo in zip(
        results, aligned, chunks, timelines, all_flags, echoes, strict=True
    ):
        if echo:  # kept in place, flagged, without the echoed text (echo.py)
            start_s, end_s = timeline.bounds_s
            segments.append(Segment(start_s, end_s, "", result.language, (*flags, SegmentFlag.CONTEXT_ECHO)))
        elif result.text:
            segments += segments_of_chunk(result, tokens, chunk, timeline, flags)
    return segments


def transcribe(
    audio: TranscribeInput,
    *,
    engine: Engine,
    options: TranscribeOptions | None = None,
    progress: SecondsProgress | None = None,
    cancel: threading.Event | None = None,
    notice: NoticeCallback | None = None,
    aligner: Aligner | None = None,
    speaker_model: SpeakerEmbedder | None = None,
    stage: StageProgress | None = None,
) -> tuple[Iterator[Segment], TranscriptionInfo]:
    """Transcribe speech; segments come lazily, in time order, as batches finish.

    Args:
        audio: a path, bytes, a binary file object, `DecodedAudio`, or mono float32 samples at 16 kHz.
        engine: a loaded engine (e.g. `QwenEngine.load(...)`); shared, never modified.
        options: all settings; validated before any decoding or model work.
        progress: called with (processed seconds, total seconds) after decoding, as each batch's prefill,
            decode steps and word times go on (`asr/progress.py`), and after each batch.
        cancel: set it from another thread to stop; decoding, speech detection and generation
            (at every decode step) all check it, so a run stops within a second or two; only the
            audio encoder and prefill of the current batch run to their end.
        notice: called with a sentence for the user when the run had to change course (the GPU ran
            out of memory and the model moved to the CPU).
        aligner: a loaded forced aligner (`QwenAligner.load(...)`) for word times; without one (or for
            a language it does not cover, or a chunk it fails on) word times are estimated from the
            speech found in the chunk, and the segments say so (`SegmentFlag.APPROXIMATE_TIMES`).
        speaker_model: with `options.speakers` set, the speaker embedder; None loads CAM++ once on the
            engine's device. With speakers on, the whole file is scanned and its speaker turns found before
            the first chunk is transcribed, so the first words wait for that (docs/speakers.md).
        stage: called with a `Stage` and its share done (0 at its start, 1 at its end) as the passes that
            move no processed seconds go on: finding speakers, the speech scan of the rest of the file; and
            as the aligner times each batch's words (those do move the processed seconds too).

    Returns:
        (segments, info): a lazy iterator of `Segment`s and the facts known once the first chunk is
        transcribed. Nothing after the first chunk runs until you iterate, so errors (including
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
        decoded = _as_decoded(audio, options, workdir, cancel)
        _check_cancel(cancel, 0)
        samples = decoded.samples
        if progress is not None:
            progress(0.0, len(samples) / SAMPLE_RATE)  # the total is known now; the first words come next
        run_progress = RunProgress(progress, len(samples), stage, aligned=aligner is not None)
        turns: tuple[SpeakerTurn, ...] = ()
        if options.speakers is None:
            first, rest_spans = _plan_first_chunk(samples, options, cancel, run_progress.of(Stage.SPEECH))
        else:
            model = speaker_model or load_speaker_model(engine.device)
            spans, turns = _speaker_pass(samples, options, model, cancel, run_progress.of(Stage.SPEAKERS))
            first = _first_chunk(samples, spans, options)
            rest_spans = [] if first is None else _spans_from(spans, first.end_sample)
        _check_cancel(cancel, 0)
        first_segments = (
            []
            if first is None
            else _transcribe_batch(engine, aligner, samples, [first], options.decode, notice, cancel, run_progress)
        )
    except BaseException:
        cleanup.close()
        raise
    info = TranscriptionInfo(
        source=decoded.source,
        duration_s=len(samples) / SAMPLE_RATE,
        language=options.decode.language or next((s.language for s in first_segments if s.language), None),
        options=options,
        model=engine.name,
        aligner=None if aligner is None else aligner.name,
        notes=(NO_SPEECH_NOTE,) if first is None else (),
        speaker_turns=turns,
    )
    run = _Run(engine, aligner, samples, options, run_progress, cancel, notice)
    segments = run.rest(first, first_segments, rest_spans, cleanup)
    weakref.finalize(segments, cleanup.close)  # also when the caller drops the iterator unstarted
    labelled = segments if options.speakers is None else label_segments(segments, turns)
    # Chinese in the script the user chose (chinese.py), apart from the batching above.
    return (convert_segment(segment, options.chinese_script) for segment in labelled), info


@dataclass(frozen=True)
class _Run:
    """What the lazy part of a run needs, in one place."""

    engine: Engine
    aligner: Aligner | None
    samples: np.ndarray
    options: TranscribeOptions
    progress: RunProgress
    cancel: threading.Event | None
    notice: NoticeCallback | None

    def _report(self, processed_sample: int) -> None:
        self.progress.at(processed_sample)

    def rest(
        self,
        first: Chunk | None,
        first_segments: list[Segment],
        rest_spans: list[SpeechSpan] | None,
        cleanup: ExitStack,
    ) -> Iterator[Segment]:
        """Yield the first chunk's segments, then scan the rest of the file and yield it batch by batch."""
        batch_size = self.options.decode.batch_size or self.engine.default_batch_size
        done = 0
        with cleanup:
            yield from first_segments
            done += len(first_segments)
            if first is not None:
                self._report(first.end_sample)
                if rest_spans is None:
                    _check_cancel(self.cancel, done)
                    scan = self.progress.of(Stage.SPEECH)
                    rest_spans = _spans_after(self.samples, first.end_sample, self.options, self.cancel, scan)
                release_resident_pages(self.samples)  # the scans read it all; each batch reads its chunks again
                chunks = collect_batched_chunks(
                    self.samples,
                    rest_spans,
                    max_chunk_s=self.options.max_chunk_s,
                    min_chunk_s=self.options.min_chunk_s,
                    batch_size=batch_size,
                )
                for position in range(0, len(chunks), batch_size):
                    _check_cancel(self.cancel, done)
                    batch = chunks[position : position + batch_size]
                    segments = _transcribe_batch(
                        self.engine,
                        self.aligner,
                        self.samples,
                        batch,
                        self.options.decode,
                        self.notice,
                        self.cancel,
                        self.progress,
                    )
                    release_resident_pages(self.samples)
                    yield from segments
                    done += len(segments)
                    self._report(batch[-1].end_sample)
                speech_s = (first.speech_samples + sum(c.speech_samples for c in chunks)) / SAMPLE_RATE
                logger.info("%.1f s of speech in %d chunk(s)", speech_s, 1 + len(chunks))
            self._report(len(self.samples))


def transcribe_all(
    audio: TranscribeInput,
    *,
    engine: Engine,
    options: TranscribeOptions | None = None,
    progress: SecondsProgress | None = None,
    cancel: threading.Event | None = None,
    notice: NoticeCallback | None = None,
    aligner: Aligner | None = None,
    speaker_model: SpeakerEmbedder | None = None,
    stage: StageProgress | None = None,
) -> Transcript:
    """Like `transcribe`, but runs to the end and returns the whole `Transcript`."""
    segments, info = transcribe(
        audio,
        engine=engine,
        options=options,
        progress=progress,
        cancel=cancel,
        notice=notice,
        aligner=aligner,
        speaker_model=speaker_model,
        stage=stage,
    )
    return Transcript(segments=tuple(segments), info=info)
