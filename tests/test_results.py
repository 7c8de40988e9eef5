"""How sizes and codecs are written for people: one way everywhere (facts lines, model sizes, downloads)."""

from __future__ import annotations

import pytest

import asr
from asr.results import SourceInfo, codec_label, format_size


@pytest.mark.parametrize(
    ("size_bytes", "shown"),
    [(0, "0 B"), (850, "850 B"), (31_700, "32 kB"), (300_000, "300 kB"), (3_149_000, "3.1 MB"), (1.84e9, "1.8 GB")],
)
def test_sizes_are_written_one_way(size_bytes, shown):
    assert format_size(size_bytes) == shown


def test_codecs_get_the_names_people_know():
    assert [codec_label(c) for c in ("pcm_s16le", "mp3", "aac", "wmav2", "pcm_mulaw")] == [
        "PCM 16-bit",
        "MP3",
        "AAC",
        "WMA",
        "µ-law",
    ]
    assert codec_label("tta") == "tta"  # one we have no name for keeps FFmpeg's


def test_the_facts_line_and_the_model_sizes_use_them():
    info = SourceInfo(
        duration_s=158, sample_rate=44_100, channels=2, codec="pcm_s24le", container="wav", size_bytes=27_000
    )
    assert info.summary() == "2:38 · 44.1 kHz · stereo · PCM 24-bit · 27 kB"
    assert asr.MODEL_SIZES[asr.DEFAULT_MODEL] == "about 1.9 GB"


@pytest.mark.parametrize(
    ("seconds", "whole", "tenths"),
    [(0, "0:00", "0:00.0"), (3.44, "0:03", "0:03.4"), (59.96, "1:00", "1:00.0"), (3723.4, "1:02:03", "1:02:03.4")],
)
def test_a_clock_reads_in_whole_seconds_or_in_tenths(seconds, whole, tenths):
    """Tenths are for the page's progress while it runs slower than real time (whole seconds would stand still)."""
    assert asr.format_clock(seconds) == whole
    assert asr.format_clock(seconds, tenths=True) == tenths
