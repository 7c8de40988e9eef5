"""Speaker turns -> labels on words and segments; a sentence is split where the speaker changes.

A word gets the speaker whose turn overlaps it most (the nearest turn when none does). A segment gets the
duration-weighted majority of its words, and is split where another speaker holds at least
`MIN_SWITCH_WORDS` words and `MIN_SWITCH_S` in a row (shorter runs are the aligner's or the turns' edge
error more often than a real interjection). Segments without aligned word times (`APPROXIMATE_TIMES`) are
labelled from the turns over their own time and never split.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace

from ..results import Segment, SegmentFlag, SpeakerTurn, Word
from ..words import word_offsets

MIN_SWITCH_WORDS = 2
MIN_SWITCH_S = 0.8


class TurnIndex:
    """The turns, searchable by time."""

    def __init__(self, turns: Sequence[SpeakerTurn]) -> None:
        self._turns = list(turns)
        self._starts = [turn.start_s for turn in self._turns]

    def speaker_at(self, start_s: float, end_s: float) -> str | None:
        """The speaker whose turns overlap [start_s, end_s] most; the nearest turn's when none overlaps."""
        if not self._turns:
            return None
        first = max(0, bisect.bisect_right(self._starts, start_s) - 1)
        overlap: dict[str, float] = {}
        for turn in self._turns[first:]:
            if turn.start_s >= end_s:
                break
            shared = min(end_s, turn.end_s) - max(start_s, turn.start_s)
            if shared > 0:
                overlap[turn.speaker] = overlap.get(turn.speaker, 0.0) + shared
        if overlap:
            return max(overlap, key=lambda speaker: overlap[speaker])
        middle = (start_s + end_s) / 2
        return min(self._turns, key=lambda t: max(t.start_s - middle, middle - t.end_s)).speaker


def _majority(words: Sequence[Word]) -> str | None:
    weight: dict[str, float] = {}
    for word in words:
        if word.speaker is not None:
            weight[word.speaker] = weight.get(word.speaker, 0.0) + max(word.end_s - word.start_s, 0.01)
    return max(weight, key=lambda speaker: weight[speaker]) if weight else None


def _runs(words: Sequence[Word]) -> list[tuple[int, int]]:
    """[first, stop) ranges of words with one speaker each, short runs folded into their neighbours."""
    runs: list[list[int]] = []
    for index, word in enumerate(words):
        if runs and words[runs[-1][0]].speaker == word.speaker:
            runs[-1][1] = index + 1
        else:
            runs.append([index, index + 1])

    def long_enough(run: list[int]) -> bool:
        first, stop = run
        return stop - first >= MIN_SWITCH_WORDS and words[stop - 1].end_s - words[first].start_s >= MIN_SWITCH_S

    kept: list[list[int]] = []
    for run in runs:
        if kept and (not long_enough(run) or words[kept[-1][0]].speaker == words[run[0]].speaker):
            kept[-1][1] = run[1]  # a short run stays in the piece before it
        elif kept and not long_enough(kept[-1]):
            kept[-1] = [kept[-1][0], run[1]]  # a short first piece joins the long run after it
        else:
            kept.append(list(run))
    return [(first, stop) for first, stop in kept]


def label_segment(segment: Segment, turns: TurnIndex) -> list[Segment]:
    """The segment with speakers on it and its words: one segment per speaker run."""
    if SegmentFlag.APPROXIMATE_TIMES in segment.flags or not segment.words:
        speaker = turns.speaker_at(segment.start_s, segment.end_s)
        words = tuple(replace(word, speaker=speaker) for word in segment.words)
        return [replace(segment, words=words, speaker=speaker)]
    words = tuple(replace(word, speaker=turns.speaker_at(word.start_s, word.end_s)) for word in segment.words)
    offsets = word_offsets(segment.text, words)
    runs = _runs(words) if offsets is not None else [(0, len(words))]
    if len(runs) == 1:
        return [replace(segment, words=words, speaker=_majority(words))]
    assert offsets is not None
    pieces = []
    for first, stop in runs:
        end = offsets[stop] if stop < len(offsets) else len(segment.text)
        part = words[first:stop]
        text = segment.text[offsets[first] : end].strip()
        pieces.append(
            replace(
                segment, start_s=part[0].start_s, end_s=part[-1].end_s, text=text, words=part, speaker=_majority(part)
            )
        )
    return pieces


def label_segments(segments: Iterable[Segment], turns: Sequence[SpeakerTurn]) -> Iterator[Segment]:
    """Every segment labelled (and split where the speaker changes), lazily, in order."""
    index = TurnIndex(turns)
    for segment in segments:
        yield from label_segment(segment, index)
