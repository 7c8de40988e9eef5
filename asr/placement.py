"""Placement on the original timeline: a chunk's times mapped back, and its text cut into timed segments.

The model hears a chunk with its long pauses shortened (`segment.chunk_waveform`); `ChunkTimeline` maps a
time in that audio back to the original recording. Word times come from the forced aligner, mapped through
the timeline, or, without it, are shared out over the chunk's speech spans (`words.estimate_times`); the
words are then cut into sentences (`words.sentence_ranges`), each one `Segment`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from .audio import SAMPLE_RATE
from .results import AlignedToken, Chunk, ChunkText, Segment, SegmentFlag
from .words import TimedText, estimate_times, sentence_ranges, spans_in_seconds, timed_text, token_starts

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChunkTimeline:
    """Maps a time in a chunk's waveform (pauses shortened) to the original timeline.

    The waveform is made of pieces copied from the original audio; ``pieces`` holds, for each, where it
    starts in the waveform and in the original, and its length, all in samples.
    """

    pieces: tuple[tuple[int, int, int], ...]  # (waveform start, original start, length)

    @property
    def bounds_s(self) -> tuple[float, float]:
        """The chunk's start and end on the original timeline, in seconds."""
        first, last = self.pieces[0], self.pieces[-1]
        return first[1] / SAMPLE_RATE, (last[1] + last[2]) / SAMPLE_RATE

    def to_original_s(self, waveform_s: float) -> float:
        """Seconds into the waveform -> seconds on the original timeline (clamped to the chunk)."""
        position = max(0.0, waveform_s * SAMPLE_RATE)
        piece = next((p for p in reversed(self.pieces) if p[0] <= position), self.pieces[0])
        return (piece[1] + min(position - piece[0], piece[2])) / SAMPLE_RATE


def place_words(
    result: ChunkText, tokens: list[AlignedToken] | None, chunk: Chunk, timeline: ChunkTimeline
) -> tuple[TimedText, bool] | None:
    """The chunk's words on the original timeline, and whether their times are estimates.

    Aligned times are measured in the shortened audio the aligner heard and mapped back through the
    chunk's timeline; without them (or when the aligner's words do not match the text), times are shared
    out over the chunk's speech spans.
    """
    if tokens is not None:
        starts = token_starts(result.text, [token.text for token in tokens])
        if starts is not None:
            times = [(timeline.to_original_s(t.start_s), timeline.to_original_s(t.end_s)) for t in tokens]
            return timed_text(result.text, starts, times, timeline.bounds_s), False
        logger.warning("The aligner's words did not match the chunk's text; its times are estimated")
    estimate = estimate_times(result.text, spans_in_seconds(chunk.spans, SAMPLE_RATE))
    if estimate is None:
        return None
    return timed_text(result.text, *estimate, timeline.bounds_s), True


def segments_of_chunk(
    result: ChunkText,
    tokens: list[AlignedToken] | None,
    chunk: Chunk,
    timeline: ChunkTimeline,
    flags: list[SegmentFlag],
) -> list[Segment]:
    """Sentences (or clauses) of one chunk's text, each with its words and times."""
    placed = place_words(result, tokens, chunk, timeline)
    if placed is None:  # no letters or digits at all (e.g. only punctuation): one segment for the chunk
        start_s, end_s = timeline.bounds_s
        return [Segment(start_s, end_s, result.text, result.language, (*flags, SegmentFlag.APPROXIMATE_TIMES))]
    timed, estimated = placed
    flags = [*flags, SegmentFlag.APPROXIMATE_TIMES] if estimated else flags
    segments = []
    for first, stop in sentence_ranges(timed):
        words = timed.words[first:stop]
        segments.append(
            Segment(
                words[0].start_s,
                words[-1].end_s,
                timed.slice_text(first, stop),
                result.language,
                tuple(flags),
                words,
            )
        )
    return segments
