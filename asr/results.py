"""Typed values that flow between the pipeline's stages (never dicts).

Times on the original audio timeline are in seconds (``_s``); positions inside
the decoded waveform are in samples (``_sample``) at ``audio.SAMPLE_RATE``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .options import TranscribeOptions


def format_clock(seconds: float, tenths: bool = False) -> str:
    """Seconds as a clock reading: "2:38", or "1:02:03" from one hour on; with `tenths`, "2:38.4"."""
    tenth_count = round(seconds * 10) if tenths else round(seconds) * 10
    minutes, secs = divmod(tenth_count // 10, 60)
    hours, minutes = divmod(minutes, 60)
    clock = f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
    return f"{clock}.{tenth_count % 10}" if tenths else clock


def format_size(size_bytes: float) -> str:
    """Bytes the one way people read them everywhere we show a size: "850 B", "32 kB", "3.1 MB", "1.9 GB"."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6)):
        if size_bytes >= scale:
            return f"{size_bytes / scale:.1f} {unit}"
    return f"{size_bytes / 1e3:.0f} kB" if size_bytes >= 1e3 else f"{size_bytes:.0f} B"


# FFmpeg's codec names (how `SourceInfo.codec` is written, for both decoders) -> the name people know them by.
_CODEC_LABELS = {
    "pcm_u8": "PCM 8-bit",
    "pcm_s16le": "PCM 16-bit",
    "pcm_s16be": "PCM 16-bit",
    "pcm_s24le": "PCM 24-bit",
    "pcm_s24be": "PCM 24-bit",
    "pcm_s32le": "PCM 32-bit",
    "pcm_s32be": "PCM 32-bit",
    "pcm_f32le": "PCM 32-bit float",
    "pcm_f32be": "PCM 32-bit float",
    "pcm_f64le": "PCM 64-bit float",
    "pcm_f64be": "PCM 64-bit float",
    "pcm_mulaw": "µ-law",
    "pcm_alaw": "A-law",
    "adpcm_ima_wav": "IMA ADPCM",
    "adpcm_ms": "MS ADPCM",
    "mp3": "MP3",
    "mp2": "MP2",
    "aac": "AAC",
    "alac": "Apple Lossless",
    "flac": "FLAC",
    "vorbis": "Vorbis",
    "opus": "Opus",
    "wmav1": "WMA",
    "wmav2": "WMA",
    "wmapro": "WMA Pro",
    "wmalossless": "WMA Lossless",
    "amr_nb": "AMR",
    "amr_wb": "AMR-WB",
    "ac3": "Dolby Digital",
    "eac3": "Dolby Digital Plus",
    "gsm": "GSM",
    "speex": "Speex",
}


def codec_label(codec: str) -> str:
    """A codec as people name it ("PCM 16-bit" for FFmpeg's "pcm_s16le"); FFmpeg's name when we know no other."""
    return _CODEC_LABELS.get(codec, codec)


@dataclass(frozen=True)
class SourceInfo:
    """Facts about the input as it was before decoding (shown to users by `asr info`)."""

    duration_s: float  # length of the decoded audio
    sample_rate: int  # of the source stream, before resampling
    channels: int  # of the source stream, before downmixing
    codec: str  # e.g. "mp3", "pcm_s16le", "aac"
    container: str  # e.g. "mp3", "wav", "mov,mp4,m4a,3gp,3g2,mj2"
    size_bytes: int | None = None  # of the file or buffer, when known

    def summary(self) -> str:
        """One line for people, e.g. "2:38 · 44.1 kHz · stereo · MP3 · 3.1 MB"."""
        layout = {1: "mono", 2: "stereo"}.get(self.channels, f"{self.channels} channels")
        parts = [format_clock(self.duration_s), f"{self.sample_rate / 1000:g} kHz", layout, codec_label(self.codec)]
        if self.size_bytes is not None:
            parts.append(format_size(self.size_bytes))
        return " · ".join(parts)


@dataclass(frozen=True, eq=False)
class DecodedAudio:
    """Mono float32 samples at 16 kHz plus the facts of their source."""

    samples: np.ndarray
    source: SourceInfo


@dataclass(frozen=True)
class SpeechSpan:
    """A stretch of speech found by VAD, in samples of the decoded waveform."""

    start_sample: int
    end_sample: int


@dataclass(frozen=True)
class Chunk:
    """A slice of the waveform, [start_sample, end_sample), sent to the model as one request.

    The model hears only its speech spans, with long pauses between them shortened
    (`segment.chunk_waveform`); `placement.ChunkTimeline` maps times in that audio back
    onto the original timeline.
    """

    start_sample: int
    end_sample: int
    spans: tuple[SpeechSpan, ...]  # the speech this chunk covers

    @property
    def num_samples(self) -> int:
        return self.end_sample - self.start_sample

    @property
    def speech_samples(self) -> int:
        """Samples of speech in the chunk (its pauses left out): what its token budget is based on."""
        return sum(span.end_sample - span.start_sample for span in self.spans)


class SegmentFlag(StrEnum):
    """Something a reader of the transcript should know about one segment."""

    TOKEN_CAP = "token_cap"  # generation stopped at max_new_tokens: text may be cut short
    REPETITION_LOOP = "repetition_loop"  # the text repeats itself: likely a decoding loop
    RETRIED = "retried_with_repetition_penalty"  # a loop was decoded again with a penalty
    APPROXIMATE_TIMES = "approximate_times"  # word times estimated from the speech found, not aligned
    CONTEXT_ECHO = "context_echo"  # only repeated the given context (on silence or noise): text dropped


@dataclass(frozen=True)
class ChunkText:
    """What the engine produced for one chunk, before it is placed on the timeline."""

    text: str
    language: str | None  # the language the model named, or None if it named none
    finished: bool  # False when generation hit the token cap instead of end-of-text
    num_tokens: int  # generated tokens, prompt excluded
    tokens: tuple[int, ...] = ()  # those tokens' ids, end-of-text excluded (a live draft proposes them to its final)


@dataclass(frozen=True)
class AlignedToken:
    """What the forced aligner gives for one word: its letters and digits, and its times in the chunk's audio."""

    text: str
    start_s: float
    end_s: float


@dataclass(frozen=True)
class Word:
    """One word (or one CJK character) on the original timeline, with the punctuation that follows it."""

    start_s: float
    end_s: float
    text: str
    speaker: str | None = None  # the `Speaker.id` whose turn overlaps the word most; None: speakers off


@dataclass(frozen=True)
class Speaker:
    """One voice in the recording: a stable id ("S1", numbered by first appearance) and the name shown."""

    id: str
    name: str


@dataclass(frozen=True)
class SpeakerTurn:
    """A stretch of the original timeline where one speaker talks, found from the audio alone."""

    start_s: float
    end_s: float
    speaker: str  # a `Speaker.id`


@dataclass(frozen=True)
class Segment:
    """One sentence or clause of the transcript on the original timeline.

    ``words`` hold its text word by word, in order; joined as the text writes them they give ``text``
    (an edit in the page may change ``text`` and leave ``words`` behind: writers then fall back to the
    segment's own times). Their times are aligned by the forced aligner, or estimated from the speech
    found by VAD when the segment is flagged ``APPROXIMATE_TIMES``.
    """

    start_s: float
    end_s: float
    text: str
    language: str | None  # full language name, e.g. "English"; None when unknown
    flags: tuple[SegmentFlag, ...] = ()
    words: tuple[Word, ...] = ()
    speaker: str | None = None  # the `Speaker.id` of most of its words (or of its time); None: speakers off


@dataclass(frozen=True)
class TranscriptionInfo:
    """What is known once the first words are out; returned next to the segment iterator."""

    source: SourceInfo
    duration_s: float
    language: str | None  # the forced language, or the one detected in the first chunk
    options: TranscribeOptions
    model: str  # the model id or folder that produced the text
    aligner: str | None = None  # the forced aligner id or folder that timed the words; None: times estimated
    notes: tuple[str, ...] = ()  # e.g. "no speech detected"
    speaker_turns: tuple[SpeakerTurn, ...] = ()  # who speaks when, in time order; () when speakers are off


def speaker_runs(segments: tuple[Segment, ...]) -> list[tuple[str | None, list[Segment]]]:
    """Consecutive segments of one speaker, in order: the turns as TXT and DOCX write them."""
    runs: list[tuple[str | None, list[Segment]]] = []
    for segment in segments:
        if runs and runs[-1][0] == segment.speaker:
            runs[-1][1].append(segment)
        else:
            runs.append((segment.speaker, [segment]))
    return runs


def default_speaker_name(speaker_id: str) -> str:
    """ "S2" -> "Speaker 2": the name a speaker has until the user gives one."""
    return f"Speaker {speaker_id.removeprefix('S')}"


@dataclass(frozen=True)
class Transcript:
    """A finished transcription: every segment, in time order, and its info.

    ``speakers`` lists every speaker of the turns in order of first appearance; when not given, their
    names are the ones the options gave (`SpeakerOptions.names`, in that order), then "Speaker N".
    """

    segments: tuple[Segment, ...]
    info: TranscriptionInfo
    speakers: tuple[Speaker, ...] | None = None
    languages: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        seen = dict.fromkeys(s.language for s in self.segments if s.language)
        object.__setattr__(self, "languages", tuple(seen))
        if self.speakers is None:
            ids = dict.fromkeys(turn.speaker for turn in self.info.speaker_turns)
            ids.update(dict.fromkeys(s.speaker for s in self.segments if s.speaker))
            given = self.info.options.speakers.names if self.info.options.speakers else ()
            names = [*given, *(default_speaker_name(i) for i in list(ids)[len(given) :])]
            object.__setattr__(self, "speakers", tuple(Speaker(i, n) for i, n in zip(ids, names, strict=False)))

    @property
    def speaker_turns(self) -> tuple[SpeakerTurn, ...]:
        return self.info.speaker_turns

    def speaker_name(self, speaker_id: str | None) -> str | None:
        """The shown name of a speaker id (None for None or an id no longer listed)."""
        return next((s.name for s in self.speakers or () if s.id == speaker_id), None)

    @property
    def text(self) -> str:
        """The plain text, one segment per line."""
        return "\n".join(s.text for s in self.segments if s.text)
