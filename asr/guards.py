"""Guards against two ways the model writes text nobody said: decoding loops and context echoes.

**Decoding loops.** A text counts as a loop when its tail is one unit (up to `loop_max_unit_chars`
characters) repeated at least `loop_min_repeats` times over at least `loop_min_chars` characters
("the the the ..."); the thresholds are `options.GuardOptions`, recorded in a run's JSON. The pipeline
decodes such a chunk once more with a repetition penalty and flags it.

**Context echoes.** A chunk whose text only repeats the names and terms the user gave is dropped.

Given context ("Stella Nakamura, Kubernetes"), Qwen3-ASR can write that context out as if it had
been spoken, on silence, music or noise: a known behaviour of the model. The pipeline checks each
chunk's whole text (before it is cut into sentences, so a context written as several sentences is
caught as one echo) and keeps such a chunk as one segment with its times and the
`SegmentFlag.CONTEXT_ECHO` flag, so the JSON and the page say what happened, but with no text, so
TXT, SRT, VTT and DOCX leave it out (the JSON still holds the context that was echoed, in
``info.options.decode.context``).

"Mostly the context" means all of these, on normalised text (NFKC, case folded, Chinese in
Simplified form, only letters and digits):

- at least `echo_min_segment_covered` of the segment's characters sit in a run of n characters that
  also occurs in the context: n is 2 when the context holds Chinese, Japanese or Korean characters
  (each is most of a word) and 3 otherwise (letters pair up by chance: "er", "th"). Runs, not
  single characters, so shared letters do not count; and order does not matter, so
  "Kubernetes, Stella" echoes "Stella, Kubernetes";
- at least `echo_min_context_covered` of the context's characters come back the same way, so a segment
  that says one of several terms ("We moved to Kubernetes.") is kept;
- the segment is at most `echo_max_length_ratio` times as long as the context: speech that merely uses
  every term is longer than the terms.

A chunk whose whole text really is the context and nothing else (someone reads the list of terms
aloud, alone between two pauses) cannot be told apart from an echo by its text; it is flagged too.
"""

from __future__ import annotations

import unicodedata

from .chinese import convert_text
from .options import GuardOptions

_DEFAULTS = GuardOptions()


def is_repetition_loop(text: str, guards: GuardOptions = _DEFAULTS) -> bool:
    """True when the end of `text` is one short unit repeated over and over ("the the the ...")."""
    for unit_chars in range(1, min(guards.loop_max_unit_chars, len(text) // guards.loop_min_repeats) + 1):
        unit = text[-unit_chars:]
        repeats, end = 1, len(text) - unit_chars
        while end >= unit_chars and text[end - unit_chars : end] == unit:
            repeats, end = repeats + 1, end - unit_chars
        if repeats >= guards.loop_min_repeats and repeats * unit_chars >= guards.loop_min_chars:
            return True
    return False


def _normalise(text: str) -> str:
    """Letters and digits only, NFKC, case folded, Chinese characters in their Simplified form."""
    folded = convert_text(unicodedata.normalize("NFKC", text).casefold(), "simplified")
    return "".join(char for char in folded if char.isalnum())


def _runs(text: str, n: int) -> set[str]:
    """Every run of `n` characters in `text`."""
    return {text[i : i + n] for i in range(len(text) - n + 1)}


def _covered(text: str, runs: set[str], n: int) -> int:
    """How many characters of `text` sit in a run of `n` characters that is in `runs`."""
    covered = [False] * len(text)
    for i in range(len(text) - n + 1):
        if text[i : i + n] in runs:
            covered[i : i + n] = [True] * n
    return sum(covered)


def is_context_echo(text: str, context: str, guards: GuardOptions = _DEFAULTS) -> bool:
    """Whether `text` is mostly `context` (see the module docstring for what "mostly" means).

    Args:
        text: one segment's text.
        context: the names and terms the model was given; "" never matches.
        guards: the thresholds (`echo_*`).
    """
    said, given = _normalise(text), _normalise(context)
    n = 2 if any(unicodedata.east_asian_width(char) in ("W", "F") for char in given) else 3
    if len(said) < n or len(given) < n or len(said) > guards.echo_max_length_ratio * len(given):
        return False
    return _covered(said, _runs(given, n), n) >= guards.echo_min_segment_covered * len(said) and _covered(
        given, _runs(said, n), n
    ) >= guards.echo_min_context_covered * len(given)
