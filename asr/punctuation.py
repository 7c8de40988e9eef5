"""The punctuation and character-width tables that segmenting (`words.py`) and cue layout (`cues.py`) share."""

from __future__ import annotations

import unicodedata

SENTENCE_END = frozenset(".!?…。！？")
CLAUSE_END = frozenset(",;:，、；：")
CLOSERS = frozenset(")]}）」』》〉】〕”’\"'")  # may follow sentence or clause punctuation: 他说：“好。”
OPENERS = frozenset('"“‘«‹([{（「『《〈【〔¿¡')  # stay with the word they open

# Line-breaking rules for text without spaces (the kinsoku rule of Chinese and Japanese): no line
# starts with closing punctuation, a small kana or a prolonged sound mark, and none ends with an
# opening bracket or quote.
NO_LINE_START = SENTENCE_END | CLAUSE_END | CLOSERS | frozenset("%ー々ぁぃぅぇぉっゃゅょゎァィゥェォッャュョヮヵヶ")
NO_LINE_END = frozenset("([{（「『《〈【〔“‘")


def is_word_char(char: str) -> bool:
    """Letters, digits and the apostrophe: what the forced aligner keeps of a text (punctuation it drops)."""
    return char == "'" or unicodedata.category(char)[0] in "LN"


def is_wide(char: str) -> bool:
    """East Asian wide or fullwidth: a CJK character, kana or Hangul, two columns on screen."""
    return unicodedata.east_asian_width(char) in ("W", "F")


def punct_level(text: str) -> int:
    """2 if `text` ends a sentence, 1 if it ends a clause, else 0; closing quotes and brackets are skipped."""
    stripped = text.rstrip().rstrip("".join(CLOSERS))
    if stripped and stripped[-1] in SENTENCE_END:
        return 2
    return 1 if stripped and stripped[-1] in CLAUSE_END else 0
