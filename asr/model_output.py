"""The model's output as text, read without torch: the language tag, the transcript, the end-of-text ids."""

from __future__ import annotations

from typing import Any

from .options import LANGUAGES

_ASR_TEXT = "<asr_text>"
_LANGUAGE_PREFIX = "language "
_LANGUAGE_NAMES = frozenset(LANGUAGES.values())


def parse_generated(text: str, forced_language: str | None) -> tuple[str | None, str]:
    """Split the model's "language <Name><asr_text>text" into (language name, text).

    With a forced language the prompt already ends in "<asr_text>", so all generated text is
    transcription. A prefix that is not a known language is kept as text (never dropped);
    "language None" is the model's way of saying it heard no speech. Stray tags are removed.
    """
    language = forced_language
    if forced_language is None and _ASR_TEXT in text:
        prefix, rest = text.split(_ASR_TEXT, 1)
        name = prefix.strip()
        if name.lower().startswith(_LANGUAGE_PREFIX):
            name = name[len(_LANGUAGE_PREFIX) :].strip()
        if name in _LANGUAGE_NAMES or name.lower() == "none":
            language = name if name in _LANGUAGE_NAMES else None
            text = rest
    return language, text.replace(_ASR_TEXT, "").strip()


def eos_token_ids(generation_config: Any) -> frozenset[int]:
    """The end-of-text ids of a generation config, which stores one int, a list of them, or None."""
    eos = generation_config.eos_token_id
    if eos is None:
        return frozenset()
    return frozenset([eos] if isinstance(eos, int) else eos)
