"""collect_chunks and collect_batched_chunks on tiny synthetic waveforms with hand-computed expected chunks."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from asr.audio import SAMPLE_RATE
from asr.results import Chunk, SpeechSpan
from asr.segment import chunk_waveform, collect_batched_chunks, collect_chunks

SR = SAMPLE_RATE  # 16 000: 0.1 s is 1 600 samples


def bounds(chunks: list[Chunk]) -> list[tuple[int, int]]:
    return [(c.start_sample, c.end_sample) for c in chunks]


def span_tuples(chunk: Chunk) -> list[tuple[int, int]]:
    return [(s.start_sample, s.end_sample) for s in chunk.spans]


def spans(*pairs: tuple[int, int]) -> list[SpeechSpan]:
    return [SpeechSpan(a, b) for a, b in pairs]


def noise_layout(layout: list[tuple[float, float]], seed: int = 0) -> np.ndarray:
    """Concatenate stretches of white noise given as (seconds, amplitude); amplitude 0 is digital silence."""
    rng = np.random.default_rng(seed)
    parts = [amplitude * rng.standard_normal(round(seconds * SR)) for seconds, amplitude in layout]
    return np.concatenate(parts).astype(np.float32)


def test_no_spans_gives_no_chunks():
    assert collect_chunks(np.zeros(SR, np.float32), [], max_chunk_s=2.0) == []


def test_one_short_span_is_one_chunk():
    chunks = collect_chunks(np.zeros(SR, np.float32), spans((1600, 8000)), max_chunk_s=2.0)
    assert chunks == [Chunk(1600, 8000, (SpeechSpan(1600, 8000),))]
    assert chunk_waveform(np.zeros(SR, np.float32), chunks[0])[1].bounds_s == (0.1, 0.5)


def test_close_spans_are_merged_with_the_silence_between_them():
    chunks = collect_chunks(np.zeros(2 * SR, np.float32), spans((1600, 8000), (16000, 24000)), max_chunk_s=2.0)
    assert bounds(chunks) == [(1600, 24000)]
    assert span_tuples(chunks[0]) == [(1600, 8000), (16000, 24000)]


def test_gap_longer_than_max_gap_starts_a_new_chunk():
    # 0.5 s, then 2.5 s of silence, then 0.5 s: would fit in 10 s, but the silence is too long.
    samples = np.zeros(4 * SR, np.float32)
    chunks = collect_chunks(samples, spans((0, 8000), (48000, 56000)), max_chunk_s=10.0)
    assert bounds(chunks) == [(0, 8000), (48000, 56000)]
    # A gap of exactly max_gap_s (2.0 s = 32 000 samples) is still kept inside one chunk.
    chunks = collect_chunks(samples, spans((0, 8000), (40000, 48000)), max_chunk_s=10.0)
    assert bounds(chunks) == [(0, 48000)]
    # A smaller max_gap_s splits that one too.
    chunks = collect_chunks(samples, spans((0, 8000), (40000, 48000)), max_chunk_s=10.0, max_gap_s=1.0)
    assert bounds(chunks) == [(0, 8000), (40000, 48000)]


def test_chunk_never_exceeds_max_and_the_short_last_chunk_is_kept():
    # max 2 s = 32 000 samples: (0, 30000) fits, adding the third span would make 40 000.
    samples = np.zeros(3 * SR, np.float32)
    chunks = collect_chunks(samples, spans((0, 16000), (20000, 30000), (34000, 40000)), max_chunk_s=2.0)
    assert bounds(chunks) == [(0, 30000), (34000, 40000)]
    assert span_tuples(chunks[1]) == [(34000, 40000)]
    # Exactly max_chunk_s still fits in one chunk.
    chunks = collect_chunks(samples, spans((0, 16000), (20000, 32000)), max_chunk_s=2.0)
    assert bounds(chunks) == [(0, 32000)]


def test_spans_are_sorted_merged_and_clamped_to_the_waveform():
    samples = np.zeros(SR, np.float32)  # 16 000 samples
    given = spans((9000, 20000), (1000, 3000), (2500, 4000), (-500, 200), (16000, 17000))
    chunks = collect_chunks(samples, given, max_chunk_s=0.5)  # 8 000 samples
    assert bounds(chunks) == [(0, 4000), (9000, 16000)]
    assert span_tuples(chunks[0]) == [(0, 200), (1000, 4000)]


def test_over_long_span_is_cut_in_the_middle_of_the_latest_silent_gap():
    # 4 s of loud noise with two 0.12 s stretches of digital silence at 1.40 s and 2.90 s.
    samples = noise_layout([(1.40, 0.3), (0.12, 0.0), (1.38, 0.3), (0.12, 0.0), (0.98, 0.3)])
    assert len(samples) == 64000
    chunks = collect_chunks(samples, spans((0, 64000)), max_chunk_s=2.0)
    # First piece: 20 ms frames from 0; frames 70..75 are silent, the 100 ms windows centred on
    # frames 72 and 73 are all silent, the later one is 73, the middle of that run is frame 72:
    # cut = 72 * 320 + 160 = 23200 (1.45 s). Second piece from 23200: frames 73..77 lie in the
    # gap [46400, 48320), only the window centred on 75 is silent: cut = 23200 + 75 * 320 + 160.
    assert bounds(chunks) == [(0, 23200), (23200, 47360), (47360, 64000)]
    assert [span_tuples(c) for c in chunks] == [[(0, 23200)], [(23200, 47360)], [(47360, 64000)]]


def test_over_long_span_of_words_is_cut_inside_the_quietest_pause():
    word, pause, quiet_pause = (0.3, 0.3), (0.16, 0.02), (0.16, 0.002)
    silent_pause = (0.16, 0.0)  # quieter still, but at 0.76 s: before 50 % of max_chunk_s, too early to cut
    layout = [word, pause, word, silent_pause, word, pause, word, quiet_pause, word]  # quiet pause at 1.68 s
    layout += [pause, word, pause, word, pause, word, pause, word, quiet_pause, word]  # and at 3.98 s
    samples = noise_layout(layout, seed=1)
    ends = np.cumsum([round(seconds * SR) for seconds, _ in layout])
    quiet_gaps = [
        (int(end) - int(0.16 * SR), int(end)) for end, part in zip(ends, layout, strict=True) if part is quiet_pause
    ]
    assert quiet_gaps == [(26880, 29440), (63680, 66240)]  # 1.68-1.84 s and 3.98-4.14 s
    chunks = collect_chunks(samples, spans((0, len(samples))), max_chunk_s=2.5)
    assert len(chunks) == 3
    cuts = [c.end_sample for c in chunks[:-1]]
    for cut, (gap_start, gap_end) in zip(cuts, quiet_gaps, strict=True):
        assert gap_start < cut < gap_end, (cut, gap_start, gap_end)
    assert chunks[0].start_sample == 0 and chunks[-1].end_sample == len(samples)
    assert all(a.end_sample == b.start_sample for a, b in itertools.pairwise(chunks))


def test_tiny_max_chunk_falls_back_to_cutting_at_the_limit():
    # 0.01 s = 160 samples is less than one 20 ms energy frame: pieces are cut at exactly the limit.
    chunks = collect_chunks(np.ones(400, np.float32), spans((0, 400)), max_chunk_s=0.01)
    assert bounds(chunks) == [(0, 160), (160, 320), (320, 400)]


def test_random_spans_are_covered_by_ordered_chunks_within_the_limit():
    rng = np.random.default_rng(7)
    for _ in range(40):
        num_samples = int(rng.integers(SR, 12 * SR))
        samples = (rng.standard_normal(num_samples) * rng.uniform(0.0, 0.5, num_samples)).astype(np.float32)
        edges = np.sort(rng.choice(num_samples, size=2 * int(rng.integers(1, 8)), replace=False))
        given = spans(*zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))
        max_chunk_s = float(rng.uniform(0.5, 3.0))
        max_gap_s = float(rng.uniform(0.0, 2.0))
        chunks = collect_chunks(samples, given, max_chunk_s=max_chunk_s, max_gap_s=max_gap_s)

        covered = np.zeros(num_samples, bool)
        for chunk in chunks:
            assert 0 < chunk.num_samples <= int(max_chunk_s * SR)
            assert chunk.start_sample == chunk.spans[0].start_sample
            assert chunk.end_sample == chunk.spans[-1].end_sample
            covered[chunk.start_sample : chunk.end_sample] = True
        for earlier, later in itertools.pairwise(chunks):
            assert earlier.end_sample <= later.start_sample  # time order, no overlap
        for span in given:
            assert covered[span.start_sample : span.end_sample].all()  # no speech dropped
        pieces = [s for c in chunks for s in c.spans]
        assert sum(s.end_sample - s.start_sample for s in pieces) == sum(s.end_sample - s.start_sample for s in given)


@pytest.mark.parametrize("max_chunk_s, max_gap_s", [(0.0, 2.0), (-1.0, 2.0), (2.0, -0.1)])
def test_bad_limits_are_refused(max_chunk_s, max_gap_s):
    with pytest.raises(ValueError):
        collect_chunks(np.zeros(SR, np.float32), spans((0, 100)), max_chunk_s=max_chunk_s, max_gap_s=max_gap_s)


# --- the last batch filled with shorter chunks ------------------------------------------------------------


def seconds(chunks: list[Chunk]) -> list[tuple[float, float]]:
    return [(c.start_sample / SR, c.end_sample / SR) for c in chunks]


def one_second_spans(count: int) -> list[SpeechSpan]:
    """`count` spans of 1 s with 0.5 s pauses between them: span i is [1.5 i, 1.5 i + 1] s."""
    return spans(*((round(1.5 * i * SR), round((1.5 * i + 1) * SR)) for i in range(count)))


def test_a_short_file_is_cut_at_its_pauses_into_the_fewest_steps_that_fit_one_batch():
    samples, given = np.zeros(16 * SR, np.float32), one_second_spans(10)
    assert len(collect_chunks(samples, given, max_chunk_s=24.0)) == 1
    chunks = collect_batched_chunks(samples, given, max_chunk_s=24.0, min_chunk_s=2.0, batch_size=4)
    # Four chunks hold the ten spans with at most three spans (4 s) each; 2.5 s chunks would need five.
    assert seconds(chunks) == [(0.0, 4.0), (4.5, 8.5), (9.0, 13.0), (13.5, 14.5)]
    assert [len(c.spans) for c in chunks] == [3, 3, 3, 1]


def test_chunks_are_not_cut_shorter_than_min_chunk_s():
    samples, given = np.zeros(16 * SR, np.float32), one_second_spans(10)
    chunks = collect_batched_chunks(samples, given, max_chunk_s=24.0, min_chunk_s=4.0, batch_size=8)
    assert seconds(chunks) == [(0.0, 4.0), (4.5, 8.5), (9.0, 13.0), (13.5, 14.5)]  # 8 would fit, but not under 4 s
    same = collect_batched_chunks(samples, given, max_chunk_s=24.0, min_chunk_s=24.0, batch_size=8)
    assert same == collect_chunks(samples, given, max_chunk_s=24.0)  # min_chunk_s = max_chunk_s: as before


def test_full_batches_keep_their_chunks_and_only_the_last_batch_is_cut_again():
    samples = np.zeros(18 * SR, np.float32)
    given = spans((0, 56000), (104000, 160000), (208000, 224000), (232000, 248000), (256000, 272000))
    assert seconds(collect_chunks(samples, given, max_chunk_s=4.0)) == [(0.0, 3.5), (6.5, 10.0), (13.0, 17.0)]
    chunks = collect_batched_chunks(samples, given, max_chunk_s=4.0, min_chunk_s=1.0, batch_size=2)
    assert seconds(chunks) == [(0.0, 3.5), (6.5, 10.0), (13.0, 15.5), (16.0, 17.0)]


def test_speech_without_a_pause_is_not_cut_shorter():
    samples = (0.1 * np.random.default_rng(3).standard_normal(22 * SR)).astype(np.float32)
    chunks = collect_batched_chunks(samples, spans((SR, 21 * SR)), max_chunk_s=24.0, min_chunk_s=2.0, batch_size=8)
    assert seconds(chunks) == [(1.0, 21.0)]


def test_a_batch_size_of_one_changes_nothing():
    samples, given = np.zeros(16 * SR, np.float32), one_second_spans(10)
    chunks = collect_batched_chunks(samples, given, max_chunk_s=5.0, min_chunk_s=2.0, batch_size=1)
    assert chunks == collect_chunks(samples, given, max_chunk_s=5.0)


def test_random_spans_are_cut_again_only_between_pieces_and_only_in_the_last_batch():
    rng = np.random.default_rng(11)
    for _ in range(40):
        num_samples = int(rng.integers(2 * SR, 30 * SR))
        samples = (rng.standard_normal(num_samples) * rng.uniform(0.0, 0.5, num_samples)).astype(np.float32)
        edges = np.sort(rng.choice(num_samples, size=2 * int(rng.integers(1, 20)), replace=False))
        given = spans(*zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))
        max_chunk_s, min_chunk_s = float(rng.uniform(1.0, 6.0)), float(rng.uniform(0.2, 1.0))
        batch_size = int(rng.integers(1, 6))
        plain = collect_chunks(samples, given, max_chunk_s=max_chunk_s)
        chunks = collect_batched_chunks(
            samples, given, max_chunk_s=max_chunk_s, min_chunk_s=min_chunk_s, batch_size=batch_size
        )
        full = len(plain) - len(plain) % batch_size
        assert chunks[:full] == plain[:full]
        assert full <= len(chunks) <= full + batch_size and len(chunks) >= len(plain)
        # The same pieces, in the same order: every new cut lies between two of them, none inside one.
        assert [s for c in chunks for s in c.spans] == [s for c in plain for s in c.spans]
        for chunk in chunks:
            assert 0 < chunk.num_samples <= int(max_chunk_s * SR)
            assert (chunk.start_sample, chunk.end_sample) == (chunk.spans[0].start_sample, chunk.spans[-1].end_sample)


@pytest.mark.parametrize("min_chunk_s, batch_size", [(0.0, 4), (2.0, 0)])
def test_bad_batch_limits_are_refused(min_chunk_s, batch_size):
    with pytest.raises(ValueError):
        collect_batched_chunks(
            np.zeros(SR, np.float32), spans((0, 100)), max_chunk_s=2.0, min_chunk_s=min_chunk_s, batch_size=batch_size
        )
