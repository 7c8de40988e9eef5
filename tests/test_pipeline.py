"""Orchestration: batching, order, progress, cancel, flags, and the real engine end to end.

The fake engine (tests/fakes.py) stands in for the model only where the test is about orchestration
(which chunks go in which batch, what happens to loops and caps); the last tests use the real
engine on the tiny checkpoint.
"""

from __future__ import annotations

import itertools
import threading
import time

import numpy as np
import pytest
from fakes import FakeEngine

import asr
from asr.results import SegmentFlag
from testbed.speech import MANDARIN_PINYIN, SENTENCES, silence, speak, speech_with_pauses


@pytest.fixture(scope="module")
def four_sentences():
    samples, spans = speech_with_pauses(SENTENCES[:4], (3.0, 3.0, 3.0))
    return samples, spans


def test_segments_come_in_time_order_in_batches(four_sentences):
    samples, spans = four_sentences
    engine = FakeEngine()
    options = asr.TranscribeOptions(decode=asr.DecodeOptions(language="English", context="Stella", batch_size=2))
    lazy, info = asr.transcribe(samples, engine=engine, options=options)
    assert len(engine.calls) == 1  # only the first chunk runs before iteration
    segments = list(lazy)
    assert [len(call["lengths"]) for call in engine.calls] == [1, 2, 1]
    assert [s.text for s in segments] == [f"chunk of {n} samples" for call in engine.calls for n in call["lengths"]]
    starts = [s.start_s for s in segments]
    assert starts == sorted(starts)
    for segment, (start, end) in zip(segments, spans, strict=True):
        assert segment.start_s * asr.SAMPLE_RATE <= start + 0.25 * asr.SAMPLE_RATE
        assert segment.end_s * asr.SAMPLE_RATE >= end - 0.25 * asr.SAMPLE_RATE
        assert 0 <= segment.start_s < segment.end_s <= info.duration_s
    assert all(call["language"] == "English" and call["context"] == "Stella" for call in engine.calls)
    assert info.language == "English" and info.model == "fake" and info.notes == ()


def test_budget_and_audio_follow_the_speech_not_the_pauses():
    """Two sentences 1.5 s apart make one chunk: its budget counts their speech, and the model hears the pause
    cut to 0.3 s; the segment still covers both sentences on the original timeline."""
    samples, spans = speech_with_pauses(SENTENCES[1:3], (1.5,), lead_s=0.5)
    engine = FakeEngine()
    decode = asr.DecodeOptions()
    options = asr.TranscribeOptions(decode=decode, first_chunk_s=12.0)  # one chunk, first and only
    transcript = asr.transcribe_all(samples, engine=engine, options=options)
    ((fed,),) = [call["lengths"] for call in engine.calls]
    ((budget,),) = [call["max_new_tokens"] for call in engine.calls]
    (segment,) = transcript.segments
    timeline = round((segment.end_s - segment.start_s) * asr.SAMPLE_RATE)
    spoken = sum(e - s for s, e in spans)
    tolerance = asr.SAMPLE_RATE // 4  # VAD may leave out the faint last milliseconds of a sentence
    start, end = segment.start_s * asr.SAMPLE_RATE, segment.end_s * asr.SAMPLE_RATE
    assert start <= spans[0][0] and end >= spans[1][1] - tolerance
    assert spoken - 2 * tolerance < fed < timeline - 0.5 * asr.SAMPLE_RATE  # all the speech, and less of the pause
    padded_speech_s = (fed - 0.3 * asr.SAMPLE_RATE) / asr.SAMPLE_RATE  # what is fed, less the 0.3 s pause kept
    assert budget == decode.max_new_tokens(padded_speech_s) < decode.max_new_tokens(timeline / asr.SAMPLE_RATE)


def test_each_chunk_of_a_batch_gets_its_own_budget(four_sentences):
    samples, _ = four_sentences
    engine = FakeEngine()
    list(
        asr.transcribe(samples, engine=engine, options=asr.TranscribeOptions(decode=asr.DecodeOptions(batch_size=3)))[0]
    )
    batch = next(call for call in engine.calls if len(call["lengths"]) == 3)
    # Each chunk here is one stretch of speech, so its speech seconds are its length; the sentences differ in length
    # (two of them by 0.1 s only, which may round to the same budget).
    decode = asr.DecodeOptions()
    assert batch["max_new_tokens"] == [decode.max_new_tokens(n / asr.SAMPLE_RATE) for n in batch["lengths"]]
    assert len(set(batch["max_new_tokens"])) > 1


def test_progress_reaches_the_total(four_sentences):
    samples, _ = four_sentences
    reports = []
    engine = FakeEngine()  # reports no steps inside a batch: only the pipeline's own reports remain
    lazy, info = asr.transcribe(samples, engine=engine, progress=lambda done, total: reports.append((done, total)))
    segments = list(lazy)
    total = info.duration_s
    batch_ends = itertools.accumulate(len(call["lengths"]) for call in engine.calls)
    # The total as soon as the audio is decoded, the end of each batch's last chunk, then the whole.
    assert reports == [(0.0, total), *[(segments[n - 1].end_s, total) for n in batch_ends], (total, total)]


def test_cancel_stops_between_batches(four_sentences):
    samples, _ = four_sentences
    cancel = threading.Event()
    engine = FakeEngine()
    segments, _ = asr.transcribe(
        samples, engine=engine, cancel=cancel, options=asr.TranscribeOptions(decode=asr.DecodeOptions(batch_size=1))
    )
    first = next(segments)
    cancel.set()
    with pytest.raises(asr.TranscriptionCancelled, match="after 1 finished segment"):
        next(segments)
    assert first.text and len(engine.calls) == 1


class _TimedBatches:
    """The real engine, timing its batches of several chunks; with `cancel`, it sets it `after_s` into each."""

    def __init__(self, engine, cancel: threading.Event | None = None, after_s: float = 0.0) -> None:
        self.engine, self.cancel, self.after_s = engine, cancel, after_s
        self.name, self.default_batch_size, self.device = engine.name, engine.default_batch_size, engine.device
        self.batch_s: list[float] = []

    def transcribe_chunks(self, chunks, **kwargs):
        if len(chunks) > 1 and self.cancel is not None:
            threading.Timer(self.after_s, self.cancel.set).start()
        started = time.monotonic()
        try:
            return self.engine.transcribe_chunks(chunks, **kwargs)
        finally:
            if len(chunks) > 1:
                self.batch_s.append(time.monotonic() - started)

    def fall_back_to_cpu(self):
        return None


def test_cancel_stops_generation_inside_a_batch(engine, four_sentences):
    """A CPU batch can take 20 s: a cancel must not wait for it. The tiny model never says end-of-text, so a
    generous budget makes the batch long."""
    options = asr.TranscribeOptions(decode=asr.DecodeOptions(tokens_per_s=100.0, batch_size=8))
    timed = _TimedBatches(engine)
    asr.transcribe_all(four_sentences[0], engine=timed, options=options)
    (batch_s,) = timed.batch_s  # the three chunks after the first, in one batch
    cancel = threading.Event()
    cancelled = _TimedBatches(engine, cancel, after_s=0.1 * batch_s)
    with pytest.raises(asr.TranscriptionCancelled, match="while generating"):
        asr.transcribe_all(four_sentences[0], engine=cancelled, options=options, cancel=cancel)
    assert cancelled.batch_s[0] < 0.5 * batch_s


def test_cancel_before_start_does_no_model_work(four_sentences):
    cancel = threading.Event()
    cancel.set()
    engine = FakeEngine()
    with pytest.raises(asr.TranscriptionCancelled):
        asr.transcribe(four_sentences[0], engine=engine, cancel=cancel)
    assert engine.calls == []


def test_loop_is_retried_once_with_a_penalty(four_sentences):
    engine = FakeEngine(loop_first_try=True)
    transcript = asr.transcribe_all(four_sentences[0][: 5 * asr.SAMPLE_RATE], engine=engine)
    (segment,) = transcript.segments
    assert segment.flags == (SegmentFlag.RETRIED, SegmentFlag.APPROXIMATE_TIMES)  # no aligner: estimated times
    assert segment.text.startswith("chunk of")
    assert [call["repetition_penalty"] for call in engine.calls] == [None, 1.15]


def test_unfinished_generation_is_flagged(four_sentences):
    transcript = asr.transcribe_all(four_sentences[0][: 5 * asr.SAMPLE_RATE], engine=FakeEngine(finished=False))
    assert transcript.segments[0].flags == (SegmentFlag.TOKEN_CAP, SegmentFlag.APPROXIMATE_TIMES)


def test_silence_gives_an_empty_transcript_with_a_note():
    engine = FakeEngine()
    rng = np.random.default_rng(0)
    quiet_noise = np.concatenate([silence(5.0), (rng.standard_normal(5 * asr.SAMPLE_RATE) * 1e-4).astype(np.float32)])
    transcript = asr.transcribe_all(quiet_noise, engine=engine)
    assert transcript.segments == () and transcript.text == ""
    assert transcript.info.notes == (asr.NO_SPEECH_NOTE,)
    assert engine.calls == []  # nothing invented: the model never ran


def test_bad_options_fail_before_any_work():
    engine = FakeEngine()
    with pytest.raises(asr.OptionsError, match="Unknown language 'Klingon'"):
        asr.transcribe(
            b"not even audio",
            engine=engine,
            options=asr.TranscribeOptions(decode=asr.DecodeOptions(language="Klingon")),
        )
    with pytest.raises(asr.OptionsError, match="Batch size"):
        asr.transcribe(b"", engine=engine, options=asr.TranscribeOptions(decode=asr.DecodeOptions(batch_size=0)))


def test_real_engine_end_to_end(engine, four_sentences):
    samples, _ = four_sentences
    transcript = asr.transcribe_all(samples, engine=engine)
    assert len(transcript.segments) == 4
    one_at_a_time = asr.TranscribeOptions(decode=asr.DecodeOptions(batch_size=1))
    alone = asr.transcribe_all(samples, engine=engine, options=one_at_a_time)
    # Each chunk got its own text: the one it gets decoded alone. (Two chunks may share a text: with random weights
    # the float32 model says the same for the second and third sentence, so the texts are not all distinct.)
    assert [s.text for s in transcript.segments] == [s.text for s in alone.segments]
    assert len({s.text for s in transcript.segments}) >= 2  # the audio reached the model
    for segment in transcript.segments:
        assert "<asr_text>" not in segment.text and segment.language != "None"
        assert SegmentFlag.TOKEN_CAP in segment.flags  # random weights never say end-of-text


def test_mandarin_speech_with_forced_chinese(engine):
    mandarin = np.concatenate([silence(1.0), speak(MANDARIN_PINYIN, voice="cmn-latn-pinyin"), silence(1.0)])
    options = asr.TranscribeOptions(decode=asr.DecodeOptions(language=asr.normalize_language("zh")))
    transcript = asr.transcribe_all(mandarin, engine=engine, options=options)
    (segment,) = transcript.segments
    assert segment.end_s - segment.start_s > 1.0 and transcript.languages == ("Chinese",)
    assert 0.5 < segment.start_s < 1.0 and segment.end_s < transcript.info.duration_s - 0.5  # VAD trimmed silence


def test_first_chunk_is_short_and_cut_in_a_pause():
    samples, spans = speech_with_pauses(SENTENCES[:3], (0.5, 0.5))  # about 13 s that VAD keeps as one chunk
    engine = FakeEngine()
    lazy, _ = asr.transcribe(samples, engine=engine)
    first_call = engine.calls[0]["lengths"]
    limit = asr.TranscribeOptions().first_chunk_s * asr.SAMPLE_RATE
    assert len(first_call) == 1 and first_call[0] <= limit  # alone, and short: fast first words
    segments = list(lazy)
    assert len(segments) >= 2
    cut_s = segments[0].end_s
    assert _in_a_pause(cut_s, spans)
    assert segments[1].start_s >= cut_s and segments[-1].end_s >= spans[-1][1] / asr.SAMPLE_RATE - 0.25


def _in_a_pause(time_s: float, spans: list[tuple[int, int]]) -> bool:
    """Whether `time_s` lies in a pause between two of the sentences (give or take VAD's padding)."""
    pauses = [(end / asr.SAMPLE_RATE, start / asr.SAMPLE_RATE) for (_, end), (start, _) in itertools.pairwise(spans)]
    return any(pause_start - 0.25 <= time_s <= pause_end + 0.25 for pause_start, pause_end in pauses)


def test_a_short_file_fills_one_batch_with_chunks_cut_at_its_pauses():
    """After the first chunk, 25 s would be two chunks (24 s and the rest), each decoded to its end; cut at its
    pauses instead, it fills one batch of shorter chunks, and no speech is lost."""
    samples, spans = speech_with_pauses(SENTENCES + SENTENCES[:2], (0.6,) * 6)
    decode = asr.DecodeOptions(batch_size=8)
    before = FakeEngine()
    asr.transcribe_all(samples, engine=before, options=asr.TranscribeOptions(decode=decode, min_chunk_s=24.0))
    assert [len(call["lengths"]) for call in before.calls] == [1, 2]
    engine = FakeEngine()
    transcript = asr.transcribe_all(samples, engine=engine, options=asr.TranscribeOptions(decode=decode))
    first, batch = (call["lengths"] for call in engine.calls)
    assert len(first) == 1 and first == before.calls[0]["lengths"]  # the first chunk alone, as before
    assert 4 <= len(batch) <= 8 and max(batch) <= 0.5 * max(before.calls[1]["lengths"])
    assert max(batch) >= asr.TranscribeOptions().min_chunk_s * asr.SAMPLE_RATE  # no shorter than it must be
    segments = transcript.segments
    assert len(segments) == 1 + len(batch)
    for earlier, later in itertools.pairwise(segments):
        assert earlier.end_s <= later.start_s and _in_a_pause(later.start_s, spans)
    margin = asr.SAMPLE_RATE // 4
    covered = [(s.start_s * asr.SAMPLE_RATE, s.end_s * asr.SAMPLE_RATE) for s in segments]
    for start, end in spans:  # every sentence is in the chunks
        for point in range(start + margin, end - margin, asr.SAMPLE_RATE // 10):
            assert any(a <= point <= b for a, b in covered), f"sample {point} of a sentence is in no segment"


def test_out_of_memory_splits_the_batch_until_it_fits(four_sentences):
    samples, _ = four_sentences
    engine = FakeEngine(max_rows=1)  # a device that holds one chunk at a time
    options = asr.TranscribeOptions(decode=asr.DecodeOptions(batch_size=3))
    transcript = asr.transcribe_all(samples, engine=engine, options=options)
    assert len(transcript.segments) == 4  # nothing lost
    assert [len(c["lengths"]) for c in engine.calls] == [1, 3, 1, 2, 1, 1]  # 3 -> 1 + 2 -> 1 + 1
    assert [c.get("out_of_memory", False) for c in engine.calls] == [False, True, False, True, False, False]


def test_a_single_chunk_that_does_not_fit_is_a_clear_error_on_the_cpu(four_sentences):
    with pytest.raises(asr.DeviceMemoryError, match="Ran out of cuda memory"):
        asr.transcribe_all(four_sentences[0], engine=FakeEngine(max_rows=0))


def test_out_of_memory_for_one_chunk_moves_to_the_cpu_says_so_and_completes(four_sentences):
    """A GPU cannot run here: the fake engine plays one whose memory holds no chunk at all."""
    samples, _ = four_sentences
    engine = FakeEngine(max_rows=0, cpu_fallback=True)
    notices: list[str] = []
    transcript = asr.transcribe_all(samples, engine=engine, notice=notices.append)
    assert len(transcript.segments) == 4  # the run completed
    assert notices == ["The cuda ran out of memory even for one chunk, so the model moved to the CPU."]
    assert engine.on_cpu and [c.get("out_of_memory", False) for c in engine.calls][:2] == [True, False]


def test_the_first_words_come_before_the_rest_of_a_long_file_is_scanned(monkeypatch):
    """With speech at the start, VAD reads only the head before the first chunk; the rest waits for iteration."""
    from asr import pipeline

    sentences = SENTENCES * 4
    samples, spans = speech_with_pauses(sentences, (1.0,) * (len(sentences) - 1))
    scanned: list[int] = []
    real_vad = pipeline.get_speech_spans

    def counting_vad(audio, *args, **kwargs):
        scanned.append(len(audio))
        return real_vad(audio, *args, **kwargs)

    monkeypatch.setattr(pipeline, "get_speech_spans", counting_vad)
    options = asr.TranscribeOptions()
    lazy, _ = asr.transcribe(samples, engine=FakeEngine(), options=options)
    head = round(2.5 * options.first_chunk_s * asr.SAMPLE_RATE)
    assert scanned == [head]  # the first words are out; the rest of the file is not scanned yet
    segments = list(lazy)
    assert len(scanned) == 2 and len(samples) - head < scanned[1] < len(samples)  # the rest, once
    covered = [(s.start_s * asr.SAMPLE_RATE, s.end_s * asr.SAMPLE_RATE) for s in segments]
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(covered))
    margin = asr.SAMPLE_RATE // 4
    for start, end in spans:  # no speech lost between the head and the rest
        for point in range(start + margin, end - margin, asr.SAMPLE_RATE // 10):
            assert any(a <= point <= b for a, b in covered), f"sample {point} of a sentence is in no segment"


def test_cancel_stops_decoding_a_long_file_at_once(tmp_path):
    """Decoding is cancelled between blocks, not after the whole file (here: 20 min of FLAC)."""
    import soundfile as sf

    path = tmp_path / "long.flac"
    sf.write(path, np.zeros(20 * 60 * asr.SAMPLE_RATE, np.float32), asr.SAMPLE_RATE)
    cancel = threading.Event()
    threading.Timer(0.05, cancel.set).start()
    started = time.monotonic()
    with pytest.raises(asr.TranscriptionCancelled, match="while decoding"):
        asr.decode_audio(path, cancel=cancel)
    cancelled_after = time.monotonic() - started
    started = time.monotonic()
    asr.decode_audio(path)
    assert cancelled_after < 0.5 * (time.monotonic() - started) + 0.05


def test_cancel_stops_the_speech_scan_of_a_long_file():
    from asr.vad import get_speech_spans

    samples = speech_with_pauses(SENTENCES, (1.0,) * (len(SENTENCES) - 1))[0]
    long = np.tile(samples, 60)  # about 20 minutes
    cancel = threading.Event()
    threading.Timer(0.05, cancel.set).start()
    started = time.monotonic()
    with pytest.raises(asr.TranscriptionCancelled, match="looking for speech"):
        get_speech_spans(long, asr.VadOptions(), cancel=cancel)
    cancelled_after = time.monotonic() - started
    started = time.monotonic()
    get_speech_spans(long, asr.VadOptions())
    assert cancelled_after < 0.5 * (time.monotonic() - started) + 0.05
