"""Silero VAD and chunking on real espeak-ng speech with known sentence positions."""

from __future__ import annotations

import itertools
import subprocess
import sys
import threading

import numpy as np
import pytest

from asr.audio import SAMPLE_RATE
from asr.options import VadOptions
from asr.segment import collect_chunks
from asr.vad import get_speech_spans
from testbed.speech import SENTENCES, silence, speak, speech_with_pauses

SR = SAMPLE_RATE
TOLERANCE = int(0.2 * SR)  # allowed slack at the edges of a sentence


def voiced(samples: np.ndarray, start: int, end: int) -> tuple[int, int]:
    """The part of [start, end) that is not silence: espeak-ng adds about 0.35 s of silence after each sentence."""
    loud = np.flatnonzero(np.abs(samples[start:end]) > 1e-3)
    return start + int(loud[0]), start + int(loud[-1]) + 1


def inside_a_sentence(position: int, sentences: list[tuple[int, int]]) -> bool:
    return any(start < position < end for start, end in sentences)


@pytest.fixture(scope="module")
def paused():
    """Four sentences with pauses of 1.0, 2.5 and 0.6 s: (samples, voiced sentence extents, VAD spans)."""
    samples, true_spans = speech_with_pauses(SENTENCES[:4], (1.0, 2.5, 0.6))
    sentences = [voiced(samples, a, b) for a, b in true_spans]
    return samples, sentences, get_speech_spans(samples, VadOptions())


@pytest.fixture(scope="module")
def continuous():
    """About 40 s of sentences joined by 0.15 s of silence, shorter than VAD's 0.3 s minimum pause."""
    parts, gaps, position = [silence(0.5)], [], int(0.5 * SR)
    index = 0
    while position < 40 * SR:
        sentence = speak(SENTENCES[index % len(SENTENCES)])
        start, end = voiced(sentence, 0, len(sentence))
        parts += [sentence[start:end], silence(0.15)]
        position += end - start
        gaps.append((position, position + len(parts[-1])))
        position += len(parts[-1])
        index += 1
    parts.append(silence(0.5))
    samples = np.concatenate(parts)
    return samples, gaps[:-1], get_speech_spans(samples, VadOptions())


def test_spans_cover_each_sentence(paused):
    _, sentences, spans = paused
    assert len(spans) == 4  # one span per sentence: their inner pauses are shorter than 0.3 s
    for (start, end), span in zip(sentences, spans, strict=True):
        assert span.start_sample <= start + TOLERANCE
        assert span.end_sample >= end - TOLERANCE


def test_no_span_in_the_long_pause(paused):
    _, sentences, spans = paused
    # The 2.5 s pause (plus espeak's trailing silence) lies between sentences 2 and 3; VAD pads
    # speech by 0.2 s, so nothing may reach more than 0.3 s into it.
    pause_start, pause_end = sentences[1][1] + int(0.3 * SR), sentences[2][0] - int(0.3 * SR)
    assert pause_end - pause_start > 2 * SR
    for span in spans:
        assert span.end_sample <= pause_start or span.start_sample >= pause_end, span


def test_spans_are_ordered_and_within_the_waveform(paused):
    samples, _, spans = paused
    assert spans, "speech must be found"
    for span in spans:
        assert 0 <= span.start_sample < span.end_sample <= len(samples)
    for earlier, later in itertools.pairwise(spans):
        assert earlier.end_sample <= later.start_sample


def test_chunk_borders_fall_in_pauses(paused):
    samples, sentences, spans = paused
    chunks = collect_chunks(samples, spans, max_chunk_s=24.0)
    # Everything would fit in 24 s, but the 2.5 s pause is longer than max_gap_s (2 s).
    assert len(chunks) == 2
    assert [len(c.spans) for c in chunks] == [2, 2]
    for chunk in chunks:
        assert not inside_a_sentence(chunk.start_sample, sentences)
        assert not inside_a_sentence(chunk.end_sample, sentences)


def test_short_chunks_still_cut_only_in_pauses(paused):
    samples, sentences, spans = paused
    speech_s = (sentences[-1][1] - sentences[0][0]) / SR
    assert speech_s > 6.0
    chunks = collect_chunks(samples, spans, max_chunk_s=6.0)
    assert len(chunks) == 4  # sentences 3 and 4 are 0.6 s apart but together longer than 6 s
    for chunk in chunks:
        assert chunk.num_samples <= 6 * SR
        assert not inside_a_sentence(chunk.start_sample, sentences)
        assert not inside_a_sentence(chunk.end_sample, sentences)
    for start, end in sentences:  # each sentence lies whole inside one chunk
        assert sum(c.start_sample <= start and end <= c.end_sample for c in chunks) == 1


@pytest.mark.parametrize("noise_amplitude", [0.0, 0.003])
def test_silence_has_no_speech(noise_amplitude):
    samples = (noise_amplitude * np.random.default_rng(3).standard_normal(10 * SR)).astype(np.float32)
    assert get_speech_spans(samples, VadOptions()) == []


def test_empty_audio_has_no_speech():
    assert get_speech_spans(np.zeros(0, np.float32), VadOptions()) == []


def test_long_continuous_speech_is_split_in_a_gap(continuous):
    samples, gaps, spans = continuous
    assert len(samples) > 40 * SR
    assert max(s.end_sample - s.start_sample for s in spans) > 24 * SR  # VAD did not split it for us
    chunks = collect_chunks(samples, spans, max_chunk_s=24.0)
    assert len(chunks) >= 2
    assert all(c.num_samples <= 24 * SR for c in chunks)
    cuts = [a.end_sample for a, b in itertools.pairwise(chunks) if a.end_sample == b.start_sample]
    assert cuts, "the long span must have been cut"
    for cut in cuts:
        assert any(start <= cut < end for start, end in gaps), f"cut at {cut / SR:.3f} s is not in a gap"
    assert chunks[0].start_sample == spans[0].start_sample and chunks[-1].end_sample == spans[-1].end_sample


def test_concurrent_calls_give_the_same_spans(paused):
    samples, _, expected = paused
    results: list[object] = [None] * 4

    def work(index: int) -> None:
        results[index] = get_speech_spans(samples, VadOptions())

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(results))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [expected] * len(results)


def test_vad_leaves_torch_thread_count_alone(paused):
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(3)  # not 1, which is what silero's import and our VAD call use inside
    try:
        get_speech_spans(paused[0][: 2 * SR], VadOptions())
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)


def test_importing_vad_does_not_import_torch():
    code = "import sys, asr.vad, asr.segment; sys.exit(int('torch' in sys.modules or 'silero_vad' in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_parallel_streams_find_what_silero_finds_sequentially():
    """Over several 60 s streams, our batched probabilities give Silero's own spans (within 2 windows)."""
    import silero_vad
    import torch

    sentences = SENTENCES * 6  # about 110 s: crosses many borders between 5 s streams
    samples, _ = speech_with_pauses(sentences, tuple(0.4 + 0.3 * (i % 5) for i in range(len(sentences) - 1)))
    options = VadOptions()
    ours = get_speech_spans(samples, options)
    with torch.inference_mode():
        reference = silero_vad.get_speech_timestamps(
            torch.from_numpy(samples),
            silero_vad.load_silero_vad(),
            sampling_rate=SAMPLE_RATE,
            threshold=options.threshold,
            min_speech_duration_ms=options.min_speech_duration_ms,
            min_silence_duration_ms=options.min_silence_duration_ms,
            speech_pad_ms=options.speech_pad_ms,
        )
    assert len(samples) > 2 * 60 * SAMPLE_RATE * 0.9 and len(ours) == len(reference) >= len(sentences) - 2
    for span, expected in zip(ours, reference, strict=True):
        assert abs(span.start_sample - expected["start"]) <= 2 * 512
        assert abs(span.end_sample - min(expected["end"], len(samples))) <= 2 * 512


def _peak_rss_mb() -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads and resets Linux's peak RSS (VmHWM)")
def test_the_scan_of_a_long_file_allocates_no_copy_of_it(paused):
    """20 minutes of audio are 77 MB of float32: the scan's peak memory must grow by far less than that."""
    samples = np.resize(paused[0], 20 * 60 * SAMPLE_RATE).astype(np.float32)
    get_speech_spans(samples[:SAMPLE_RATE], VadOptions())  # the model is loaded before the measurement
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")  # resets VmHWM to the current resident memory
    before = _peak_rss_mb()
    spans = get_speech_spans(samples, VadOptions())
    assert len(spans) > 100  # the whole file was scanned
    assert _peak_rss_mb() - before < samples.nbytes / 2**20 / 3
