"""Subtitle cue layout (asr/cues.py) under random words, times, CJK and punctuation: its rules always hold."""

from __future__ import annotations

import itertools
import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st

from asr.cues import SubtitleLayout, layout_cues
from asr.options import TranscribeOptions
from asr.results import Segment, SourceInfo, Transcript, TranscriptionInfo, Word

LATIN_PUNCTUATION = ("", "", "", ",", ".", "?", "!", ";", ":")
CJK_PUNCTUATION = ("", "", "", "，", "。", "！", "？", "、")
CJK_CHARACTERS = "你好世界我们今天天气很中文字幕测试明年预算问题"


def columns(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(char) in ("W", "F") else 1 for char in text)


@st.composite
def tokens(draw: st.DrawFn) -> str:
    """A word as the aligner cuts it: a Latin word, or one CJK character, with the punctuation that follows."""
    if draw(st.booleans()):
        word = draw(st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGH", min_size=1, max_size=9))
        return word + draw(st.sampled_from(LATIN_PUNCTUATION))
    return draw(st.sampled_from(CJK_CHARACTERS)) + draw(st.sampled_from(CJK_PUNCTUATION))


@st.composite
def segments(draw: st.DrawFn, start_s: float) -> Segment:
    """A segment whose text is its words in order (Latin words apart by a space), with increasing word times."""
    texts = draw(st.lists(tokens(), min_size=1, max_size=30))
    words, time_s = [], start_s
    for text in texts:
        time_s += draw(st.floats(0.0, 1.2))
        duration = draw(st.floats(0.05, 1.5))
        words.append(Word(round(time_s, 3), round(time_s + duration, 3), text))
        time_s += duration
    text = ""
    for previous, word in zip(["", *texts[:-1]], texts, strict=True):
        latin_pair = previous and previous[0].isascii() and word[0].isascii()
        text += (" " if latin_pair else "") + word
    return Segment(words[0].start_s, words[-1].end_s, text, None, (), tuple(words))


@st.composite
def transcripts(draw: st.DrawFn) -> Transcript:
    found: list[Segment] = []
    start_s = draw(st.floats(0.0, 5.0))
    for _ in range(draw(st.integers(1, 4))):
        segment = draw(segments(start_s))
        found.append(segment)
        start_s = segment.end_s + draw(st.floats(0.0, 3.0))
    info = TranscriptionInfo(
        SourceInfo(start_s, 16_000, 1, "pcm_s16le", "wav"), start_s, None, TranscribeOptions(), model="m"
    )
    return Transcript(tuple(found), info)


layouts = st.builds(
    lambda width, lines, longest, shortest: SubtitleLayout(width, lines, longest, min(shortest, longest)),
    st.integers(20, 60),
    st.integers(1, 3),
    st.floats(2.0, 10.0),
    st.floats(0.1, 2.0),
)


@settings(max_examples=200, deadline=None)
@given(transcripts(), layouts)
def test_the_subtitle_rules_always_hold(transcript: Transcript, layout: SubtitleLayout) -> None:
    layout.validate()
    cues = layout_cues(transcript, layout)
    assert cues
    for cue in cues:
        assert 1 <= len(cue.lines) <= layout.max_line_count
        assert all(line and columns(line) <= layout.max_line_width for line in cue.lines)
        assert 0 < cue.end_ms - cue.start_ms <= round(layout.max_cue_s * 1000)
    for before, after in itertools.pairwise(cues):
        assert before.start_ms <= after.start_ms and before.end_ms <= after.start_ms  # in order, never overlapping
        assert before.end_ms - before.start_ms >= min(round(layout.min_cue_s * 1000), after.start_ms - before.start_ms)
    last = cues[-1]
    assert last.end_ms - last.start_ms >= min(round(layout.min_cue_s * 1000), round(layout.max_cue_s * 1000))
    # Every character is shown once, in order, and no line starts or ends inside a word.
    shown = [line for cue in cues for line in cue.lines]
    assert "".join(shown).replace(" ", "") == "".join(s.text for s in transcript.segments).replace(" ", "")
    words = {word.text for segment in transcript.segments for word in segment.words}
    for line in shown:
        for piece in line.split(" "):
            assert piece in words or _whole_words(piece, words), (piece, line)


def _whole_words(piece: str, words: set[str]) -> bool:
    """Whether `piece` (a line's run without spaces) is a sequence of whole words, as CJK runs are."""
    if not piece:
        return True
    return any(piece.startswith(word) and _whole_words(piece[len(word) :], words) for word in words)
