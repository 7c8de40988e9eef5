"""The routes: OpenAI's audio transcription API on the local engine.

- ``POST /v1/audio/transcriptions``: multipart ``file``, ``model`` (any value: ``whisper-1`` or another name
  means the loaded model), ``language``, ``prompt``, ``response_format`` (``diarized_json`` labels speakers),
  ``timestamp_granularities[]``, ``stream``, ``temperature``, ``known_speaker_names[]``, and our ``speakers``;
- ``POST /v1/audio/translations``: 400, Qwen3-ASR does not translate;
- ``GET /v1/models``, ``GET /v1/models/{id}``, ``GET /health``.

The model is loaded once by `serve`; the forced aligner is loaded the first time a request asks for word
times (when it is on this computer; otherwise word times are estimated and flagged), the speaker model
(CAM++) the first time a request asks for speakers (503 when it is not installed). Logs name the route,
the status and the time taken, never a file name, a field's value or any text.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field, replace

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import ASRError, TranscriptionCancelled
from ..generation import Aligner, Engine
from ..options import TranscribeOptions
from ..pipeline import transcribe
from ..results import Segment, Transcript, TranscriptionInfo
from ..speakers import SpeakerEmbedder, load_speaker_model
from . import openai_format
from .errors import APIError, from_asr_error, unexpected
from .form import parse_form, read_body, transcription_request
from .queue import EngineQueue, QueueFull, Run
from .security import GuardMiddleware
from .settings import ServerSettings

logger = logging.getLogger(__name__)

WHISPER_ALIAS = "whisper-1"  # what most clients send; it names the loaded model here
CLIENT_CLOSED = 499  # nginx's "client closed request": the status of an answer nobody is left to read
CREATED = 0  # models carry no creation time we could give


@dataclass
class Service:
    """What the routes share: the settings, the loaded engine (or why there is none) and the queue."""

    settings: ServerSettings
    engine: Engine | None
    model_problem: APIError | None = None  # why there is no engine (503), when there is none
    load_aligner: Callable[[], Aligner | None] = lambda: None  # called once, when word times are first asked for
    # called with the engine's device when speakers are first asked for; raises ModelLoadError when not installed
    load_speakers: Callable[[str], SpeakerEmbedder] = load_speaker_model
    options: TranscribeOptions = field(default_factory=TranscribeOptions)  # a request sets language and context
    queue: EngineQueue = field(init=False)
    _aligner: Aligner | None = field(default=None, init=False)
    _aligner_tried: bool = field(default=False, init=False)
    _aligner_lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _speakers: SpeakerEmbedder | None = field(default=None, init=False)
    _speakers_lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def __post_init__(self) -> None:
        self.queue = EngineQueue(self.settings.max_waiting)

    @property
    def model_id(self) -> str:
        return self.engine.name if self.engine is not None else "none"

    def aligner(self) -> Aligner | None:
        """The forced aligner, loaded on first use (inside the engine's turn, so it never races a run)."""
        with self._aligner_lock:
            if not self._aligner_tried:
                self._aligner_tried = True
                self._aligner = self.load_aligner()
            return self._aligner

    def speaker_model(self, device: str) -> SpeakerEmbedder:
        """The speaker model, loaded on first use (inside the engine's turn, like the aligner).

        Raises:
            APIError: 503 when it cannot be loaded (a failure is not kept: a reinstall works without a restart).
        """
        with self._speakers_lock:
            if self._speakers is None:
                try:
                    self._speakers = self.load_speakers(device)
                except ASRError as error:
                    raise APIError(
                        503,
                        f"{error} Until then, ask without speakers (no diarized_json, no speakers field).",
                        param="speakers",
                        code="model_not_found",
                    ) from None
            return self._speakers


def create_app(service: Service) -> ASGIApp:
    """The ASGI app: routes behind the request checks (`security.GuardMiddleware`) and the request log."""
    routes = [
        Route("/v1/audio/transcriptions", _handler(service, transcriptions), methods=["POST"]),
        Route("/v1/audio/translations", translations, methods=["POST"]),
        Route("/v1/models", _handler(service, models), methods=["GET"]),
        Route("/v1/models/{model_id:path}", _handler(service, model), methods=["GET"]),
        Route("/health", _handler(service, health), methods=["GET"]),
    ]
    app = Starlette(routes=routes, exception_handlers={404: _not_found, 405: _wrong_method})
    return _RequestLog(GuardMiddleware(app, service.settings))


def _handler(
    service: Service, route: Callable[[Service, Request], Awaitable[Response]]
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        return await route(service, request)

    return endpoint


async def transcriptions(service: Service, request: Request) -> Response:
    try:
        if service.engine is None:
            raise service.model_problem or APIError(503, "No model is loaded.")
        form = parse_form(
            request.headers.get("content-type"), await read_body(request, service.settings.max_body_bytes)
        )
        asked = transcription_request(form)
        del form  # the request holds the audio now
        decode = replace(service.options.decode, language=asked.language, context=asked.prompt)
        options = replace(service.options, decode=decode, speakers=asked.speakers)
        engine = service.engine

        def work(cancel: threading.Event) -> tuple[Iterator[Segment], TranscriptionInfo]:
            speakers = service.speaker_model(engine.device) if asked.speakers is not None else None
            aligner = service.aligner() if asked.wants_words else None
            return transcribe(
                asked.audio, engine=engine, options=options, cancel=cancel, aligner=aligner, speaker_model=speakers
            )

        try:
            run = service.queue.start(work)
        except QueueFull as full:
            raise APIError(
                429,
                "The server is busy with other transcriptions; try again in a little while.",
                code="queue_full",
                headers={"Retry-After": str(full.retry_after_s)},
            ) from None
        watcher = asyncio.ensure_future(_cancel_when_gone(request, run))
        streaming = False
        try:
            info = await run.started()
            if asked.stream:
                streaming = True  # from here the streaming response watches for the client leaving
                labels = None if asked.speakers is None else openai_format.speaker_labels(Transcript((), info))
                return StreamingResponse(_stream(run, labels), media_type=openai_format.SSE_MEDIA_TYPE)
            segments = tuple([segment async for segment in run.segments()])
        finally:
            watcher.cancel()
            if not streaming:
                run.cancel()  # no-op after a finished run; stops one whose request ends any other way
        transcript = Transcript(segments, info)
        return openai_format.transcription_response(transcript, asked.response_format, asked.granularities)
    except APIError as error:
        return error.response()
    except (TranscriptionCancelled, ClientDisconnect):  # the client left during the upload or the run
        return APIError(CLIENT_CLOSED, "The client left; its transcription was stopped.").response()
    except ASRError as error:
        return from_asr_error(error).response()
    except Exception as error:
        return unexpected(error).response()


async def _cancel_when_gone(request: Request, run: Run) -> None:
    """Cancel `run` when the client disconnects (the request's body has been read, so only that can come)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass
    logger.info("A client left before its transcription was done; it is cancelled")
    run.cancel()


async def _stream(run: Run, labels: dict[str, str] | None) -> AsyncIterator[bytes]:
    """SSE: an event per segment as the pipeline yields it, then ``transcript.text.done``.

    Without speakers each is a ``transcript.text.delta``; the deltas join to the done text, which is
    `Transcript.text` (one segment a line). With speakers (`labels`: id -> label, known from the turns,
    which are found before the first chunk) each is a ``transcript.text.segment`` as diarized_json has it.
    A client that leaves makes Starlette cancel this generator, and the run with it.
    """
    texts: list[str] = []
    try:
        async for segment in run.segments():
            if not segment.text:
                continue
            if labels is None:
                yield openai_format.text_delta(("\n" if texts else "") + segment.text)
            else:
                yield openai_format.segment_event(len(texts), segment, labels)
            texts.append(segment.text)
        yield openai_format.text_done("\n".join(texts))
    except ASRError as error:
        yield openai_format.error_event(from_asr_error(error))
    except Exception as error:
        yield openai_format.error_event(unexpected(error))
    finally:
        run.cancel()


async def translations(request: Request) -> Response:
    return APIError(
        400,
        "Qwen3-ASR transcribes in the language spoken and does not translate; use /v1/audio/transcriptions.",
        code="translation_unsupported",
    ).response()


def _model_object(model_id: str) -> dict[str, object]:
    return {"id": model_id, "object": "model", "created": CREATED, "owned_by": "local"}


async def models(service: Service, request: Request) -> Response:
    ids = [service.model_id, WHISPER_ALIAS] if service.engine is not None else []
    return JSONResponse({"object": "list", "data": [_model_object(model_id) for model_id in ids]})


async def model(service: Service, request: Request) -> Response:
    model_id = request.path_params["model_id"]
    if service.engine is not None and model_id in (service.model_id, WHISPER_ALIAS):
        return JSONResponse(_model_object(model_id))
    message = f"This server has no model {model_id!r}; GET /v1/models lists the one it has."
    return APIError(404, message, param="model", code="model_not_found").response()


async def health(service: Service, request: Request) -> Response:
    state = service.queue.state()
    return JSONResponse(
        {
            "status": "ok" if service.engine is not None else "no_model",
            "model": service.model_id,
            "running": state.running,
            "waiting": state.waiting,
        }
    )


async def _not_found(request: Request, exc: Exception) -> Response:
    return APIError(404, f"No route {request.url.path}; this server has /v1/audio/transcriptions.").response()


async def _wrong_method(request: Request, exc: Exception) -> Response:
    return APIError(405, f"{request.method} is not allowed on {request.url.path}.").response()


class _RequestLog:
    """One log line a request: method, path (never the query), status and seconds; nothing of its content."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), [0]

        async def send_and_note(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            seconds = time.perf_counter() - started
            logger.info("%s %s %d %.2f s", scope["method"], scope["path"], status[0], seconds)
