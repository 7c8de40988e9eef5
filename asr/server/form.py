"""The transcription request: its body read within the size limit, its multipart form parsed in memory, and its
fields checked into a typed `TranscriptionRequest` before anything waits for the model.

The upload never touches the disk here (Starlette's own form parser spools files over 1 MB to the system temp
folder); the pipeline keeps what it must spill in its private folder (`asr.tempfiles`). The audio's format is
found from its bytes by the decoders, never from the file name or the part's Content-Type: Open WebUI sends
WebM recordings named ``.wav`` (open-webui#14101).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from ..errors import OptionsError
from ..options import SpeakerOptions, normalize_language
from .errors import APIError

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

DIARIZED = "diarized_json"  # OpenAI's speaker-labelled body (model gpt-4o-transcribe-diarize): speakers are on
RESPONSE_FORMATS = ("json", "text", "srt", "vtt", "verbose_json", DIARIZED)
GRANULARITIES = ("word", "segment")
# The openai client sends a list as repeated "name[]" fields; curl users may leave the brackets out.
_GRANULARITY_FIELDS = ("timestamp_granularities[]", "timestamp_granularities")
_NAME_FIELDS = ("known_speaker_names[]", "known_speaker_names")
_REFERENCE_FIELDS = ("known_speaker_references[]", "known_speaker_references")


@dataclass(frozen=True)
class Form:
    """A parsed multipart form: its text fields in order (a name may repeat) and the one file's bytes."""

    fields: tuple[tuple[str, str], ...]
    file: bytes | None = field(default=None, repr=False)

    def get(self, name: str) -> str | None:
        return next((value for key, value in self.fields if key == name), None)

    def get_all(self, *names: str) -> list[str]:
        return [value for key, value in self.fields if key in names]


@dataclass(frozen=True)
class TranscriptionRequest:
    """The checked fields of one ``POST /v1/audio/transcriptions``."""

    audio: bytes = field(repr=False)
    response_format: str = "json"
    language: str | None = None  # the model's name for it ("English"); None: detect
    prompt: str = ""  # becomes the model's context (names, jargon); an echo of it is dropped by the pipeline
    granularities: frozenset[str] = frozenset({"segment"})  # of verbose_json
    stream: bool = False
    temperature: float = 0.0  # accepted for compatibility: decoding is greedy, as at temperature 0
    speakers: SpeakerOptions | None = None  # label who speaks (diarized_json, or the speakers field); None: off

    @property
    def wants_words(self) -> bool:
        """Whether the aligner should time the words: verbose_json's words ask for it, and diarized_json does
        too, because aligned words let a sentence split where the speaker changes (asr/speakers/assign.py)."""
        return self.response_format == DIARIZED or (
            self.response_format == "verbose_json" and "word" in self.granularities
        )


def too_large(limit_bytes: int) -> APIError:
    return APIError(
        413,
        f"The request is larger than this server's limit of {limit_bytes / 1e6:.0f} MB. Send a shorter or "
        "compressed recording (e.g. MP3 or OPUS), or start the server with a larger --max-upload-mb.",
        param="file",
        code="request_too_large",
    )


async def read_body(request: Request, limit_bytes: int) -> bytes:
    """The whole body, refused (413) as soon as it is known to pass `limit_bytes`."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit_bytes:
        raise too_large(limit_bytes)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit_bytes:
            raise too_large(limit_bytes)
    return bytes(body)


def parse_form(content_type: str | None, body: bytes) -> Form:
    """Split a multipart/form-data body into its fields and its file part, in memory."""
    kind, params = parse_options_header(content_type or "")
    boundary = params.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise APIError(
            400,
            "Send the audio as multipart/form-data with the recording in a 'file' field "
            "(curl -F file=@meeting.m4a), as the OpenAI clients do.",
            param="file",
            code="invalid_content_type",
        )
    parts = _Parts()
    try:
        parser = MultipartParser(boundary, parts.callbacks())
        parser.write(body)
        parser.finalize()
    except MultipartParseError as e:
        raise APIError(400, "The multipart form is damaged or cut short; send the request again.") from e
    if not parts.done:
        raise APIError(400, "The multipart form is cut short (no closing boundary); send the request again.")
    return parts.form()


class _Parts:
    """Collects python-multipart's callbacks into names, values and the file."""

    def __init__(self) -> None:
        self.fields: list[tuple[str, str]] = []
        self.file: bytes | None = None
        self.done = False
        self._header_name, self._header_value = b"", b""
        self._disposition = b""
        self._data: list[bytes] = []

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": self._begin,
            "on_header_field": self._add_header_name,
            "on_header_value": self._add_header_value,
            "on_header_end": self._header_end,
            "on_part_data": self._add_data,
            "on_part_end": self._part_end,
            "on_end": self._end,
        }

    def _begin(self) -> None:
        self._disposition, self._data = b"", []

    def _add_header_name(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _add_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _add_data(self, data: bytes, start: int, end: int) -> None:
        self._data.append(data[start:end])

    def _header_end(self) -> None:
        if self._header_name.lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_name, self._header_value = b"", b""

    def _part_end(self) -> None:
        _, params = parse_options_header(self._disposition)
        name = params.get(b"name", b"").decode("utf-8", "replace")
        data = b"".join(self._data)
        self._data = []
        if b"filename" in params or name == "file":  # the file's name is never read: formats come from bytes
            if self.file is not None:
                raise APIError(400, "Send one recording per request, in the 'file' field.", param="file")
            self.file = data
            return
        try:
            self.fields.append((name, data.decode("utf-8")))
        except UnicodeDecodeError as e:
            raise APIError(400, f"The form field {name!r} is not UTF-8 text.", param=name) from e

    def _end(self) -> None:
        self.done = True

    def form(self) -> Form:
        return Form(tuple(self.fields), self.file)


def transcription_request(form: Form) -> TranscriptionRequest:
    """Check every field we use (unknown ones are ignored, as OpenAI adds new ones often)."""
    if form.file is None:
        raise APIError(400, "No recording: send the audio in the form's 'file' field.", param="file")
    response_format = (form.get("response_format") or "json").strip()
    if response_format not in RESPONSE_FORMATS:
        raise APIError(
            400,
            f"Unknown response_format {response_format!r}. Use one of: {', '.join(RESPONSE_FORMATS)}.",
            param="response_format",
        )
    granularities = {value.strip() for value in form.get_all(*_GRANULARITY_FIELDS)}
    unknown = sorted(granularities - set(GRANULARITIES))
    if unknown:
        raise APIError(
            400,
            f"Unknown timestamp_granularities {unknown}. Use word, segment or both.",
            param="timestamp_granularities",
        )
    return TranscriptionRequest(
        audio=form.file,
        response_format=response_format,
        language=language(form.get("language")),
        prompt=(form.get("prompt") or "").strip(),
        granularities=frozenset(granularities or {"segment"}),
        stream=_boolean(form.get("stream"), "stream"),
        temperature=_temperature(form.get("temperature")),
        speakers=speaker_options(form, response_format),
    )


def speaker_options(form: Form, response_format: str) -> SpeakerOptions | None:
    """Speakers from diarized_json or ``speakers=auto|N`` (our field, for any format), named in order of first
    appearance by ``known_speaker_names[]``; None when neither asks. Voice references are refused: the speakers
    are found from the recording alone."""
    if any(value.strip() for value in form.get_all(*_REFERENCE_FIELDS)):
        raise APIError(
            400,
            "Voice references (known_speaker_references) are not supported: this server finds the speakers from "
            "the recording alone. Leave them out; known_speaker_names still names the speakers, in the order "
            "they first speak.",
            param="known_speaker_references",
            code="unsupported_value",
        )
    count = (form.get("speakers") or "").strip()
    names = tuple(name.strip() for name in form.get_all(*_NAME_FIELDS))
    if not count and response_format != DIARIZED:
        if names:
            raise APIError(
                400,
                "known_speaker_names names the speakers that are found; ask for them with "
                "response_format=diarized_json or speakers=auto.",
                param="known_speaker_names",
            )
        return None
    try:
        options = SpeakerOptions.parse(count or "auto")
    except OptionsError as error:
        raise APIError(400, f"speakers: {error}", param="speakers", code="invalid_value") from None
    if not all(names):
        raise APIError(
            400, "known_speaker_names holds an empty name: give every entry a name.", param="known_speaker_names"
        )
    try:
        named = replace(options, names=names)
        named.validate()
    except OptionsError as error:
        raise APIError(400, str(error), param="known_speaker_names", code="invalid_value") from None
    return named


def language(value: str | None) -> str | None:
    """ "en", "en-US", "en_us" or "English" -> "English"; empty means detect; anything else is a 400 on language."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    problem = None
    for candidate in dict.fromkeys((text, text.replace("_", "-").split("-")[0])):  # the tag, then its language
        try:
            return normalize_language(candidate)
        except OptionsError as error:
            problem = problem or error
    raise APIError(400, str(problem), param="language", code="unsupported_language")


def _boolean(value: str | None, name: str) -> bool:
    if value is None or value.strip().lower() in ("", "false", "0"):
        return False
    if value.strip().lower() in ("true", "1"):
        return True
    raise APIError(400, f"{name} must be true or false, got {value!r}.", param=name)


def _temperature(value: str | None) -> float:
    if value is None or not value.strip():
        return 0.0
    try:
        temperature = float(value)
    except ValueError:
        temperature = -1.0
    if not 0.0 <= temperature <= 1.0:
        raise APIError(400, f"temperature must be a number from 0 to 1, got {value!r}.", param="temperature")
    return temperature
