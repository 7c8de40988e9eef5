"""Simplified or Traditional Chinese output, through OpenCC, for Chinese and Cantonese segments.

Qwen3-ASR writes Chinese mostly in Simplified characters and Cantonese in either script. Readers in
Taiwan and Hong Kong want Traditional, and the tools people compare us with let them choose.

Why the `opencc` package (1.4.2, the official Python binding of the C++ OpenCC by its authors):
it ships binary wheels with the dictionaries built in for CPython 3.11, 3.12 and 3.13 on Linux
(x86_64 and aarch64), macOS (arm64, and x86_64 from 10.13) and Windows (checked with ``pip download
--only-binary=:all: --platform ...`` for each), so it installs everywhere without a compiler, and it
is the reference implementation the pure-Python ports (``opencc-purepy``,
``opencc-python-reimplemented``) copy their tables from, some of them years behind.

Only the characters change, not the words: "traditional" uses ``s2tw`` (Taiwan's standard
characters) rather than ``s2twp``, which also swaps mainland words for Taiwanese ones (软件 → 軟體);
a transcript should keep the words the speaker said.
"""

from __future__ import annotations

import dataclasses
from functools import cache
from itertools import accumulate, pairwise
from typing import TYPE_CHECKING, Any

from .options import AUTO_SCRIPT

if TYPE_CHECKING:
    from opencc import OpenCC

    from .results import Segment

# `options.CHINESE_SCRIPTS` -> OpenCC configuration. Text already in the target script stays as it is.
OPENCC_CONFIGS: dict[str, str] = {
    "simplified": "t2s",
    "traditional": "s2tw",
    "traditional-hk": "s2hk",
}
CHINESE_LANGUAGES = frozenset({"Chinese", "Cantonese"})  # names as in `options.LANGUAGES`


@cache
def _converter(config: str) -> OpenCC:
    """One OpenCC converter per configuration; loading its dictionaries takes a few milliseconds."""
    from opencc import OpenCC

    return OpenCC(config)


def convert_text(text: str, script: str) -> str:
    """Convert Chinese `text` to `script` (one of `options.CHINESE_SCRIPTS`; "auto" leaves it unchanged)."""
    return text if script == AUTO_SCRIPT else _converter(OPENCC_CONFIGS[script]).convert(text)


def _convert_words(words: tuple[Any, ...], script: str) -> tuple[Any, ...]:
    """Words converted together, so that each character sees its neighbours.

    One character can have two traditional forms (头发 → 頭髮 "hair", 发现 → 發現 "find"): a word
    converted alone may get the wrong one. The words' texts are converted joined and cut back at the
    same places, which works because these conversions keep the length; if one ever did not, each word
    is converted alone.
    """
    texts = [word.text for word in words]
    joined = convert_text("".join(texts), script)
    if len(joined) != sum(map(len, texts)):
        pieces = [convert_text(text, script) for text in texts]
    else:
        bounds = accumulate(map(len, texts), initial=0)
        pieces = [joined[start:end] for start, end in pairwise(bounds)]
    return tuple(dataclasses.replace(word, text=piece) for word, piece in zip(words, pieces, strict=True))


def convert_segment(segment: Segment, script: str) -> Segment:
    """The segment in `script` if its language is Chinese or Cantonese; any other segment unchanged.

    `dataclasses.replace` keeps every other field; words, if the segment has a ``words`` field (of
    values with a ``text`` field, like ``Word``), are converted the same way.

    Args:
        segment: one segment of a transcript.
        script: one of `options.CHINESE_SCRIPTS`.

    Returns:
        The converted copy, or `segment` itself when there is nothing to convert.
    """
    if script == AUTO_SCRIPT or segment.language not in CHINESE_LANGUAGES:
        return segment
    converted = dataclasses.replace(segment, text=convert_text(segment.text, script))
    words = getattr(segment, "words", None)
    if words:
        converted = dataclasses.replace(converted, words=_convert_words(tuple(words), script))
    return converted
