"""Requests take turns on the one engine: one runs, a few wait, the rest are told to come back (429).

Each admitted request runs on its own thread, which waits for the process-wide turn (`asr.jobs.engine_turn`,
the same one the app's jobs take), transcribes, and hands its results to the event loop as they come: the
info once the first chunk is done, then each segment. `cancel()` (a client that disconnected) stops the run
within a decode step, or takes a waiting request out of the line at once. A request keeps its place in the
count until its thread has ended, so the count is what really holds or waits for the engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass

from ..errors import TranscriptionCancelled
from ..jobs import engine_turn
from ..results import Segment, TranscriptionInfo

logger = logging.getLogger(__name__)

# What a request's thread does once it has the turn: the pipeline's (segments, info), with the run's cancel event.
Work = Callable[[threading.Event], tuple[Iterator[Segment], TranscriptionInfo]]
_FIRST_GUESS_S = 10.0  # how long a job takes, for Retry-After before any has finished


class QueueFull(Exception):
    """Every place is taken; `retry_after_s` estimates when one frees up."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"retry after {retry_after_s} s")
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class QueueState:
    running: int
    waiting: int


class EngineQueue:
    """Admits one running and `max_waiting` waiting requests at a time."""

    def __init__(self, max_waiting: int) -> None:
        self._capacity = 1 + max_waiting
        self._lock = threading.Lock()
        self._admitted = 0
        self._running = 0
        self._last_job_s = _FIRST_GUESS_S

    def state(self) -> QueueState:
        with self._lock:
            return QueueState(self._running, self._admitted - self._running)

    def start(self, work: Work) -> Run:
        """Admit a request and start its thread, or raise `QueueFull`. Call from the event loop."""
        with self._lock:
            if self._admitted >= self._capacity:
                raise QueueFull(max(1, math.ceil(self._last_job_s * self._admitted)))
            self._admitted += 1
        run = Run(self, work, asyncio.get_running_loop())
        try:
            run.thread.start()
        except BaseException:
            self._leave()
            raise
        return run

    @contextlib.contextmanager
    def _running_job(self) -> Iterator[None]:
        started = time.monotonic()
        with self._lock:
            self._running += 1
        try:
            yield
        finally:
            with self._lock:
                self._running -= 1
                self._last_job_s = time.monotonic() - started

    def _leave(self) -> None:
        with self._lock:
            self._admitted -= 1


_END = object()  # the thread's last item: every segment has been handed over


class Run:
    """One request's transcription on its thread; read it with `started()` then `segments()`."""

    def __init__(self, queue: EngineQueue, work: Work, loop: asyncio.AbstractEventLoop) -> None:
        self._queue, self._loop = queue, loop
        self._work: Work | None = work
        self._items: asyncio.Queue[object] = asyncio.Queue()
        self._cancel = threading.Event()
        self.thread = threading.Thread(target=self._run, name="api-transcription", daemon=True)

    def cancel(self) -> None:
        """Stop the run (no-op once it has ended); its thread then ends within a decode step."""
        self._cancel.set()

    async def started(self) -> TranscriptionInfo:
        """The run's info, once it has the turn and the first chunk is transcribed; raises the run's error."""
        item = await self._next()
        assert isinstance(item, TranscriptionInfo), item
        return item

    async def segments(self) -> AsyncIterator[Segment]:
        """Each segment as the pipeline yields it; raises the run's error where it happened."""
        while (item := await self._next()) is not _END:
            assert isinstance(item, Segment), item
            yield item

    async def _next(self) -> object:
        item = await self._items.get()
        if isinstance(item, BaseException):
            raise item
        return item

    def _put(self, item: object) -> None:
        with contextlib.suppress(RuntimeError):  # the loop has closed: the server is stopping, nobody reads
            self._loop.call_soon_threadsafe(self._items.put_nowait, item)

    def _run(self) -> None:
        work, self._work = self._work, None  # the audio it holds goes when this thread ends, not with the response
        assert work is not None, "a run starts once"
        try:
            with engine_turn(self._cancel) as ours:
                if not ours:
                    raise TranscriptionCancelled("The request was cancelled while it waited for the model.")
                with self._queue._running_job():
                    segments, info = work(self._cancel)
                    self._put(info)
                    for segment in segments:
                        self._put(segment)
            self._put(_END)
        except Exception as error:  # handed to the request, which answers with it (or is gone)
            self._put(error)
        finally:
            self._queue._leave()
