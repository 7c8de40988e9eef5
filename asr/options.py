"""Options for one transcription: frozen, validated before any expensive work."""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import OptionsError

# The 30 languages Qwen3-ASR names in its output ("language <Name><asr_text>"), by ISO 639 code.
# The 22 Chinese dialects are recognised under Chinese/Cantonese or with automatic detection.
LANGUAGES: dict[str, str] = {
    "ar": "Arabic",
    "yue": "Cantonese",
    "zh": "Chinese",
    "cs": "Czech",
    "da": "Danish",
    "nl": "Dutch",
    "en": "English",
    "fil": "Filipino",
    "fi": "Finnish",
    "fr": "French",
    "de": "German",
    "el": "Greek",
    "hi": "Hindi",
    "hu": "Hungarian",
    "id": "Indonesian",
    "it": "Italian",
    "ja": "Japanese",
    "ko": "Korean",
    "mk": "Macedonian",
    "ms": "Malay",
    "fa": "Persian",
    "pl": "Polish",
    "pt": "Portuguese",
    "ro": "Romanian",
    "ru": "Russian",
    "es": "Spanish",
    "sv": "Swedish",
    "th": "Thai",
    "tr": "Turkish",
    "vi": "Vietnamese",
}

AUTO_LANGUAGE = "auto"
AUTO_SCRIPT = "auto"  # Chinese as the model writes it
# How Chinese and Cantonese text is written out (`chinese.py` converts it with OpenCC).
CHINESE_SCRIPTS: tuple[str, ...] = (AUTO_SCRIPT, "simplified", "traditional", "traditional-hk")


def normalize_language(value: str | None) -> str | None:
    """Map an ISO code or a name (any case) to the model's language name; None/"auto" means detect.

    Raises:
        OptionsError: for a language the model does not know, listing the valid ones.
    """
    if value is None or value.strip().lower() in ("", AUTO_LANGUAGE):
        return None
    key = value.strip().lower()
    if key in LANGUAGES:
        return LANGUAGES[key]
    for name in LANGUAGES.values():
        if name.lower() == key:
            return name
    valid = ", ".join(f"{code} ({name})" for code, name in LANGUAGES.items())
    raise OptionsError(f"Unknown language {value!r}. Use 'auto' or one of: {valid}.")


@dataclass(frozen=True)
class VadOptions:
    """How speech is told apart from silence (Silero VAD).

    Attributes:
        threshold: speech probability above which a 32 ms frame counts as speech.
        min_speech_duration_ms: shorter bursts are dropped as clicks or breaths.
        min_silence_duration_ms: shorter pauses do not end a speech span.
        speech_pad_ms: kept on both sides of each span so word edges are not clipped.
    """

    threshold: float = 0.5
    min_speech_duration_ms: int = 250
    min_silence_duration_ms: int = 300
    speech_pad_ms: int = 200

    def validate(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise OptionsError(f"VAD threshold must be between 0 and 1, got {self.threshold}.")
        for name in ("min_speech_duration_ms", "min_silence_duration_ms", "speech_pad_ms"):
            if getattr(self, name) < 0:
                raise OptionsError(f"{name} must not be negative, got {getattr(self, name)}.")


@dataclass(frozen=True)
class GuardOptions:
    """When generated text counts as a decoding loop or as an echo of the context (`guards.py` says why).

    Recorded with the other options in a transcript's JSON (``info.options.decode.guards``), so a run can be
    reproduced from its output.

    Attributes:
        loop_max_unit_chars: the longest unit looked for repeating at the end of a chunk's text.
        loop_min_repeats: a unit repeated at least this many times ...
        loop_min_chars: ... over at least this many characters is a loop (decoded again, then flagged).
        echo_min_segment_covered: the share of a chunk's characters that must come from the context ...
        echo_min_context_covered: ... and the share of the context that must come back, for an echo;
        echo_max_length_ratio: a chunk longer than this many times the context is speech, never an echo.
    """

    loop_max_unit_chars: int = 50
    loop_min_repeats: int = 4
    loop_min_chars: int = 40
    echo_min_segment_covered: float = 0.8
    echo_min_context_covered: float = 0.5
    echo_max_length_ratio: float = 1.5

    def validate(self) -> None:
        if min(self.loop_max_unit_chars, self.loop_min_repeats, self.loop_min_chars) < 1:
            raise OptionsError("The loop guard's unit length, repeats and characters must be 1 or more.")
        if not (0 < self.echo_min_segment_covered <= 1 and 0 < self.echo_min_context_covered <= 1):
            raise OptionsError("The echo guard's shares must be above 0 and at most 1.")
        if self.echo_max_length_ratio <= 0:
            raise OptionsError(f"echo_max_length_ratio must be positive, got {self.echo_max_length_ratio}.")


@dataclass(frozen=True)
class DecodeOptions:
    """How the model turns one chunk into text.

    Attributes:
        language: full language name to force (see `normalize_language`), None to detect.
        context: names, jargon or earlier text the model should expect ("hotwords").
        batch_size: chunks per `generate` call; None picks one for the device.
        tokens_per_s: token budget per second of the speech VAD found in a chunk (pauses hold no
            words); fast speech in Chinese is about 8 characters (tokens) a second, so 12 leaves
            room without letting a loop run for long.
        min_new_tokens_budget: budget added to every chunk for the "language X<asr_text>" prefix.
        retry_repetition_penalty: used to decode a chunk again when its text loops.
        guards: the loop and context-echo thresholds.
    """

    language: str | None = None
    context: str = ""
    batch_size: int | None = None
    tokens_per_s: float = 12.0
    min_new_tokens_budget: int = 16
    retry_repetition_penalty: float = 1.15
    guards: GuardOptions = GuardOptions()

    def max_new_tokens(self, speech_s: float) -> int:
        """Token cap for a chunk with this many seconds of speech."""
        return self.min_new_tokens_budget + round(self.tokens_per_s * speech_s)

    def validate(self) -> None:
        if self.language is not None and self.language != normalize_language(self.language):
            raise OptionsError(f"Pass the language as its full name, e.g. {normalize_language(self.language)!r}.")
        if self.batch_size is not None and self.batch_size < 1:
            raise OptionsError(f"Batch size must be 1 or more, got {self.batch_size}.")
        if self.tokens_per_s <= 0 or self.min_new_tokens_budget < 1:
            raise OptionsError("The token budget must be positive.")
        if self.retry_repetition_penalty < 1.0:
            raise OptionsError(f"Repetition penalty must be 1.0 or more, got {self.retry_repetition_penalty}.")
        self.guards.validate()


MAX_SPEAKERS = 8  # the auto count looks at 2..8 speakers; an exact count or a bound may not go past it


@dataclass(frozen=True)
class SpeakerOptions:
    """Who speaks when (`asr/speakers/`); `TranscribeOptions.speakers` is None when labels are off.

    Attributes:
        count: the exact number of speakers, or None to find it (the auto count, within the bounds).
        min_speakers: the auto count finds at least this many.
        max_speakers: the auto count finds at most this many.
        names: shown names in order of first appearance ("Alice", "Bob"); the rest are "Speaker N".
    """

    count: int | None = None
    min_speakers: int = 1
    max_speakers: int = MAX_SPEAKERS
    names: tuple[str, ...] = ()

    def validate(self) -> None:
        if self.count is not None and not 1 <= self.count <= MAX_SPEAKERS:
            raise OptionsError(f"The speaker count must be 'auto' or 1 to {MAX_SPEAKERS}, got {self.count}.")
        if not 1 <= self.min_speakers <= self.max_speakers <= MAX_SPEAKERS:
            raise OptionsError(
                f"Speaker bounds must satisfy 1 <= min <= max <= {MAX_SPEAKERS}, "
                f"got min {self.min_speakers} and max {self.max_speakers}."
            )
        if self.count is not None and (self.min_speakers, self.max_speakers) != (1, MAX_SPEAKERS):
            raise OptionsError("Give either an exact speaker count or min/max bounds, not both.")
        if any(not name.strip() for name in self.names):
            raise OptionsError("Speaker names must not be empty; separate them with commas, e.g. 'Alice,Bob'.")
        if len(set(self.names)) != len(self.names):
            raise OptionsError("Speaker names must be different from each other.")
        if len(self.names) > MAX_SPEAKERS:
            raise OptionsError(f"At most {MAX_SPEAKERS} speaker names, got {len(self.names)}.")

    @classmethod
    def parse(
        cls, count: str = "auto", min_speakers: int | None = None, max_speakers: int | None = None, names: str = ""
    ) -> SpeakerOptions:
        """Options from the strings a person types: count "auto" or a number, names separated by commas."""
        text = count.strip().lower()
        if text != "auto" and not text.isdigit():
            raise OptionsError(f"The speaker count must be 'auto' or a number from 1 to {MAX_SPEAKERS}, got {count!r}.")
        options = cls(
            count=None if text == "auto" else int(text),
            min_speakers=1 if min_speakers is None else min_speakers,
            max_speakers=MAX_SPEAKERS if max_speakers is None else max_speakers,
            names=tuple(name.strip() for name in names.split(",")) if names.strip() else (),
        )
        options.validate()
        return options


@dataclass(frozen=True)
class TranscribeOptions:
    """Everything one transcription run uses; `TranscriptionInfo.options` records it.

    Attributes:
        vad: speech detection settings.
        decode: model settings.
        max_chunk_s: longest slice sent to the model at once (see `segment.py` for why 24 s).
        first_chunk_s: the first chunk is cut (in a pause) to at most this long and transcribed alone,
            so the first words appear within about two seconds whatever the file's length (on two CPU
            cores the full-size 0.6B model takes ~2 s for a 4 s chunk and ~3 s for a 6 s one).
        min_chunk_s: the chunks of the last batch (a short file's: all of them after the first) are cut
            shorter, at pauses and not under this length, so that they fill the batch and it needs fewer
            decode steps (`segment.collect_batched_chunks`); max_chunk_s keeps every chunk as long as allowed.
        max_duration_s: longer inputs are refused before any model work; None for no limit.
        chinese_script: how Chinese and Cantonese text is written: one of `CHINESE_SCRIPTS`
            ("traditional" is Taiwan's standard, "traditional-hk" Hong Kong's; "auto" as the model writes it).
        speakers: label who speaks when (`SpeakerOptions`); None leaves speakers off.
    """

    vad: VadOptions = field(default_factory=VadOptions)
    decode: DecodeOptions = field(default_factory=DecodeOptions)
    max_chunk_s: float = 24.0
    first_chunk_s: float = 4.0
    min_chunk_s: float = 4.0
    max_duration_s: float | None = None
    chinese_script: str = AUTO_SCRIPT
    speakers: SpeakerOptions | None = None

    def validate(self) -> None:
        """Raise `OptionsError` for any value we cannot use, before decoding or loading anything."""
        self.vad.validate()
        self.decode.validate()
        if self.speakers is not None:
            self.speakers.validate()
        if not 2.0 <= self.max_chunk_s <= 30.0:
            raise OptionsError(f"max_chunk_s must be between 2 and 30 seconds, got {self.max_chunk_s}.")
        if not 2.0 <= self.first_chunk_s <= self.max_chunk_s:
            raise OptionsError(f"first_chunk_s must be between 2 s and max_chunk_s, got {self.first_chunk_s}.")
        if not 2.0 <= self.min_chunk_s <= self.max_chunk_s:
            raise OptionsError(f"min_chunk_s must be between 2 s and max_chunk_s, got {self.min_chunk_s}.")
        if self.max_duration_s is not None and self.max_duration_s <= 0:
            raise OptionsError(f"max_duration_s must be positive, got {self.max_duration_s}.")
        if self.chinese_script not in CHINESE_SCRIPTS:
            raise OptionsError(
                f"Unknown Chinese script {self.chinese_script!r}. Use one of: {', '.join(CHINESE_SCRIPTS)}."
            )
