"""Transcription in a background thread, for front ends that must stay responsive (the app).

A `TranscriptionJob` works through its inputs one after another on its own thread and exposes a
snapshot of its state (`JobSnapshot`) that a page can poll and draw: which file is running,
processed/total seconds, segments so far, per-file results and errors. Jobs of all sessions share
one model, so they take turns: a job waits in the queue (`JobStatus.QUEUED`) until the one before
it has finished. A job can be told how to ask whether anyone still wants it (`still_wanted`, e.g.
"is the page that started it still connected?"); once the answer has been no for
`ABANDONED_AFTER_S`, the job cancels itself and drops its audio and results, so a closed browser
tab frees the model, the memory and the temporary files of its run. Nothing here knows about
Streamlit.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from enum import StrEnum

from .errors import ASRError, DownloadCancelled, TranscriptionCancelled
from .options import TranscribeOptions
from .pipeline import Aligner, Engine, transcribe
from .progress import Stage
from .results import Segment, Transcript, TranscriptionInfo

logger = logging.getLogger(__name__)

_TURN = threading.Lock()  # one transcription at a time per process: the model is shared
# How long nobody may want a job before it is cancelled: long enough for a dropped connection to come back
# (a laptop waking up, a flaky network), short enough that a closed tab's run does not hold the model.
ABANDONED_AFTER_S = 5.0
_POLL_S = 0.25  # how often a queued job looks for its turn and the watcher asks `still_wanted`


@contextmanager
def engine_turn(cancel: threading.Event) -> Iterator[bool]:
    """Hold the shared model's turn for the block: yields True once it is ours, or False (without it) when
    `cancel` is set while waiting, so a queued caller that is no longer wanted leaves the queue at once.

    Everything in a process that uses the engine (the app's jobs, the API server's requests) waits here.
    """
    while not _TURN.acquire(timeout=_POLL_S):
        if cancel.is_set():
            yield False
            return
    try:
        yield True
    finally:
        _TURN.release()


class JobStatus(StrEnum):
    QUEUED = "queued"  # waiting for another session's transcription to finish
    RUNNING = "running"
    DONE = "done"  # every input has a result or an error
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class JobInput:
    """One recording to transcribe: its bytes and the name shown to the user (never logged)."""

    name: str
    data: bytes


@dataclass(frozen=True)
class FileResult:
    """How one input ended: a transcript (possibly partial after cancel), or an error message."""

    name: str
    transcript: Transcript | None = None
    error: str | None = None
    cancelled: bool = False
    notices: tuple[str, ...] = ()  # changes of course the user should know of (e.g. moved to the CPU)
    audio: bytes | None = field(default=None, repr=False)  # the input as given (the same object, no copy), to play


@dataclass(frozen=True)
class JobSnapshot:
    """Everything a page needs to draw the job's state, copied under the job's lock."""

    status: JobStatus
    current: str | None = None  # name of the input being transcribed
    processed_s: float = 0.0
    total_s: float = 0.0
    elapsed_s: float = 0.0  # since the current input started
    reported_s: float = 0.0  # elapsed_s when processed_s was last reported
    stage: Stage | None = None  # a pass under way besides the transcription (finding speakers, word times, ...)
    stage_share: float = 0.0  # of that pass, done
    segments: tuple[Segment, ...] = ()  # of the current input, so far
    info: TranscriptionInfo | None = None  # of the current input, once known
    notices: tuple[str, ...] = ()  # of the current input, as they happen
    results: tuple[FileResult, ...] = ()  # finished inputs, in order

    @property
    def speed(self) -> float | None:
        """Audio seconds processed per wall-clock second, as of the last progress report."""
        return self.processed_s / self.reported_s if self.processed_s > 0 and self.reported_s > 0 else None

    @property
    def remaining_s(self) -> float | None:
        """Seconds left at the speed so far, counted down since the last report.

        Measured only at reports, an estimate that also divided by the time since then would grow between
        every two reports; counted down instead, it falls steadily while the run keeps its pace, and a
        report corrects it. Zero once the countdown has run out before the next report.
        """
        speed = self.speed
        if not speed:
            return None
        return max(0.0, (self.total_s - self.processed_s) / speed - (self.elapsed_s - self.reported_s))


class TranscriptionJob:
    """Transcribes `inputs` in order on a background thread; poll `snapshot()`, stop with `cancel()`.

    With `still_wanted`, a watcher thread asks it every `_POLL_S`; when it has answered False for
    `abandoned_after_s` in a row, the job is cancelled as abandoned: it ends without results and
    lets go of its inputs, since nobody is left to read them.
    """

    def __init__(
        self,
        inputs: list[JobInput],
        *,
        engine: Engine,
        options: TranscribeOptions,
        aligner: Aligner | None = None,
        still_wanted: Callable[[], bool] | None = None,
        abandoned_after_s: float = ABANDONED_AFTER_S,
    ) -> None:
        self._inputs = list(inputs)
        self._engine = engine
        self._aligner = aligner
        self._options = options
        self._still_wanted = still_wanted
        self._abandoned_after_s = abandoned_after_s
        self._cancel = threading.Event()
        self._abandoned = False
        self._ended = threading.Event()
        self._lock = threading.Lock()
        self._state = JobSnapshot(status=JobStatus.QUEUED)
        self._started_at = 0.0
        self._thread = threading.Thread(target=self._run, name="transcription", daemon=True)

    def start(self) -> TranscriptionJob:
        self._thread.start()
        if self._still_wanted is not None:
            threading.Thread(target=self._watch, name="transcription-watcher", daemon=True).start()
        return self

    def cancel(self) -> None:
        """Stop within a second or two (a queued job leaves the queue at once); finished segments are kept."""
        self._cancel.set()

    def wait(self, timeout_s: float | None = None) -> bool:
        """Block until the job has ended; True if it did within the timeout."""
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def snapshot(self) -> JobSnapshot:
        with self._lock:
            if self._state.status is JobStatus.RUNNING:
                return replace(self._state, elapsed_s=time.monotonic() - self._started_at)
            return self._state

    def _update(self, **changes) -> None:
        with self._lock:
            self._state = replace(self._state, **changes)

    def _on_progress(self, processed_s: float, total_s: float) -> None:
        self._update(processed_s=processed_s, total_s=total_s, reported_s=time.monotonic() - self._started_at)

    def _on_stage(self, stage: Stage, share: float) -> None:
        self._update(stage=None if share >= 1.0 else stage, stage_share=share)

    def _on_notice(self, text: str) -> None:
        with self._lock:
            self._state = replace(self._state, notices=(*self._state.notices, text))

    def _watch(self) -> None:
        """Cancel the job once `still_wanted` has said no for `abandoned_after_s` without a break."""
        still_wanted = self._still_wanted
        assert still_wanted is not None  # only started with one
        unwanted_since: float | None = None
        while not self._ended.wait(_POLL_S):
            if still_wanted():
                unwanted_since = None
                continue
            now = time.monotonic()
            unwanted_since = now if unwanted_since is None else unwanted_since
            if now - unwanted_since >= self._abandoned_after_s:
                logger.info(
                    "Cancelling a %s transcription: its page has been closed for %.0f s",
                    self.snapshot().status,
                    now - unwanted_since,
                )
                self._abandoned = True
                self._cancel.set()
                return

    def _run(self) -> None:
        try:
            with engine_turn(self._cancel) as ours:
                if ours:  # False: cancelled while queued, the job ends at once
                    self._run_inputs()
            if self._abandoned:  # nobody will read the results: keep nothing of the run
                self._inputs = []
                with self._lock:
                    self._state = JobSnapshot(status=JobStatus.CANCELLED)
            final = JobStatus.CANCELLED if self._cancel.is_set() else JobStatus.DONE
            self._update(status=final, current=None)
        finally:
            self._ended.set()

    def _run_inputs(self) -> None:
        for item in self._inputs:
            if self._cancel.is_set():
                break
            self._started_at = time.monotonic()
            self._update(
                status=JobStatus.RUNNING,
                current=item.name,
                processed_s=0.0,
                total_s=0.0,
                reported_s=0.0,
                stage=None,
                segments=(),
                info=None,
                notices=(),
            )
            result = self._transcribe_one(item)
            with self._lock:
                self._state = replace(self._state, results=(*self._state.results, result), segments=())

    def _transcribe_one(self, item: JobInput) -> FileResult:
        info = None
        try:
            segments, info = transcribe(
                item.data,
                engine=self._engine,
                options=self._options,
                progress=self._on_progress,
                cancel=self._cancel,
                notice=self._on_notice,
                aligner=self._aligner,
                stage=self._on_stage,
            )
            self._update(info=info, total_s=info.duration_s)
            for segment in segments:
                with self._lock:
                    self._state = replace(self._state, segments=(*self._state.segments, segment))
        except TranscriptionCancelled:
            partial = Transcript(self.snapshot().segments, info) if info is not None else None
            return FileResult(
                item.name, transcript=partial, cancelled=True, notices=self.snapshot().notices, audio=item.data
            )
        except ASRError as e:
            return FileResult(item.name, error=str(e), notices=self.snapshot().notices)
        except Exception:  # a bug or an exhausted machine: keep the app alive, log the trace without content
            logger.exception("Transcription failed unexpectedly")
            return FileResult(item.name, error="Something went wrong while transcribing; details are in the log.")
        done = self.snapshot()
        return FileResult(item.name, transcript=Transcript(done.segments, info), notices=done.notices, audio=item.data)


@dataclass(frozen=True)
class DownloadSnapshot:
    """State of a model download, for a progress bar."""

    status: JobStatus
    downloaded_bytes: int = 0
    total_bytes: int = 0  # grows as the file list is known; 0 until then
    folder: str | None = None  # where the model is, once done
    error: str | None = None


class DownloadJob:
    """`hub.download_model` on a background thread, with byte progress a page can poll."""

    def __init__(self, model: str, *, endpoint: str | None = None) -> None:
        self._model, self._endpoint = model, endpoint
        self._lock = threading.Lock()
        self._state = DownloadSnapshot(status=JobStatus.QUEUED)
        self._byte_bars: list = []
        self._cancel = threading.Event()
        self._thread = threading.Thread(target=self._run, name="model-download", daemon=True)

    def start(self) -> DownloadJob:
        self._thread.start()
        return self

    def wait(self, timeout_s: float | None = None) -> bool:
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def cancel(self) -> None:
        """Stop within one chunk of the file being fetched; finished files stay, the partial one is deleted."""
        self._cancel.set()

    def snapshot(self) -> DownloadSnapshot:
        with self._lock:
            bars = [(bar.n, bar.total or 0) for bar in self._byte_bars]
            state = self._state
        if bars and state.status is JobStatus.RUNNING:
            done, total = max(bars, key=lambda pair: pair[1])
            return replace(state, downloaded_bytes=int(done), total_bytes=int(total))
        return state

    def _progress_class(self):
        """A tqdm class that draws nothing and lets `snapshot` read the byte counters."""
        import io

        from tqdm import tqdm

        job = self

        class _Recorded(tqdm):
            def __init__(self, *args, **kwargs):
                kwargs["file"] = io.StringIO()
                super().__init__(*args, **kwargs)
                if kwargs.get("unit") == "B":
                    with job._lock:
                        job._byte_bars.append(self)

        return _Recorded

    def _run(self) -> None:
        from .hub import download_model

        with self._lock:
            self._state = DownloadSnapshot(status=JobStatus.RUNNING)
        try:
            folder = download_model(
                self._model, endpoint=self._endpoint, tqdm_class=self._progress_class(), cancel=self._cancel
            )
        except DownloadCancelled:
            final = DownloadSnapshot(status=JobStatus.CANCELLED)
        except ASRError as e:
            final = DownloadSnapshot(status=JobStatus.DONE, error=str(e))
        else:
            size = sum(f.stat().st_size for f in folder.iterdir() if f.is_file())
            final = DownloadSnapshot(JobStatus.DONE, size, size, folder=str(folder))
        with self._lock:
            self._state = final
