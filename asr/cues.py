"""Subtitle cues from a `Transcript`: which words share a cue, where its lines break, and when it shows.

The rules are those subtitle editors use (`SubtitleLayout`, after Netflix and BBC guidance): at most 42
columns a line and 2 lines a cue (a CJK character takes two columns, so a Chinese line holds 21), a cue at
most 7 s and at least 0.8 s unless the next one starts sooner, cut after a sentence, else a clause, else at
a pause, before it is cut for length; never inside a word, and no two cues overlap. A segment whose text no
longer matches its words (edited in the page) keeps its own time, shared out among its cues by character
count. The SRT and VTT writers (`writers.py`) only format what `layout_cues` returns.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from itertools import accumulate, pairwise

from .errors import OptionsError
from .punctuation import NO_LINE_END, NO_LINE_START, is_wide, punct_level
from .results import Segment, Transcript, Word
from .words import word_offsets

_CUE_PAUSE_S = 0.3  # a silence this long between two words is a good place to end a cue


@dataclass(frozen=True)
class SubtitleLayout:
    """How subtitles are laid out (Netflix and BBC guidance; whisper's CLI names the first two).

    Attributes:
        max_line_width: columns per line; a CJK character takes two.
        max_line_count: lines per cue.
        max_cue_s: longest time one cue stays on screen.
        min_cue_s: shortest, unless the next cue starts sooner.
    """

    max_line_width: int = 42
    max_line_count: int = 2
    max_cue_s: float = 7.0
    min_cue_s: float = 0.8

    @property
    def break_bonus(self) -> int:
        """How many columns longer a cue's longer line may get so that its lines break after punctuation."""
        return self.max_line_width // 4

    def validate(self) -> None:
        if self.max_line_width < 10:
            raise OptionsError(f"--max-line-width must be at least 10 columns, got {self.max_line_width}.")
        if self.max_line_count < 1:
            raise OptionsError(f"--max-line-count must be at least 1, got {self.max_line_count}.")
        if not 0 < self.min_cue_s <= self.max_cue_s:
            raise OptionsError("A cue's shortest time must be positive and no longer than its longest.")


DEFAULT_LAYOUT = SubtitleLayout()


@dataclass(frozen=True)
class Cue:
    """One subtitle: its lines and its time in whole milliseconds."""

    start_ms: int
    end_ms: int
    lines: tuple[str, ...]
    from_words: bool = False  # timed by its words, so `_settle` may lengthen or shorten it
    speaker: str | None = None  # its segment's `Speaker.id`: a cue never holds two speakers' words
    turn_start: bool = False  # the first cue of a speaker's turn (SRT names the speaker there)


@dataclass(frozen=True)
class _Break:
    """A place where a line may end: ``text[:end]`` stays, ``text[start:]`` goes on (a space is dropped)."""

    end: int
    start: int
    punct: int  # what ends just before: 2 a sentence, 1 a clause, 0 neither (the text's end counts as 2)


def layout_cues(transcript: Transcript, layout: SubtitleLayout) -> list[Cue]:
    """Every segment's cues, then timed so that none overlaps and each lasts between the layout's bounds.

    Cues are cut inside one segment, and a segment has one speaker, so no cue mixes two speakers.
    """
    cues: list[Cue] = []
    for segment in transcript.segments:
        if not _clean_cue_text(segment.text):
            continue
        offsets = word_offsets(segment.text, segment.words)
        made = _cues_by_characters(segment, layout) if offsets is None else _cues_from_words(segment, offsets, layout)
        for cue in made:
            new_turn = segment.speaker is not None and (not cues or cues[-1].speaker != segment.speaker)
            cues.append(replace(cue, speaker=segment.speaker, turn_start=new_turn))
    return _settle(cues, layout)


def _to_ms(seconds: float) -> int:
    """Seconds as whole milliseconds, never negative."""
    return max(0, round(seconds * 1000))


def _clean_cue_text(text: str) -> str:
    """One line of text: whitespace runs (newlines included) collapsed to a space, ``-->`` defused."""
    # "→" rather than whisper's "->": replacing "-->" with "->" turns "--->" back into "-->".
    return " ".join(text.split()).replace("-->", "→")


def _cues_from_words(segment: Segment, offsets: list[int], layout: SubtitleLayout) -> list[Cue]:
    """Cues of whole words: each takes what fits its lines and time, then ends at the best break in its latter half.

    The best break is after a sentence, else after a clause, else at a pause of `_CUE_PAUSE_S`, else the
    latest that fits.
    """
    words = segment.words
    ends = [offset + len(word.text) for offset, word in zip(offsets, words, strict=True)]

    def text_of(first: int, stop: int) -> str:
        return _clean_cue_text(segment.text[offsets[first] : ends[stop - 1]])

    def fits(first: int, stop: int) -> bool:
        duration = words[stop - 1].end_s - words[first].start_s
        return duration <= layout.max_cue_s and _wrap(text_of(first, stop), layout) is not None

    cues, first = [], 0
    while first < len(words):
        stop = first + 1
        while stop < len(words) and fits(first, stop + 1):
            stop += 1
        if stop < len(words):
            half = _width(text_of(first, stop)) / 2
            candidates = [end for end in range(first + 1, stop + 1) if _width(text_of(first, end)) >= half]
            stop = max(candidates, key=lambda end: _break_score(words, end))
        text = text_of(first, stop)
        lines = _wrap(text, layout) or _split_cues(text, layout)[0]
        cues.append(Cue(_to_ms(words[first].start_s), _to_ms(words[stop - 1].end_s), lines, from_words=True))
        first = stop
    return cues


def _break_score(words: tuple[Word, ...], end: int) -> tuple[int, bool, int]:
    """How good a cue end after ``words[end - 1]`` is: its punctuation, a pause after it, then lateness."""
    pause = end < len(words) and words[end].start_s - words[end - 1].end_s >= _CUE_PAUSE_S
    return punct_level(words[end - 1].text), pause, end


def _wrap(text: str, layout: SubtitleLayout) -> tuple[str, ...] | None:
    """`text` in at most `layout.max_line_count` lines that fit the width (two lines balanced), or None."""
    widths, breaks = _widths(text), _find_breaks(text, layout)
    lines = _greedy_lines(text, breaks, widths, layout)
    if len(lines) > layout.max_line_count:
        return None
    if len(lines) == 2:
        inner = [b for b in breaks if 0 < b.end < len(text)]
        return _split_lines(text, widths, inner, 0, len(text), layout)
    return lines


def _greedy_lines(text: str, breaks: list[_Break], widths: list[int], layout: SubtitleLayout) -> tuple[str, ...]:
    """`text` filled line by line, each line as long as fits."""
    lines, start, index = [], 0, 0
    while start < len(text):
        while breaks[index].end <= start:
            index += 1
        index = _last_fitting_break(breaks, widths, index, start, layout)
        lines.append(text[start : breaks[index].end])
        start = breaks[index].start
    return tuple(lines)


def _settle(cues: list[Cue], layout: SubtitleLayout) -> list[Cue]:
    """Times for the screen of the cues timed by words: never before the previous cue ends, at least
    `min_cue_s` unless the next cue starts sooner, and at most `max_cue_s`. Cues of edited segments keep
    their segment's time as it is."""
    settled: list[Cue] = []
    for index, cue in enumerate(cues):
        if not cue.from_words:
            settled.append(cue)
            continue
        start = max(cue.start_ms, settled[-1].end_ms if settled else 0)
        end = max(cue.end_ms, start + round(layout.min_cue_s * 1000))
        if index + 1 < len(cues):
            end = min(end, max(cues[index + 1].start_ms, cue.end_ms, start + 1))
        end = max(min(end, start + round(layout.max_cue_s * 1000)), start + 1)
        settled.append(replace(cue, start_ms=start, end_ms=end))
    return settled


def _cues_by_characters(segment: Segment, layout: SubtitleLayout) -> list[Cue]:
    """Cues for a segment without usable word times, its time shared out by character count (spaces not counted)."""
    cues = _split_cues(_clean_cue_text(segment.text), layout)
    start_ms = _to_ms(segment.start_s)
    span_ms = max(start_ms, _to_ms(segment.end_s)) - start_ms
    weights = [sum(len(line.replace(" ", "")) for line in lines) for lines in cues]
    total = sum(weights)
    # Integer maths on cumulative weights: cues touch, times never go back, and the last cue
    # ends exactly at the segment's end.
    bounds = [start_ms + (span_ms * done * 2 + total) // (total * 2) for done in accumulate(weights, initial=0)]
    return [Cue(start, end, lines) for lines, (start, end) in zip(cues, pairwise(bounds), strict=True)]


def _split_cues(text: str, layout: SubtitleLayout) -> list[tuple[str, ...]]:
    """Split one cleaned segment text into cues of at most `max_line_count` lines of `max_line_width` columns.

    A cue takes as much text as fits (filling its lines greedily), unless a sentence or else a clause
    ends in the latter half of that: then the cue ends there, at the last such end. Inside a cue the
    lines are balanced (`_split_lines`).
    """
    widths = _widths(text)
    breaks = _find_breaks(text, layout)
    cues: list[tuple[str, ...]] = []
    start, first = 0, 0  # where the cue starts in `text`, and the first break after that
    while start < len(text):
        while breaks[first].end <= start:
            first += 1
        last = first - 1
        line_start = start
        for _ in range(layout.max_line_count):
            if last + 1 == len(breaks):
                break
            last = _last_fitting_break(breaks, widths, last + 1, line_start, layout)
            line_start = breaks[last].start
        if breaks[last].end < len(text):
            half = (widths[breaks[last].end] - widths[start]) / 2
            candidates = [i for i in range(first, last + 1) if widths[breaks[i].end] - widths[start] >= half]
            last = max(candidates, key=lambda i: (breaks[i].punct, i))
        if layout.max_line_count == 2:
            cues.append(_split_lines(text, widths, breaks[first:last], start, breaks[last].end, layout))
        else:
            piece = text[start : breaks[last].end]
            cues.append(_greedy_lines(piece, _find_breaks(piece, layout), _widths(piece), layout))
        start = breaks[last].start
    return cues


def _widths(text: str) -> list[int]:
    """Cumulative columns of `text`: ``widths[i]`` is the width of ``text[:i]``."""
    return list(accumulate((_char_width(char) for char in text), initial=0))


def _width(text: str) -> int:
    return sum(_char_width(char) for char in text)


def _last_fitting_break(breaks: list[_Break], widths: list[int], first: int, start: int, layout: SubtitleLayout) -> int:
    """Index of the last break, from ``breaks[first]`` on, that ends a line starting at `start` within the width."""
    last = first  # breaks[first] always fits: no run between two breaks is wider than a line
    while last + 1 < len(breaks) and _fits_line(widths, start, breaks[last + 1].end, layout):
        last += 1
    return last


def _split_lines(
    text: str, widths: list[int], inner: list[_Break], start: int, end: int, layout: SubtitleLayout
) -> tuple[str, ...]:
    """``text[start:end]`` as one line if it fits, else two lines as even as possible, broken at one of `inner`.

    A break after punctuation wins if its longer line is at most `layout.break_bonus` columns longer
    than the most even break's; among equals the shorter top line wins.
    """
    if _fits_line(widths, start, end, layout):
        return (text[start:end],)

    def cost(b: _Break) -> tuple[int, int]:
        """The longer line's width (less a bonus after punctuation), then the top line's width."""
        top, bottom = widths[b.end] - widths[start], widths[end] - widths[b.start]
        return max(top, bottom) - (layout.break_bonus if b.punct else 0), top

    fitting = [
        b for b in inner if _fits_line(widths, start, b.end, layout) and _fits_line(widths, b.start, end, layout)
    ]
    best = min(fitting, key=cost)  # never empty: the cue was cut so that its lines fit
    return text[start : best.end], text[best.start : end]


def _fits_line(widths: list[int], start: int, end: int, layout: SubtitleLayout) -> bool:
    """Whether ``text[start:end]`` fits on one line, given the cumulative character `widths`."""
    return widths[end] - widths[start] <= layout.max_line_width


def _find_breaks(text: str, layout: SubtitleLayout) -> list[_Break]:
    """Every place a line of `text` may end, the end of the text last.

    Lines end at spaces, or between two characters when one is two columns wide (Chinese, Japanese,
    Korean) and the kinsoku rule allows it. A run with no such place that is wider than a line (a URL,
    a long number) is cut where the line is full, so no piece between two breaks is wider than a line.
    """
    breaks: list[_Break] = []
    run_width = 0  # of the text since the last break
    for i, char in enumerate(text):
        if char == " ":
            breaks.append(_Break(i, i + 1, punct_level(text[:i])))
            run_width = 0
            continue
        if run_width and _may_break_between(text[i - 1], char):
            breaks.append(_Break(i, i, punct_level(text[:i])))
            run_width = 0
        width = _char_width(char)
        if run_width and run_width + width > layout.max_line_width:
            breaks.append(_Break(i, i, 0))
            run_width = 0
        run_width += width
    breaks.append(_Break(len(text), len(text), 2))
    return breaks


def _may_break_between(before: str, after: str) -> bool:
    """Whether a line may end between two adjacent non-space characters."""
    wide = _char_width(before) == 2 or _char_width(after) == 2
    return wide and after not in NO_LINE_START and before not in NO_LINE_END


def _char_width(char: str) -> int:
    """Columns a character takes on screen: 2 for East Asian wide and fullwidth characters, else 1."""
    return 2 if is_wide(char) else 1
