"""Words on the timeline, and the sentences cut from them.

A chunk's text comes from the model; its word times come from the forced aligner (`aligner.py`) or, when
there is none, are estimated here from the speech that VAD found in the chunk. Either way the text itself
never changes: a word is a slice of the model's text (with the punctuation that follows it), found by
matching the aligner's tokens against the text's letters and digits, so joining the words in order gives
the text back. Segments are then cut from the words: after sentence punctuation first, then at pauses
longer than `MAX_PAUSE_S`, then, for a run-on stretch longer than `MAX_SEGMENT_S`, at its best break.

Nothing here needs torch: the aligner hands over plain (token, start, end) triples.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate, pairwise

from .punctuation import OPENERS, is_wide, is_word_char, punct_level
from .results import SpeechSpan, Word

MAX_PAUSE_S = 0.6  # a longer silence between two words ends a segment
MAX_SEGMENT_S = 15.0  # a longer sentence is cut at its best break


def token_starts(text: str, tokens: Sequence[str]) -> list[int] | None:
    """Where in `text` each token starts, or None when the tokens do not spell out the text's letters and digits.

    The aligner splits a text into tokens of its word characters only (punctuation and spaces dropped, a
    CJK character on its own); walking both in order finds each token's first character in the text.
    """
    starts: list[int] = []
    position = 0
    for token in tokens:
        for index, char in enumerate(token):
            while position < len(text) and not is_word_char(text[position]):
                position += 1
            if position == len(text) or text[position] != char:
                return None
            if index == 0:
                starts.append(position)
            position += 1
    if not tokens or any(is_word_char(char) for char in text[position:]):
        return None
    return starts


def split_tokens(text: str) -> list[str]:
    """The text's words for time estimates: wide characters one by one, other words split at spaces."""
    tokens: list[str] = []
    current = ""
    for char in text:
        if is_wide(char) and is_word_char(char):
            tokens += [current, char] if current else [char]
            current = ""
        elif char.isspace():
            if current:
                tokens.append(current)
            current = ""
        elif is_word_char(char):
            current += char
    return [*tokens, current] if current else tokens


def word_cuts(text: str, starts: Sequence[int]) -> list[int]:
    """Where each word's slice of `text` begins: at its first character, less any opening quote or bracket.

    The first word's slice begins at 0, so the slices cover the whole text and each word carries the
    punctuation that follows it.
    """
    cuts = [0]
    for previous, start in pairwise(starts):
        cut = start
        while cut > previous + 1 and text[cut - 1] in OPENERS:
            cut -= 1
        cuts.append(cut)
    return cuts


@dataclass(frozen=True)
class TimedText:
    """A chunk's text and its words, each word a slice of the text starting at its cut."""

    text: str
    words: tuple[Word, ...]
    cuts: tuple[int, ...]  # where each word's slice of `text` begins

    def slice_text(self, first: int, stop: int) -> str:
        """The text of words ``first`` up to (not including) ``stop``, as the model wrote it."""
        end = self.cuts[stop] if stop < len(self.cuts) else len(self.text)
        return self.text[self.cuts[first] : end].strip()


def timed_text(
    text: str, starts: Sequence[int], times_s: Sequence[tuple[float, float]], bounds_s: tuple[float, float]
) -> TimedText:
    """Words from their start positions in `text` and their times, made safe for subtitles.

    Times are clamped into the chunk (`bounds_s`), kept in order and never overlapping, whatever the aligner
    said: each word starts no earlier than the previous one ends and ends no earlier than it starts.
    """
    cuts = word_cuts(text, starts)
    ends = [*cuts[1:], len(text)]
    low, high = bounds_s
    words: list[Word] = []
    floor = low
    for cut, end, (start_s, end_s) in zip(cuts, ends, times_s, strict=True):
        start_s = min(max(start_s, floor), high)
        end_s = min(max(end_s, start_s), high)
        words.append(Word(start_s, end_s, text[cut:end].strip()))
        floor = end_s
    return TimedText(text, tuple(words), tuple(cuts))


def estimate_times(
    text: str, spans_s: Sequence[tuple[float, float]]
) -> tuple[list[int], list[tuple[float, float]]] | None:
    """Word starts and times shared out over the speech only (never over the pauses between spans).

    Each word gets speech time in proportion to its characters (a wide character counts two). Returns
    None when the text has no word characters.
    """
    tokens = split_tokens(text)
    starts = token_starts(text, tokens)
    if starts is None:
        return None
    weights = [sum(2 if is_wide(char) else 1 for char in token) for token in tokens]
    bounds = list(accumulate(weights, initial=0))
    total_speech = sum(end - start for start, end in spans_s)

    def place(done: float, *, at_end: bool) -> float:
        """The time at which `done` of the speech has been spoken; a boundary belongs to the span it ends or starts."""
        remaining = done * total_speech
        for index, (start, end) in enumerate(spans_s):
            length = end - start
            last = index == len(spans_s) - 1
            if remaining < length or (at_end and remaining <= length) or last:
                return start + min(remaining, length)
            remaining -= length
        return spans_s[-1][1]

    times = [
        (place(bounds[i] / bounds[-1], at_end=False), place(bounds[i + 1] / bounds[-1], at_end=True))
        for i in range(len(tokens))
    ]
    return starts, times


def spans_in_seconds(spans: Sequence[SpeechSpan], sample_rate: int) -> list[tuple[float, float]]:
    """VAD spans as (start, end) seconds on the original timeline."""
    return [(span.start_sample / sample_rate, span.end_sample / sample_rate) for span in spans]


def sentence_ranges(timed: TimedText) -> list[tuple[int, int]]:
    """Cut the words into segments: [first, stop) word ranges in order, covering every word.

    A segment ends after sentence punctuation or before a pause longer than `MAX_PAUSE_S`; a segment still
    longer than `MAX_SEGMENT_S` is cut again (`_cut_long`).
    """
    words = timed.words
    ranges, first = [], 0
    for index, word in enumerate(words):
        last = index == len(words) - 1
        pause = 0.0 if last else words[index + 1].start_s - word.end_s
        if last or punct_level(word.text) == 2 or pause > MAX_PAUSE_S:
            ranges += _cut_long(words, first, index + 1)
            first = index + 1
    return ranges


def _cut_long(words: Sequence[Word], first: int, stop: int) -> list[tuple[int, int]]:
    """Cut words [first, stop) into pieces of at most `MAX_SEGMENT_S` where possible.

    Each piece ends at the best break in the latter half of what fits: after a clause's punctuation, else
    at the longest pause, else as late as fits. A single word longer than the limit stays one piece.
    """
    pieces = []
    while words[stop - 1].end_s - words[first].start_s > MAX_SEGMENT_S and stop - first > 1:
        fitting = [
            end for end in range(first + 1, stop) if words[end - 1].end_s - words[first].start_s <= MAX_SEGMENT_S
        ] or [first + 1]
        half = words[first].start_s + (words[fitting[-1] - 1].end_s - words[first].start_s) / 2
        candidates = [end for end in fitting if words[end - 1].end_s >= half] or fitting

        def score(end: int) -> tuple[int, float, int]:
            return punct_level(words[end - 1].text), words[end].start_s - words[end - 1].end_s, end

        best = max(candidates, key=score)
        pieces.append((first, best))
        first = best
    return [*pieces, (first, stop)]


def word_offsets(text: str, words: Sequence[Word]) -> list[int] | None:
    """Where each word starts in `text`, or None when the words no longer spell it (the text was edited)."""
    offsets, position = [], 0
    for word in words:
        found = text.find(word.text, position)
        if found < 0 or text[position:found].strip():
            return None
        offsets.append(found)
        position = found + len(word.text)
    return offsets if words and not text[position:].strip() else None
