"""Soak: many short transcriptions in one process must not leak memory, file descriptors, threads or temp folders.

    .venv/bin/python -m testbed.soak --runs 500            # the full soak (tiny checkpoint made on the spot)
    .venv/bin/python -m testbed.soak --runs 500 --model DIR

A leak that costs a few hundred kilobytes per file goes unseen in any single test, yet ends a long app session
(every upload, every tab, for days) with an exhausted machine. So the same engine runs file after file through
the paths the app and the CLI use, with their error paths mixed in, and the process is measured before and
after: ``asr.transcribe_all`` on bytes in every container we read, ``asr.transcribe`` on a path iterated
lazily (the CLI), ``asr.jobs.TranscriptionJob`` on bytes after ``asr.decode_audio`` (the app's facts line),
cancels early, in mid-run and by a closed page, and bytes that are not audio. ``tests/test_soak.py`` runs a
short version of this; the exit code here is 1 when a limit is broken. 500 runs: 80 s (95 s in all) on two cores.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import itertools
import os
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psutil

import asr
from asr import tempfiles
from asr.jobs import JobInput, JobSnapshot, JobStatus, TranscriptionJob
from asr.pipeline import Engine
from testbed.corpus import Track, clip, mono, png, pyav_bytes, random_bytes, seconds, soundfile_bytes, text, zip_archive
from testbed.speech import SENTENCES, speech_with_pauses

MAX_GROWTH_MB = 50.0  # the hardening issue's limit for 500 runs
JOB_TIMEOUT_S = 300.0  # a job that runs longer than this on a short clip is stuck, not slow
# Which kind of run each index does, in a cycle of ten: what the app and the CLI do most, most often.
SCHEDULE = ("bytes", "bytes", "path", "job", "bytes", "cancel", "bytes", "path", "job", "bad")
KINDS = tuple(dict.fromkeys(SCHEDULE))
CANCEL_POINTS = ("before the first chunk", "between chunks", "job", "abandoned job")
THREADS_SETTLE_S = 2.0  # a job's watcher thread ends within its poll interval after the job


@dataclass(frozen=True)
class Clips:
    """The soak's inputs, made once: short speech in every container, a two-chunk clip, and non-audio bytes."""

    good: dict[str, bytes]  # container -> a 3.7 s spoken sentence
    paths: dict[str, Path]  # the same files on disk, for the CLI's path runs
    long: bytes  # three sentences with pauses: at least two chunks, so a cancel can land between them
    bad: dict[str, bytes]  # what users drop by mistake: each must raise AudioDecodeError


def make_clips(folder: Path) -> Clips:
    """Encode the clips (espeak-ng speech, PyAV and libsndfile encoders) and write the good ones into `folder`."""
    speech = clip()
    stereo = np.stack([speech, 0.5 * speech])
    good = {
        "wav": soundfile_bytes(speech),
        "flac": soundfile_bytes(stereo.T, rate=44_100, format="FLAC"),
        "mp3": pyav_bytes("mp3", [mono(speech, "libmp3lame", 44_100)]),
        "ogg": pyav_bytes("ogg", [Track(stereo, "vorbis", 44_100, {"strict": "-2"})]),  # FFmpeg's vorbis: stereo
        "opus": pyav_bytes("ogg", [mono(speech, "libopus", 48_000)]),
        "webm": pyav_bytes("webm", [mono(speech, "libopus", 48_000)]),
        "m4a": pyav_bytes("ipod", [mono(speech, "aac", 44_100)]),
        "mp4": pyav_bytes("mp4", [mono(speech, "aac", 44_100)], video_s=seconds(speech)),
        "mkv": pyav_bytes("matroska", [Track(stereo, "flac", 48_000)], video_s=seconds(speech)),
    }
    folder.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for name, data in good.items():
        paths[name] = folder / f"speech.{name}"
        paths[name].write_bytes(data)
    long, _ = speech_with_pauses(SENTENCES[1:4], (1.0, 1.0))
    bad = {"text": text(), "png": png(), "noise": random_bytes(), "zip": zip_archive(), "empty": b""}
    return Clips(good, paths, soundfile_bytes(long), bad)


@dataclass
class SoakReport:
    """What the process looked like after the warm-up and after the measured runs, and what went wrong."""

    runs: int
    warmup: int = 0  # runs before the baseline: every variant of every kind once
    seconds: float = 0.0  # of the measured runs
    kinds: Counter[str] = field(default_factory=Counter)  # measured runs per kind
    rss_start_mb: float = 0.0
    rss_end_mb: float = 0.0
    rss_samples_mb: list[float] = field(default_factory=list)  # every tenth of the runs: a leak is a slope
    fds_start: int = 0
    fds_end: int = 0
    new_fds: list[str] = field(default_factory=list)  # what the descriptors opened during the runs point at
    threads_start: list[str] = field(default_factory=list)  # Python threads alive
    threads_end: list[str] = field(default_factory=list)
    os_threads_start: int = 0  # all threads of the process, torch's and FFmpeg's too
    os_threads_end: int = 0
    leftover_dirs: list[str] = field(default_factory=list)  # in the soak's temp root, or asr.tempfiles' own list
    failures: list[str] = field(default_factory=list)  # runs that did not end as expected

    @property
    def growth_mb(self) -> float:
        return self.rss_end_mb - self.rss_start_mb

    def problems(self, max_growth_mb: float = MAX_GROWTH_MB) -> list[str]:
        """Each broken limit in words; empty when the soak passed."""
        found = [f"run failed: {failure}" for failure in self.failures]
        if self.runs >= len(SCHEDULE) and set(self.kinds) != set(KINDS):
            found.append(f"kinds never run: {sorted(set(KINDS) - set(self.kinds))}")
        if self.growth_mb >= max_growth_mb:
            found.append(f"RSS grew {self.growth_mb:.1f} MB (limit {max_growth_mb:.0f} MB)")
        if self.fds_end > self.fds_start:
            found.append(f"{self.fds_end - self.fds_start} more open file descriptor(s): {self.new_fds}")
        extra = Counter(self.threads_end) - Counter(self.threads_start)
        if extra:
            found.append(f"threads left running: {sorted(extra.elements())}")
        if self.os_threads_end > self.os_threads_start:
            found.append(f"{self.os_threads_end - self.os_threads_start} more OS thread(s)")
        if self.leftover_dirs:
            found.append(f"temporary folders left: {self.leftover_dirs}")
        return found

    def summary(self) -> str:
        per_run = self.seconds / self.runs if self.runs else 0.0
        kinds = ", ".join(f"{kind} {self.kinds[kind]}" for kind in KINDS)
        samples = " ".join(f"{mb:.0f}" for mb in self.rss_samples_mb)
        return "\n".join(
            (
                f"runs: {self.runs} after {self.warmup} warm-up ({kinds})",
                f"time: {self.seconds:.1f} s ({per_run:.2f} s a run)",
                f"RSS: {self.rss_start_mb:.1f} -> {self.rss_end_mb:.1f} MB, growth {self.growth_mb:+.1f} MB",
                f"RSS along the way (MB): {samples}",
                f"open fds: {self.fds_start} -> {self.fds_end}",
                f"Python threads: {len(self.threads_start)} -> {len(self.threads_end)}; "
                f"OS threads: {self.os_threads_start} -> {self.os_threads_end}",
                f"leftover temp folders: {len(self.leftover_dirs)}",
                f"failures: {len(self.failures)}",
            )
        )


def soak(
    engine: Engine,
    runs: int,
    clips: Clips,
    *,
    options: asr.TranscribeOptions | None = None,
    warm_up: bool = True,
    after_run: Callable[[int], None] | None = None,
) -> SoakReport:
    """Warm up (every variant once), then do `runs` transcriptions of the SCHEDULE's kinds and measure the
    process around them.

    Torch runs on one thread, as in `asr.vad`: the tiny checkpoint's matrices are so small that on two busy
    shared cores a second thread made a run 6 times slower (7.4 s against 1.2 s). `after_run(index)` is called
    after every measured run; the test of the soak itself leaks through it on purpose.
    """
    import torch

    from asr.vad import _one_torch_thread

    options = options or asr.TranscribeOptions()
    report = SoakReport(runs=runs)
    runner = _Runner(engine, clips, options, report.failures)
    step = max(1, runs // 10)
    earlier = set(tempfiles.leftover_workdirs())  # kept by an earlier test on purpose (QWEN3_ASR_KEEP_TEMP)
    with _private_temp_root() as temp_root, _one_torch_thread(torch):
        report.warmup = warmup = runner.warm_up() if warm_up else 0
        fds = _open_fds()
        report.rss_start_mb = _rss_mb()
        report.fds_start, report.threads_start = len(fds), _thread_names()
        report.os_threads_start = psutil.Process().num_threads()
        started = time.perf_counter()
        for index in range(warmup, warmup + runs):
            report.kinds[runner.run_scheduled(index)] += 1
            if after_run is not None:
                after_run(index)
            if (index - warmup + 1) % step == 0:
                report.rss_samples_mb.append(_rss_mb())
        report.seconds = time.perf_counter() - started
        report.rss_end_mb = _rss_mb()
        end_fds = _open_fds()
        report.fds_end, report.threads_end = len(end_fds), _settled_thread_names(report.threads_start)
        report.os_threads_end = psutil.Process().num_threads()
        report.new_fds = sorted(target for fd, target in end_fds.items() if fds.get(fd) != target)
        leftovers = {*temp_root.iterdir(), *(set(tempfiles.leftover_workdirs()) - earlier)}
        report.leftover_dirs = sorted(map(str, leftovers))
    return report


class _Runner:
    """Runs of each kind, with their expected endings checked; what does not match goes into `failures`."""

    def __init__(self, engine: Engine, clips: Clips, options: asr.TranscribeOptions, failures: list[str]) -> None:
        self.engine, self.clips, self.options, self.failures = engine, clips, options, failures
        self.variants: dict[str, list[tuple[str, ...]]] = {
            "bytes": [(name,) for name in sorted(clips.good)],
            "path": [(name,) for name in sorted(clips.paths)],
            "job": [(name,) for name in sorted(clips.good)],
            "cancel": [(when,) for when in CANCEL_POINTS],
            "bad": list(itertools.product(sorted(clips.bad), ("transcribe_all", "job"))),
        }
        self._next = {kind: itertools.cycle(variants) for kind, variants in self.variants.items()}

    def warm_up(self) -> int:
        """Every variant of every kind once, then two rounds of the SCHEDULE, so that the baseline already holds
        what the runs keep for good (first-use loads, the allocator's high-water mark for the longest clip and
        for the schedule's mix); returns the number of runs. With one malloc arena, RSS is then flat to 0.5 MB."""
        count = 0
        for kind, variants in self.variants.items():
            for variant in variants:
                self.run(count, kind, variant)
                count += 1
        for index in range(count, count + 2 * len(SCHEDULE)):
            self.run_scheduled(index)
        return count + 2 * len(SCHEDULE)

    def run_scheduled(self, index: int) -> str:
        """Do run `index` of the SCHEDULE with the next variant of its kind; returns the kind."""
        kind = SCHEDULE[index % len(SCHEDULE)]
        self.run(index, kind, next(self._next[kind]))
        return kind

    def run(self, index: int, kind: str, variant: tuple[str, ...]) -> None:
        """Do one run and check how it ended."""
        what: dict[str, Callable[..., str | None]] = {
            "bytes": self._bytes,
            "path": self._path,
            "job": self._job,
            "cancel": self._cancel,
            "bad": self._bad_input,
        }
        try:
            problem = what[kind](*variant)
        except Exception as e:  # an unexpected error is a failed run, not the end of the soak
            problem = f"{type(e).__name__}: {e}"
        if problem:
            self.failures.append(f"run {index} ({kind} {' '.join(variant)}): {problem}")

    def _bytes(self, name: str) -> str | None:
        """The library on uploaded bytes, with every writer the app's downloads use."""
        transcript = asr.transcribe_all(self.clips.good[name], engine=self.engine, options=self.options)
        for writer in asr.WRITERS.values():
            writer(transcript)
        return _found_speech(transcript)

    def _path(self, name: str) -> str | None:
        """The CLI's way: a path, segments pulled one by one, a progress callback."""
        reports: list[float] = []
        segments, info = asr.transcribe(
            self.clips.paths[name],
            engine=self.engine,
            options=self.options,
            progress=lambda done, _: reports.append(done),
        )
        transcript = asr.Transcript(tuple(segments), info)
        return _found_speech(transcript) or (None if reports else "no progress reported")

    def _start_job(self, inputs: list[JobInput], *, wanted: bool = True) -> TranscriptionJob:
        """A job as the app starts it, with a watcher asking whether its page is still open (`wanted`)."""
        job = TranscriptionJob(
            inputs, engine=self.engine, options=self.options, still_wanted=lambda: wanted, abandoned_after_s=0.0
        )
        return job.start()

    def _job(self, name: str) -> str | None:
        """The app's way: the facts line from `decode_audio`, then a background job polled until it ends."""
        data = self.clips.good[name]
        asr.decode_audio(data)
        snapshot = _finish(self._start_job([JobInput(name, data)]))
        (result,) = snapshot.results
        if snapshot.status is not JobStatus.DONE or result.transcript is None or result.error:
            return f"job ended {snapshot.status} with {result}"
        return _found_speech(result.transcript)

    def _cancel(self, when: str) -> str | None:
        """Cancel in each place it can land: before the first chunk, between chunks, in the app's job by its
        Cancel button, and in a job whose page was closed (which must drop everything it holds)."""
        if when == "abandoned job":  # three inputs: the watcher's first look comes long before their end
            snapshot = _finish(self._start_job([JobInput("long", self.clips.long)] * 3, wanted=False))
            if snapshot.status is not JobStatus.CANCELLED or snapshot.results:
                return f"abandoned job ended {snapshot.status} with {snapshot.results}"
            return None
        if when == "job":
            job = self._start_job([JobInput("long", self.clips.long)])
            deadline = time.monotonic() + JOB_TIMEOUT_S
            while not job.snapshot().segments and job.snapshot().status is not JobStatus.DONE:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.002)
            job.cancel()
            snapshot = _finish(job)
            if snapshot.status is not JobStatus.CANCELLED or len(snapshot.results) != 1:
                return f"cancelled job ended {snapshot.status} with {snapshot.results}"
            return None if snapshot.results[0].transcript is not None else "cancelled job kept no partial result"
        cancel = threading.Event()
        first_chunk_done = when == "between chunks"

        def progress(done: float, _total: float) -> None:
            if done > 0 or not first_chunk_done:
                cancel.set()

        try:
            asr.transcribe_all(
                self.clips.long, engine=self.engine, options=self.options, progress=progress, cancel=cancel
            )
        except asr.TranscriptionCancelled:
            return None
        return "the cancel did not stop the run"

    def _bad_input(self, name: str, way: str) -> str | None:
        """Bytes that are not audio: an `AudioDecodeError` from the library, an error result from a job."""
        data = self.clips.bad[name]
        if way == "job":
            inputs = [JobInput(name, data), JobInput("wav", self.clips.good["wav"])]
            snapshot = _finish(self._start_job(inputs))
            bad, good = snapshot.results
            if bad.error is None or good.transcript is None or snapshot.status is not JobStatus.DONE:
                return f"job with a bad input ended {snapshot.status} with {snapshot.results}"
            return None
        try:
            asr.transcribe_all(data, engine=self.engine, options=self.options)
        except asr.AudioDecodeError:
            return None
        return "no AudioDecodeError"


def _found_speech(transcript: asr.Transcript) -> str | None:
    """The run really decoded the sentence and the model wrote text for it (not an empty or truncated decode)."""
    if not transcript.segments or abs(transcript.info.duration_s - seconds(clip())) > 0.2:
        return f"{transcript.info.duration_s:.2f} s decoded, {len(transcript.segments)} segment(s)"
    return None


def _finish(job: TranscriptionJob) -> JobSnapshot:
    """Poll the job as the app's page does until it ends (or is stuck), and return its last snapshot."""
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while not job.wait(0.01) and time.monotonic() < deadline:
        job.snapshot()
    return job.snapshot()


@contextlib.contextmanager
def _private_temp_root() -> Iterator[Path]:
    """Point `tempfile` at a fresh folder for the soak, so whatever is left in it was left by the soak.

    Other processes on the machine (a parallel test run) may make and remove qwen3asr-* folders in the
    system temp folder at any time; counting there would blame them on us.
    """
    root = Path(tempfile.mkdtemp(prefix="soak-"))
    saved = tempfile.tempdir
    tempfile.tempdir = str(root)
    try:
        yield root
    finally:
        tempfile.tempdir = saved
        shutil.rmtree(root, ignore_errors=True)


def _rss_mb() -> float:
    gc.collect()
    return psutil.Process().memory_info().rss / 2**20


def _open_fds() -> dict[int, str]:
    """Open descriptors of this process and what they point at (Linux's /proc/self/fd)."""
    fds: dict[int, str] = {}
    for entry in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the descriptor os.listdir itself used is gone by now
            fds[int(entry)] = os.readlink(f"/proc/self/fd/{entry}")
    return fds


def _thread_names() -> list[str]:
    return sorted(thread.name for thread in threading.enumerate())


def _settled_thread_names(expected: list[str]) -> list[str]:
    """The thread names once they are back to `expected`, or after THREADS_SETTLE_S: a thread that is still
    winding down is not a leak, one that runs on is."""
    deadline = time.monotonic() + THREADS_SETTLE_S
    while (names := _thread_names()) != expected and time.monotonic() < deadline:
        time.sleep(0.05)
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=500, help="measured runs (default 500)")
    parser.add_argument("--model", help="checkpoint folder (default: the tiny checkpoint, written to a temp folder)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--max-growth-mb", type=float, default=MAX_GROWTH_MB)
    args = parser.parse_args(argv)

    from asr.engine import QwenEngine
    from testbed.tiny_model import write_tiny_checkpoint

    with tempfile.TemporaryDirectory(prefix="soak-inputs-") as scratch:
        model = args.model or str(write_tiny_checkpoint(Path(scratch) / "tiny-model"))
        engine = QwenEngine.load(model, device=args.device)
        clips = make_clips(Path(scratch) / "clips")
        report = soak(engine, args.runs, clips)
    print(report.summary())
    problems = report.problems(args.max_growth_mb)
    for problem in problems:
        print(f"FAIL: {problem}")
    print("FAIL" if problems else "PASS")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
