"""Render a finished `Transcript` as txt, SRT, WebVTT or JSON text (or DOCX bytes), and save it to a file.

Why it looks like this (examples-to-follow.md §7, after whisper's ``utils.py`` writers):

- Writers are pure functions ``Transcript -> str`` kept in one registry, `WRITERS`: `app.py` hands the
  string to ``st.download_button`` and `cli.py` writes it with `save`. Nothing here knows about the model.
- SRT and VTT share one cue iterator (`_iter_cues`) and differ only in the header, the cue numbers, the
  decimal marker (``,`` or ``.``) and VTT's escaping of ``&``, ``<`` and ``>`` (its cue text is markup).
  Both formats always write the hours (``00:01:02.345``). WebVTT may leave them out under an hour, as
  whisper does, but one fixed-width rule is simpler and every player reads it.
- A segment can hold about 25 s of speech, which is hundreds of characters and far too much for one
  subtitle. Each segment is therefore split into cues of at most `MAX_LINES` lines of at most
  `MAX_LINE_WIDTH` columns (common subtitle guidance), and the segment's time is shared out among its
  cues by character count. A CJK character takes two columns, so a Chinese line holds 21 characters.
- The JSON output carries `TranscriptionInfo` and the options used, so that a run can be reproduced.
"""

from __future__ import annotations

import dataclasses
import json
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import accumulate, pairwise
from pathlib import Path
from typing import Any

from .docx_writer import render_docx
from .errors import ASRError, OptionsError
from .results import Transcript

MAX_LINE_WIDTH = 42  # columns per subtitle line (Netflix and BBC guidance for Latin script)
MAX_LINES = 2  # lines per cue; `_split_lines` balances at most two

# Cues would rather end after a sentence, then after a clause; lines too (see `_Break.punct`).
_SENTENCE_END = frozenset(".!?…。！？")
_CLAUSE_END = frozenset(",;:，、；：")
# Closing quotes and brackets may follow that punctuation: 他说：“好。”
_CLOSERS = frozenset(")]}）」』》〉】〕”’\"'")
# Line-breaking rules for text without spaces (the kinsoku rule of Chinese and Japanese): no line
# starts with closing punctuation, a small kana or a prolonged sound mark, and none ends with an
# opening bracket or quote.
_NO_LINE_START = _SENTENCE_END | _CLAUSE_END | _CLOSERS | frozenset("%ー々ぁぃぅぇぉっゃゅょゎァィゥェォッャュョヮヵヶ")
_NO_LINE_END = frozenset("([{（「『《〈【〔“‘")
# How many columns longer a cue's longer line may get so that its lines break after punctuation.
_PREFERRED_BREAK_BONUS = MAX_LINE_WIDTH // 4

_SRT_DECIMAL_MARKER = ","
_VTT_DECIMAL_MARKER = "."
_VTT_HEADER = "WEBVTT\n\n"


@dataclass(frozen=True)
class _Cue:
    """One subtitle: its lines and its time in whole milliseconds."""

    start_ms: int
    end_ms: int
    lines: tuple[str, ...]


@dataclass(frozen=True)
class _Break:
    """A place where a line may end: ``text[:end]`` stays, ``text[start:]`` goes on (a space is dropped)."""

    end: int
    start: int
    punct: int  # what ends just before: 2 a sentence, 1 a clause, 0 neither (the text's end counts as 2)


def render_txt(transcript: Transcript) -> str:
    """Render the plain text: one segment per line.

    Args:
        transcript: the finished transcription.

    Returns:
        `Transcript.text` with a trailing newline, or ``""`` when there is no text.
    """
    text = transcript.text
    return f"{text}\n" if text else ""


def render_srt(transcript: Transcript) -> str:
    """Render SubRip subtitles: numbered cues with ``HH:MM:SS,mmm`` times.

    Args:
        transcript: the finished transcription.

    Returns:
        The cues, each followed by a blank line; ``""`` when there is no text.
    """
    return "".join(
        f"{number}\n{_format_cue(cue, _SRT_DECIMAL_MARKER)}\n\n" for number, cue in enumerate(_iter_cues(transcript), 1)
    )


def render_vtt(transcript: Transcript) -> str:
    """Render WebVTT subtitles: the ``WEBVTT`` header, then cues with ``HH:MM:SS.mmm`` times.

    Args:
        transcript: the finished transcription.

    Returns:
        The header and the cues, each followed by a blank line; only the header when there is no text.
    """
    return _VTT_HEADER + "".join(
        f"{_format_cue(cue, _VTT_DECIMAL_MARKER, escape=_escape_vtt)}\n\n" for cue in _iter_cues(transcript)
    )


def render_json(transcript: Transcript) -> str:
    """Render the transcript, its segments and everything needed to reproduce the run as JSON.

    Times are in seconds, rounded to milliseconds; ``info.options`` is the full `TranscribeOptions`.

    Args:
        transcript: the finished transcription.

    Returns:
        Indented JSON (non-ASCII text kept as is) with a trailing newline.
    """
    info = transcript.info
    document: dict[str, Any] = {
        "text": transcript.text,
        "languages": list(transcript.languages),
        "segments": [
            {
                "start_s": _round_s(segment.start_s),
                "end_s": _round_s(segment.end_s),
                "text": segment.text,
                "language": segment.language,
                "flags": [flag.value for flag in segment.flags],
            }
            for segment in transcript.segments
        ],
        "info": {
            "source": {**dataclasses.asdict(info.source), "duration_s": _round_s(info.source.duration_s)},
            "duration_s": _round_s(info.duration_s),
            "language": info.language,
            "model": info.model,
            "notes": list(info.notes),
            "options": dataclasses.asdict(info.options),
        },
    }
    return json.dumps(document, ensure_ascii=False, indent=2) + "\n"


WRITERS: dict[str, Callable[[Transcript], str | bytes]] = {
    "txt": render_txt,
    "srt": render_srt,
    "vtt": render_vtt,
    "json": render_json,
    "docx": render_docx,  # bytes, titled "Transcript"; `render` titles it with the file name
}
FORMATS: tuple[str, ...] = tuple(WRITERS)  # also the file extensions


def render(transcript: Transcript, fmt: str, *, name: str) -> str | bytes:
    """Render `transcript` in format `fmt`: text, or bytes for DOCX, whose title is `name`.

    Args:
        transcript: the finished transcription.
        fmt: one of `FORMATS`.
        name: the recording's name (e.g. "meeting.m4a"), shown as the DOCX title.

    Raises:
        OptionsError: `fmt` is not a known format; the message lists the valid ones.
    """
    if fmt not in WRITERS:
        raise OptionsError(f"Unknown output format {fmt!r}. Use one of: {', '.join(FORMATS)}.")
    return render_docx(transcript, title=name) if fmt == "docx" else WRITERS[fmt](transcript)


def save(transcript: Transcript, fmt: str, path: Path) -> Path:
    """Render `transcript` in format `fmt` and write it to `path` (text as UTF-8; a DOCX titled `path.stem`).

    The content is rendered before the file is opened, so a bad transcript never leaves an empty file.
    Newlines are written as ``\\n`` on every platform.

    Args:
        transcript: the finished transcription.
        fmt: one of `FORMATS` (``"txt"``, ``"srt"``, ``"vtt"``, ``"json"``, ``"docx"``).
        path: the file to create or overwrite; its folder must exist.

    Returns:
        `path`, for chaining and logging.

    Raises:
        OptionsError: `fmt` is not a known format; the message lists the valid ones.
        ASRError: the file could not be written; the message says what to check.
    """
    content = render(transcript, fmt, name=path.stem)
    try:
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8", newline="")
    except OSError as e:
        reason = e.strerror or str(e)
        raise ASRError(
            f"Could not write the {fmt} transcript to {path}: {reason}. "
            "Check that the folder exists, that you may write to it and that the disk is not full, "
            "or choose another output path."
        ) from e
    return path


def _round_s(seconds: float) -> float:
    """Seconds rounded to milliseconds, for JSON."""
    return round(seconds, 3)


def _to_ms(seconds: float) -> int:
    """Seconds as whole milliseconds, never negative."""
    return max(0, round(seconds * 1000))


def _format_timestamp(ms: int, decimal_marker: str) -> str:
    """``HH:MM:SS<marker>mmm``; the hours are always written and grow past two digits after 99 h."""
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    seconds, ms = divmod(ms, 1_000)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}{decimal_marker}{ms:03d}"


def _format_cue(cue: _Cue, decimal_marker: str, escape: Callable[[str], str] = str) -> str:
    """The timing line and text lines of one cue, without the trailing blank line."""
    timing = f"{_format_timestamp(cue.start_ms, decimal_marker)} --> {_format_timestamp(cue.end_ms, decimal_marker)}"
    return "\n".join([timing, *(escape(line) for line in cue.lines)])


def _escape_vtt(line: str) -> str:
    """Escape the characters that WebVTT cue text reads as markup."""
    return line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clean_cue_text(text: str) -> str:
    """One line of text: whitespace runs (newlines included) collapsed to a space, ``-->`` defused."""
    # "→" rather than whisper's "->": replacing "-->" with "->" turns "--->" back into "-->".
    return " ".join(text.split()).replace("-->", "→")


def _iter_cues(transcript: Transcript) -> Iterator[_Cue]:
    """Cues for every segment with text, its time shared out by character count (spaces not counted)."""
    for segment in transcript.segments:
        text = _clean_cue_text(segment.text)
        if not text:
            continue
        cues = _split_cues(text)
        start_ms = _to_ms(segment.start_s)
        span_ms = max(start_ms, _to_ms(segment.end_s)) - start_ms
        weights = [sum(len(line.replace(" ", "")) for line in lines) for lines in cues]
        total = sum(weights)
        # Integer maths on cumulative weights: cues touch, times never go back, and the last cue
        # ends exactly at the segment's end.
        bounds = [start_ms + (span_ms * done * 2 + total) // (total * 2) for done in accumulate(weights, initial=0)]
        for lines, (cue_start, cue_end) in zip(cues, pairwise(bounds), strict=True):
            yield _Cue(cue_start, cue_end, lines)


def _split_cues(text: str) -> list[tuple[str, ...]]:
    """Split one cleaned segment text into cues of at most `MAX_LINES` lines of `MAX_LINE_WIDTH` columns.

    A cue takes as much text as fits (filling its lines greedily), unless a sentence or else a clause
    ends in the latter half of that: then the cue ends there, at the last such end. Inside a cue the
    lines are balanced (`_split_lines`).
    """
    widths = list(accumulate((_char_width(char) for char in text), initial=0))
    breaks = _find_breaks(text)
    cues: list[tuple[str, ...]] = []
    start, first = 0, 0  # where the cue starts in `text`, and the first break after that
    while start < len(text):
        while breaks[first].end <= start:
            first += 1
        last = first - 1
        line_start = start
        for _ in range(MAX_LINES):
            if last + 1 == len(breaks):
                break
            last = _last_fitting_break(breaks, widths, last + 1, line_start)
            line_start = breaks[last].start
        if breaks[last].end < len(text):
            half = (widths[breaks[last].end] - widths[start]) / 2
            candidates = [i for i in range(first, last + 1) if widths[breaks[i].end] - widths[start] >= half]
            last = max(candidates, key=lambda i: (breaks[i].punct, i))
        cues.append(_split_lines(text, widths, breaks[first:last], start, breaks[last].end))
        start = breaks[last].start
    return cues


def _last_fitting_break(breaks: list[_Break], widths: list[int], first: int, start: int) -> int:
    """Index of the last break, from ``breaks[first]`` on, that ends a line starting at `start` within the width."""
    last = first  # breaks[first] always fits: no run between two breaks is wider than a line
    while last + 1 < len(breaks) and _fits_line(widths, start, breaks[last + 1].end):
        last += 1
    return last


def _split_lines(text: str, widths: list[int], inner: list[_Break], start: int, end: int) -> tuple[str, ...]:
    """``text[start:end]`` as one line if it fits, else two lines as even as possible, broken at one of `inner`.

    A break after punctuation wins if its longer line is at most `_PREFERRED_BREAK_BONUS` columns longer
    than the most even break's; among equals the shorter top line wins.
    """
    if _fits_line(widths, start, end):
        return (text[start:end],)

    def cost(b: _Break) -> tuple[int, int]:
        """The longer line's width (less a bonus after punctuation), then the top line's width."""
        top, bottom = widths[b.end] - widths[start], widths[end] - widths[b.start]
        return max(top, bottom) - (_PREFERRED_BREAK_BONUS if b.punct else 0), top

    fitting = [b for b in inner if _fits_line(widths, start, b.end) and _fits_line(widths, b.start, end)]
    best = min(fitting, key=cost)  # never empty: the cue was cut so that its lines fit
    return text[start : best.end], text[best.start : end]


def _fits_line(widths: list[int], start: int, end: int) -> bool:
    """Whether ``text[start:end]`` fits on one line, given the cumulative character `widths`."""
    return widths[end] - widths[start] <= MAX_LINE_WIDTH


def _find_breaks(text: str) -> list[_Break]:
    """Every place a line of `text` may end, the end of the text last.

    Lines end at spaces, or between two characters when one is two columns wide (Chinese, Japanese,
    Korean) and the kinsoku rule allows it. A run with no such place that is wider than a line (a URL,
    a long number) is cut where the line is full, so no piece between two breaks is wider than a line.
    """
    breaks: list[_Break] = []
    run_width = 0  # of the text since the last break
    for i, char in enumerate(text):
        if char == " ":
            breaks.append(_Break(i, i + 1, _punct_before(text, i)))
            run_width = 0
            continue
        if run_width and _may_break_between(text[i - 1], char):
            breaks.append(_Break(i, i, _punct_before(text, i)))
            run_width = 0
        width = _char_width(char)
        if run_width and run_width + width > MAX_LINE_WIDTH:
            breaks.append(_Break(i, i, 0))
            run_width = 0
        run_width += width
    breaks.append(_Break(len(text), len(text), 2))
    return breaks


def _may_break_between(before: str, after: str) -> bool:
    """Whether a line may end between two adjacent non-space characters."""
    wide = _char_width(before) == 2 or _char_width(after) == 2
    return wide and after not in _NO_LINE_START and before not in _NO_LINE_END


def _punct_before(text: str, end: int) -> int:
    """2 if ``text[:end]`` ends a sentence, 1 if it ends a clause, else 0; closing quotes are skipped."""
    i = end - 1
    while i >= 0 and text[i] in _CLOSERS:
        i -= 1
    if i >= 0 and text[i] in _SENTENCE_END:
        return 2
    return 1 if i >= 0 and text[i] in _CLAUSE_END else 0


def _char_width(char: str) -> int:
    """Columns a character takes on screen: 2 for East Asian wide and fullwidth characters, else 1."""
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
