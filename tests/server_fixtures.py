"""The API server (asr/server/) on loopback for the tests: in this process, on a thread, with the session's
tiny engine, run by the same `uvicorn_server` that `python -m asr serve` runs (registered by conftest.py).

In-process, the tests can watch the server's own memory and descriptors (the soak's helpers), hold the
engine's turn as the app's jobs do, and share the engine instead of loading it per server.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx2
import pytest

from asr.server.app import Service
from asr.server.serve import serving
from asr.server.settings import ServerSettings
from testbed.corpus import clip, mono, pyav_bytes, soundfile_bytes
from testbed.speech import SENTENCES, speech_with_pauses

TEST_KEY = "test-key-0123456789"


@dataclass(frozen=True)
class RunningServer:
    url: str  # http://127.0.0.1:PORT
    service: Service

    @property
    def base_url(self) -> str:
        """What the openai client takes as base_url."""
        return f"{self.url}/v1"

    def health(self) -> dict:
        return httpx2.get(f"{self.url}/health", timeout=10).json()


@contextlib.contextmanager
def running_server(service: Service) -> Iterator[RunningServer]:
    """Serve `service` on a free loopback port until the block ends."""
    with serving(service) as url:
        yield RunningServer(url, service)


ServerFactory = Callable[..., contextlib.AbstractContextManager[RunningServer]]


@pytest.fixture
def serve_engine(engine) -> ServerFactory:
    """Factory: ``with serve_engine(api_key=..., max_waiting=..., load_aligner=...) as server:`` on port 0."""

    def start(*, load_aligner=lambda: None, **settings) -> contextlib.AbstractContextManager[RunningServer]:
        return running_server(Service(ServerSettings(port=0, **settings), engine, load_aligner=load_aligner))

    return start


@pytest.fixture(scope="module")
def api_server(engine) -> Iterator[RunningServer]:
    """One server without a key for a module's tests."""
    with running_server(Service(ServerSettings(port=0), engine)) as server:
        yield server


@pytest.fixture(scope="session")
def speech_wav() -> bytes:
    """About 3.7 s of espeak-ng speech as a WAV file."""
    return soundfile_bytes(clip())


@pytest.fixture(scope="session")
def speech_webm() -> bytes:
    """The same speech as Opus in WebM, what a browser's MediaRecorder makes (Open WebUI's voice input)."""
    return pyav_bytes("webm", [mono(clip(), "libopus", 48_000)])


@pytest.fixture(scope="session")
def long_speech_wav() -> bytes:
    """Four sentences with pauses, about 20 s: several chunks, so a run takes a while and can be cut off."""
    samples, _ = speech_with_pauses(SENTENCES[1:5], (1.0, 1.0, 1.0))
    return soundfile_bytes(samples)
