"""The values a live session takes and gives: its options and its events (see session.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from ..audio import SAMPLE_RATE
from ..errors import OptionsError
from ..options import TranscribeOptions
from ..results import Segment
from .endpoint import EndpointRules


@dataclass(frozen=True)
class LiveOptions:
    """How a live session cuts and decodes the stream.

    Attributes:
        transcribe: the usual options (language, context, VAD threshold and padding, Chinese script).
        max_utterance_s: an utterance is cut (at its quietest point) when it reaches this length, which
            bounds the cost of every draft and final (on two CPU cores a 15 s decode takes about 3 s).
        end_silence_ms: a pause this long ends an utterance and sends it to be finalised.
        draft_pace: the next draft starts no sooner than this many times the last decode's time after it.
        min_draft_growth_s: a draft is decoded only when the utterance has grown this much since the last.
    """

    transcribe: TranscribeOptions = field(default_factory=TranscribeOptions)
    max_utterance_s: float = 15.0
    end_silence_ms: int = 500
    draft_pace: float = 1.2
    min_draft_growth_s: float = 0.3

    def validate(self) -> None:
        self.transcribe.validate()
        if not 2.0 <= self.max_utterance_s <= self.transcribe.max_chunk_s:
            raise OptionsError(f"max_utterance_s must be between 2 s and max_chunk_s, got {self.max_utterance_s}.")
        if self.end_silence_ms < 100:
            raise OptionsError(f"end_silence_ms must be at least 100, got {self.end_silence_ms}.")
        if self.draft_pace < 1.0 or self.min_draft_growth_s < 0:
            raise OptionsError("draft_pace must be 1 or more and min_draft_growth_s not negative.")

    def rules(self, window: int) -> EndpointRules:
        vad = self.transcribe.vad
        return EndpointRules(
            window=window,
            threshold=vad.threshold,
            end_silence=round(self.end_silence_ms * SAMPLE_RATE / 1000),
            pad=round(vad.speech_pad_ms * SAMPLE_RATE / 1000),
            min_speech=round(vad.min_speech_duration_ms * SAMPLE_RATE / 1000),
            max_utterance=round(self.max_utterance_s * SAMPLE_RATE),
        )


class LiveEventType(StrEnum):
    DRAFT = "draft"  # the open utterance so far; replaced by the next draft or its final
    FINAL = "final"  # an utterance's text for good


@dataclass(frozen=True)
class LiveEvent:
    """Something to show: a draft of the open utterance, or a final."""

    type: LiveEventType
    at_s: float  # wall-clock seconds since the session started
    audio_start_s: float  # where on the stream the utterance starts
    audio_end_s: float  # the stream time up to which this text has heard
    text: str
    segments: tuple[Segment, ...] = ()  # a final's sentences on the session's timeline

    def as_dict(self) -> dict[str, object]:
        """The event as `--format json` writes it (no segments or start: the transcript holds them)."""
        return {
            "type": str(self.type),
            "at_s": round(self.at_s, 3),
            "audio_end_s": round(self.audio_end_s, 3),
            "text": self.text,
        }
