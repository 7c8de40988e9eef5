"""Times measured in a chunk's shortened audio, mapped back onto the original recording (`ChunkTimeline`)."""

from __future__ import annotations

import numpy as np
import pytest

from asr.audio import SAMPLE_RATE
from asr.placement import ChunkTimeline
from asr.results import Chunk, SpeechSpan
from asr.segment import chunk_waveform

SR = SAMPLE_RATE

# Speech at 1-2 s and 5-6 s; the 3 s pause between them is cut to 0.15 s from each side.
SPEECH = (SpeechSpan(1 * SR, 2 * SR), SpeechSpan(5 * SR, 6 * SR))
TIMELINE = ChunkTimeline(
    ((0, 16_000, 16_000), (16_000, 32_000, 2_400), (18_400, 77_600, 2_400), (20_800, 80_000, 16_000))
)


def test_chunk_waveform_gives_this_timeline():
    wave, timeline = chunk_waveform(
        np.zeros(7 * SR, np.float32), Chunk(SPEECH[0].start_sample, SPEECH[1].end_sample, SPEECH)
    )
    assert timeline == TIMELINE and len(wave) == 36_800


@pytest.mark.parametrize(
    ("waveform_s", "original_s"),
    [
        (0.0, 1.0),  # the chunk's first sample
        (0.5, 1.5),  # inside the first span
        (1.0, 2.0),  # the first span's end is where the kept pause starts
        (1.1, 2.1),  # in the first half of the kept pause
        (1.15, 4.85),  # the cut: the second half of the pause, 0.15 s before the second span
        (1.3, 5.0),  # the second span's start
        (2.3, 6.0),  # the chunk's end
        (9.0, 6.0),  # past the end: clamped to it
        (-1.0, 1.0),  # before the start: clamped to it
    ],
)
def test_to_original_s(waveform_s: float, original_s: float):
    assert TIMELINE.to_original_s(waveform_s) == pytest.approx(original_s, abs=1e-9)


def test_bounds_are_the_chunks_ends_on_the_original_timeline():
    assert TIMELINE.bounds_s == (1.0, 6.0)


def test_every_sample_of_the_shortened_audio_maps_back_to_its_own_sample():
    """Samples numbered by their position: the waveform's sample w is the original sample to_original_s(w)."""
    numbered = np.arange(7 * SR, dtype=np.float32)
    wave, timeline = chunk_waveform(numbered, Chunk(SPEECH[0].start_sample, SPEECH[1].end_sample, SPEECH))
    mapped = np.array([round(timeline.to_original_s(w / SR) * SR) for w in range(len(wave))])
    assert np.array_equal(mapped, wave.astype(np.int64))
    assert np.all(np.diff(mapped) >= 1)  # never backwards
