"""`python -m asr serve`: load the model once, then answer OpenAI-style requests on this machine.

The socket is bound here, before uvicorn starts, so that ``--port 0`` can print the port it got and a port
already in use is a one-line error. uvicorn's own access log is off (it would print query strings); the
app logs one line a request without content (`app._RequestLog`).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import sys
import threading
import time
from collections.abc import Iterator

import uvicorn
from starlette.types import ASGIApp

from .. import hub
from ..errors import ASRError, ModelNotFoundError, OptionsError
from ..generation import Aligner
from ..tempfiles import remove_stale_workdirs
from .app import Service, create_app
from .errors import from_asr_error
from .settings import ServerSettings

logger = logging.getLogger(__name__)

GRACEFUL_SHUTDOWN_S = 5  # Ctrl-C: running requests get this long, then their threads die with the process
START_TIMEOUT_S = 30.0


def uvicorn_server(app: ASGIApp) -> uvicorn.Server:
    """uvicorn as the server runs it: our logging, no access log, no lifespan, no Server header."""
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        lifespan="off",
        server_header=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )
    return uvicorn.Server(config)


def bind(settings: ServerSettings) -> socket.socket:
    """A listening socket on the settings' host and port (raises OptionsError when it cannot be had)."""
    host = settings.host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, settings.port), family=family)
    except OSError as e:
        raise OptionsError(
            f"Cannot listen on {settings.host} port {settings.port} ({e.strerror}): choose another --port, "
            "or stop the program that uses it."
        ) from e


def address(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


@contextlib.contextmanager
def serving(service: Service) -> Iterator[str]:
    """Serve `service` on a thread of this process until the block ends; yields its URL (tests, benchmarks,
    or a program that embeds the server next to its own work)."""
    sock = bind(service.settings)
    server = uvicorn_server(create_app(service))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="api-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("The API server did not start; its log says why.")
        time.sleep(0.02)
    try:
        yield address(sock)
    finally:
        server.should_exit = True
        thread.join(START_TIMEOUT_S)
        sock.close()


def serve(
    settings: ServerSettings, model: str, *, device: str = "auto", dtype: str = "auto", aligner: str | None = None
) -> None:
    """Load the model and serve until Ctrl-C. A model that is not on this computer is no reason not to start:
    every transcription then answers 503 with the command that downloads it.

    Raises:
        OptionsError: the settings cannot work (see `ServerSettings.validate`) or the port is taken.
        ModelLoadError: the model is there but cannot be loaded.
    """
    settings.validate()
    sock = bind(settings)
    remove_stale_workdirs()
    from ..engine import QwenEngine  # torch loads only now that the settings are known good

    service: Service
    try:
        engine = QwenEngine.load(model, device=device, dtype=dtype)
    except ModelNotFoundError as error:
        print(f"note: {error} Until then every transcription answers 503.", file=sys.stderr)
        service = Service(settings, None, model_problem=from_asr_error(error))
    else:
        service = Service(settings, engine, load_aligner=lambda: _load_aligner(aligner, engine.info.device))
    url = address(sock)
    print(
        f"Serving {service.model_id if service.engine else 'no model yet'} at {url}/v1 (OpenAI audio API; "
        f"base_url={url}/v1). Press Ctrl-C to stop.",
        file=sys.stderr,
        flush=True,
    )
    uvicorn_server(create_app(service)).run(sockets=[sock])


def _load_aligner(aligner: str | None, device: str) -> Aligner | None:
    """The forced aligner for word times, or None (times are then estimated) when it is not on this computer."""
    from ..aligner import QwenAligner

    name = aligner or hub.DEFAULT_ALIGNER
    try:
        return QwenAligner.load(name, device=device)
    except ASRError as error:
        logger.warning("Word times are estimated: the forced aligner could not be loaded (%s)", type(error).__name__)
        return None
