"""Transcripts in the bodies OpenAI's audio API returns, so that its clients read ours unchanged.

``text``, ``srt`` and ``vtt`` are plain ``text/plain; charset=utf-8`` bodies (not JSON strings), rendered by
`asr.writers` as the CLI writes them. ``verbose_json`` has OpenAI's fields; where Qwen3-ASR has no such
number we give a documented neutral value (docs/server.md), chosen so that the filters clients apply to
Whisper output (``avg_logprob < -1``: failed, ``no_speech_prob > 0.6``: silence) keep every segment:

- ``tokens`` ``[]``: the pipeline keeps text, not token ids;
- ``avg_logprob`` ``0.0`` and ``no_speech_prob`` ``0.0``: not computed (VAD already dropped the silence);
- ``temperature`` ``0.0``: true, decoding is greedy;
- ``seek``: the segment's start in 10 ms frames, as Whisper counts it;
- ``compression_ratio``: real, the text's length over its zlib-compressed length (Whisper's measure).

Our own extra fields ride along: ``flags`` per segment (e.g. ``approximate_times``) and, when speakers are
asked for, ``speaker`` on segments and words (the id, "S1") with ``speakers: [{id, name}]``, as our JSON has them.

``diarized_json`` is OpenAI's speaker-labelled body (model ``gpt-4o-transcribe-diarize``): ``task``,
``duration``, ``text``, ``usage`` and ``segments`` of ``type`` ``transcript.text.segment`` with ``id``
("seg_0"), ``start``, ``end``, ``text`` and ``speaker``: the name given in ``known_speaker_names[]``, else a
capital letter ("A", "B", ...) by first appearance, as OpenAI labels them. Streamed, each such segment is a
``transcript.text.segment`` event.
"""

from __future__ import annotations

import json
import math
import zlib
from typing import Any

from starlette.responses import JSONResponse, PlainTextResponse, Response

from ..results import Segment, Transcript
from ..writers import render_srt, render_txt, render_vtt
from .errors import APIError
from .form import DIARIZED

SSE_MEDIA_TYPE = "text/event-stream"
_PLAIN_WRITERS = {"text": render_txt, "srt": render_srt, "vtt": render_vtt}


def language_name(transcript: Transcript) -> str:
    """The language as OpenAI names it, a lowercase English name ("english"); "unknown" without speech."""
    named = transcript.info.language or next(iter(transcript.languages), None)
    return named.lower() if named else "unknown"


def transcription_response(transcript: Transcript, response_format: str, granularities: frozenset[str]) -> Response:
    """The finished transcript in `response_format` (one of `form.RESPONSE_FORMATS`)."""
    if response_format in _PLAIN_WRITERS:
        return PlainTextResponse(_PLAIN_WRITERS[response_format](transcript), media_type="text/plain; charset=utf-8")
    if response_format == "verbose_json":
        return JSONResponse(verbose_body(transcript, granularities))
    if response_format == DIARIZED:
        return JSONResponse(diarized_body(transcript))
    return JSONResponse({"text": transcript.text, "usage": _usage(transcript)})


def verbose_body(transcript: Transcript, granularities: frozenset[str]) -> dict[str, Any]:
    """OpenAI's verbose_json: segments when "segment" is asked (the default), words when "word" is."""
    body: dict[str, Any] = {
        "task": "transcribe",
        "language": language_name(transcript),
        "duration": _round_s(transcript.info.duration_s),
        "text": transcript.text,
    }
    spoken = [segment for segment in transcript.segments if segment.text]
    if "segment" in granularities:
        body["segments"] = [segment_body(index, segment) for index, segment in enumerate(spoken)]
    if "word" in granularities:
        body["words"] = [
            {"word": word.text, "start": _round_s(word.start_s), "end": _round_s(word.end_s)}
            | ({"speaker": word.speaker} if word.speaker else {})
            for segment in spoken
            for word in segment.words
        ]
    if transcript.info.options.speakers is not None:
        body["speakers"] = [{"id": speaker.id, "name": speaker.name} for speaker in transcript.speakers or ()]
    body["usage"] = _usage(transcript)
    return body


def diarized_body(transcript: Transcript) -> dict[str, Any]:
    """OpenAI's diarized_json: the text, and its segments with their speakers' labels."""
    labels = speaker_labels(transcript)
    spoken = [segment for segment in transcript.segments if segment.text]
    return {
        "task": "transcribe",
        "duration": _round_s(transcript.info.duration_s),
        "text": transcript.text,
        "segments": [diarized_segment(index, segment, labels) for index, segment in enumerate(spoken)],
        "usage": _usage(transcript),
    }


def speaker_labels(transcript: Transcript) -> dict[str, str]:
    """Speaker id -> OpenAI's label: its known name when one was given (in order of first appearance), else
    the capital letter of its place ("A" for the first speaker, "C" for a third one whatever the names)."""
    given = transcript.info.options.speakers.names if transcript.info.options.speakers else ()
    return {
        speaker.id: given[index] if index < len(given) else chr(ord("A") + index)
        for index, speaker in enumerate(transcript.speakers or ())
    }


def diarized_segment(index: int, segment: Segment, labels: dict[str, str]) -> dict[str, Any]:
    """One diarized_json segment, which is also the body of a streamed ``transcript.text.segment`` event."""
    return {
        "type": "transcript.text.segment",
        "id": f"seg_{index}",
        "start": _round_s(segment.start_s),
        "end": _round_s(segment.end_s),
        "text": segment.text,
        "speaker": labels.get(segment.speaker or "", ""),
    }


def segment_body(index: int, segment: Segment) -> dict[str, Any]:
    """One verbose_json segment: OpenAI's fields (neutral values documented above) and our flags."""
    body: dict[str, Any] = {
        "id": index,
        "seek": round(segment.start_s * 100),
        "start": _round_s(segment.start_s),
        "end": _round_s(segment.end_s),
        "text": segment.text,
        "tokens": [],
        "temperature": 0.0,
        "avg_logprob": 0.0,
        "compression_ratio": compression_ratio(segment.text),
        "no_speech_prob": 0.0,
        "flags": [flag.value for flag in segment.flags],
    }
    if segment.speaker is not None:
        body["speaker"] = segment.speaker
    return body


def compression_ratio(text: str) -> float:
    """Whisper's measure of repetition: UTF-8 length over zlib-compressed length (loops compress well)."""
    data = text.encode("utf-8")
    return round(len(data) / len(zlib.compress(data)), 3) if data else 0.0


def sse_event(body: dict[str, Any]) -> bytes:
    """One server-sent event as the openai client's decoder reads it: a ``data:`` line and a blank line."""
    return f"data: {json.dumps(body, ensure_ascii=False)}\n\n".encode()


def text_delta(delta: str) -> bytes:
    return sse_event({"type": "transcript.text.delta", "delta": delta})


def segment_event(index: int, segment: Segment, labels: dict[str, str]) -> bytes:
    return sse_event(diarized_segment(index, segment, labels))


def text_done(text: str) -> bytes:
    return sse_event({"type": "transcript.text.done", "text": text})


def error_event(error: APIError) -> bytes:
    """A failure after the stream began: the openai client raises it as an APIError with this message."""
    return sse_event(error.body())


def _usage(transcript: Transcript) -> dict[str, Any]:
    return {"type": "duration", "seconds": math.ceil(transcript.info.duration_s)}


def _round_s(seconds: float) -> float:
    return round(seconds, 3)
