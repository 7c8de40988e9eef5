"""Render a finished `Transcript` as txt, SRT, WebVTT, JSON or DOCX, and save it to a file.

Why it looks like this (examples-to-follow.md §7, after whisper's ``utils.py`` writers):

- Every format is one `Writer` in one registry, `WRITERS`: its file extension, its MIME type and a render
  function of one shape, ``(transcript, layout, name) -> str | bytes``, so `render` has no special cases.
  `app.py` hands the result to ``st.download_button`` with the writer's MIME type; `cli.py` writes it
  with `save`. Nothing here knows about the model.
- SRT and VTT format the same cues (`cues.layout_cues`, which holds the layout rules) and differ only in
  the header, the cue numbers, the decimal marker (``,`` or ``.``) and VTT's escaping of ``&``, ``<`` and
  ``>`` (its cue text is markup). Both formats always write the hours (``00:01:02.345``). WebVTT may leave
  them out under an hour, as whisper does, but one fixed-width rule is simpler and every player reads it.
- The JSON output carries `TranscriptionInfo` and the options used, so that a run can be reproduced.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .cues import DEFAULT_LAYOUT, Cue, SubtitleLayout, layout_cues
from .docx_writer import render_docx
from .errors import ASRError, OptionsError
from .results import SegmentFlag, Transcript, speaker_runs

__all__ = [
    "DEFAULT_LAYOUT",
    "FORMATS",
    "WRITERS",
    "SubtitleLayout",
    "Writer",
    "render",
    "render_json",
    "render_srt",
    "render_txt",
    "render_vtt",
    "save",
]


_SRT_DECIMAL_MARKER = ","
_VTT_DECIMAL_MARKER = "."
_VTT_HEADER = "WEBVTT\n\n"


def render_txt(transcript: Transcript) -> str:
    """Render the plain text: one segment per line; with speakers, one paragraph per turn after ``Name:``.

    Args:
        transcript: the finished transcription.

    Returns:
        `Transcript.text` with a trailing newline, or ``""`` when there is no text.
    """
    if not transcript.speakers:
        text = transcript.text
        return f"{text}\n" if text else ""
    paragraphs = []
    for speaker, segments in speaker_runs(tuple(s for s in transcript.segments if s.text)):
        said = " ".join(" ".join(segment.text.split()) for segment in segments)
        name = transcript.speaker_name(speaker)
        paragraphs.append(f"{name}: {said}" if name else said)
    return "\n\n".join(paragraphs) + "\n" if paragraphs else ""


def render_srt(transcript: Transcript, layout: SubtitleLayout = DEFAULT_LAYOUT) -> str:
    """Render SubRip subtitles: numbered cues with ``HH:MM:SS,mmm`` times.

    Args:
        transcript: the finished transcription.
        layout: line width, lines per cue and cue durations.

    Returns:
        The cues, each followed by a blank line; ``""`` when there is no text.
    """
    parts = []
    for number, cue in enumerate(layout_cues(transcript, layout), 1):
        name = transcript.speaker_name(cue.speaker) if cue.turn_start else None
        opening = f"{name}: " if name else ""  # "Name: " opens the first cue of each turn
        parts.append(f"{number}\n{_format_cue(cue, _SRT_DECIMAL_MARKER, opening=opening)}\n\n")
    return "".join(parts)


def render_vtt(transcript: Transcript, layout: SubtitleLayout = DEFAULT_LAYOUT) -> str:
    """Render WebVTT subtitles: the ``WEBVTT`` header, then cues with ``HH:MM:SS.mmm`` times.

    Args:
        transcript: the finished transcription.
        layout: line width, lines per cue and cue durations.

    Returns:
        The header and the cues, each followed by a blank line; only the header when there is no text.
    """
    parts = []
    for cue in layout_cues(transcript, layout):
        name = transcript.speaker_name(cue.speaker)
        opening = f"<v {_escape_vtt(name)}>" if name else ""  # on every cue: players show each cue's speaker
        parts.append(f"{_format_cue(cue, _VTT_DECIMAL_MARKER, escape=_escape_vtt, opening=opening)}\n\n")
    return _VTT_HEADER + "".join(parts)


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
                "approximate_times": SegmentFlag.APPROXIMATE_TIMES in segment.flags,
                "speaker": segment.speaker,
                "words": [
                    {
                        "start_s": _round_s(word.start_s),
                        "end_s": _round_s(word.end_s),
                        "text": word.text,
                        "speaker": word.speaker,
                    }
                    for word in segment.words
                ],
            }
            for segment in transcript.segments
        ],
        "speakers": [{"id": speaker.id, "name": speaker.name} for speaker in transcript.speakers or ()],
        "speaker_turns": [
            {"start_s": _round_s(turn.start_s), "end_s": _round_s(turn.end_s), "speaker": turn.speaker}
            for turn in transcript.speaker_turns
        ],
        "info": {
            "source": {**dataclasses.asdict(info.source), "duration_s": _round_s(info.source.duration_s)},
            "duration_s": _round_s(info.duration_s),
            "language": info.language,
            "model": info.model,
            "aligner": info.aligner,
            "notes": list(info.notes),
            "options": dataclasses.asdict(info.options),
        },
    }
    return json.dumps(document, ensure_ascii=False, indent=2) + "\n"


@dataclass(frozen=True)
class Writer:
    """One output format: the file extension (also its name in `FORMATS`), the MIME type for downloads,
    and its render function; calling the writer renders, e.g. ``WRITERS["txt"](transcript)``."""

    extension: str
    mime_type: str
    render: Callable[[Transcript, SubtitleLayout, str], str | bytes]  # (transcript, layout, title)

    def __call__(
        self, transcript: Transcript, layout: SubtitleLayout = DEFAULT_LAYOUT, *, name: str = "Transcript"
    ) -> str | bytes:
        return self.render(transcript, layout, name)


_WRITER_LIST = (
    Writer("txt", "text/plain", lambda transcript, _layout, _name: render_txt(transcript)),
    Writer("srt", "application/x-subrip", lambda transcript, layout, _name: render_srt(transcript, layout)),
    Writer("vtt", "text/vtt", lambda transcript, layout, _name: render_vtt(transcript, layout)),
    Writer("json", "application/json", lambda transcript, _layout, _name: render_json(transcript)),
    Writer(
        "docx",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        lambda transcript, _layout, name: render_docx(transcript, title=name),
    ),
)
WRITERS: dict[str, Writer] = {writer.extension: writer for writer in _WRITER_LIST}
FORMATS: tuple[str, ...] = tuple(WRITERS)  # also the file extensions


def render(
    transcript: Transcript, fmt: str, layout: SubtitleLayout = DEFAULT_LAYOUT, *, name: str = "Transcript"
) -> str | bytes:
    """Render `transcript` in format `fmt`: text, or bytes for DOCX; subtitles follow `layout`.

    Args:
        transcript: the finished transcription.
        fmt: one of `FORMATS`.
        layout: line width, lines per cue and cue durations (SRT and VTT only).
        name: the recording's name (e.g. "meeting.m4a"), shown as the DOCX title.

    Raises:
        OptionsError: `fmt` is not a known format; the message lists the valid ones.
    """
    if fmt not in WRITERS:
        raise OptionsError(f"Unknown output format {fmt!r}. Use one of: {', '.join(FORMATS)}.")
    return WRITERS[fmt](transcript, layout, name=name)


def save(
    transcript: Transcript, fmt: str, path: Path, layout: SubtitleLayout = DEFAULT_LAYOUT, *, name: str | None = None
) -> Path:
    """Render `transcript` in format `fmt` and write it to `path` (text as UTF-8; a DOCX titled `name`).

    The content is rendered before the file is opened, so a bad transcript never leaves an empty file.
    Newlines are written as ``\\n`` on every platform.

    Args:
        transcript: the finished transcription.
        fmt: one of `FORMATS` (``"txt"``, ``"srt"``, ``"vtt"``, ``"json"``, ``"docx"``).
        path: the file to create or overwrite; its folder must exist.
        layout: how subtitles are laid out (SRT and VTT only).
        name: the recording's name, the DOCX's title; `path`'s stem when not given.

    Returns:
        `path`, for chaining and logging.

    Raises:
        OptionsError: `fmt` is not a known format; the message lists the valid ones.
        ASRError: the file could not be written; the message says what to check.
    """
    content = render(transcript, fmt, layout, name=name or path.stem)
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


def _format_timestamp(ms: int, decimal_marker: str) -> str:
    """``HH:MM:SS<marker>mmm``; the hours are always written and grow past two digits after 99 h."""
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    seconds, ms = divmod(ms, 1_000)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}{decimal_marker}{ms:03d}"


def _format_cue(cue: Cue, decimal_marker: str, escape: Callable[[str], str] = str, opening: str = "") -> str:
    """The timing line and text lines of one cue (`opening` before its first line), without the blank line."""
    timing = f"{_format_timestamp(cue.start_ms, decimal_marker)} --> {_format_timestamp(cue.end_ms, decimal_marker)}"
    lines = [escape(line) for line in cue.lines]
    return "\n".join([timing, opening + lines[0], *lines[1:]])


def _escape_vtt(line: str) -> str:
    """Escape the characters that WebVTT cue text reads as markup."""
    return line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
