"""The decoder's messages for the user, shared by both decoding paths: one line, what is wrong, what to do."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import AudioDecodeError
from ..results import format_clock

if TYPE_CHECKING:
    from .source import Source

FORMATS_HINT = "Choose a recording such as WAV, MP3, M4A, FLAC, OGG, OPUS or WEBM, or a video with sound."


def too_long_error(src: Source, length_s: float | None, max_duration_s: float) -> AudioDecodeError:
    """The message for an input over the length limit, with both lengths."""
    limit = f"the limit of {format_duration(max_duration_s)} (max_duration_s={max_duration_s:g})"
    # length_s is None when the stream declares no length and its packets carry no timestamps
    length = f"longer than {limit}" if length_s is None else f"{format_duration(length_s)} long, more than {limit}"
    return AudioDecodeError(f"{src.subject} is {length}. Split it into shorter parts or raise the limit.")


def damaged_rate_error(src: Source, rate: int) -> AudioDecodeError:
    """The message for a header whose sample rate no recording has."""
    return AudioDecodeError(
        f"{src.subject} has a damaged header: it gives a sample rate of {rate:,} Hz, which no recording has, so it "
        "is probably truncated or damaged. Try exporting or downloading it again."
    )


def not_audio_error(src: Source, kind: str | None) -> AudioDecodeError:
    """The message for an input that is not audio at all."""
    looks = f" (it looks like {kind})" if kind else ""
    return AudioDecodeError(f"{src.subject} is not an audio or video file{looks}. {FORMATS_HINT}")


def error_reason(error: BaseException) -> str:
    """FFmpeg's or the OS's own words for an error, without the file name that ``str(error)`` appends."""
    return getattr(error, "strerror", None) or str(error) or type(error).__name__


def format_duration(seconds: float) -> str:
    """Seconds as "42.5 s" under a minute (a limit like 1.5 s must stay readable), else as a clock "1:02:03"."""
    return f"{seconds:.1f} s" if seconds < 60 else format_clock(seconds)
