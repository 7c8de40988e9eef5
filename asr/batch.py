"""Many files in one run: find the inputs, skip what is done, write each result safely, say how far it got.

The driver (this module) is the only writer. A runner transcribes (`LocalRunner` here, with one engine in
this process; `asr.cluster.RayRunner` on Ray actors) and hands each finished file back; the driver writes
its outputs atomically (a hidden temporary name in the same folder, then `os.replace`) and appends one line
to the manifest `asr-batch.jsonl` in the output folder. A rerun skips every file whose latest manifest line
says done with the same content hash and whose outputs are there, and tries the rest again, so a run that was
killed, stopped with Ctrl-C or lost a machine never duplicates or half-writes anything.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import itertools
import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Generator, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

from .audio import AUDIO_SUFFIXES, read_source_info
from .errors import ASRError, OptionsError
from .options import TranscribeOptions
from .pipeline import Aligner, Engine, transcribe_all
from .results import Transcript, format_clock
from .writers import DEFAULT_LAYOUT, SubtitleLayout, save

logger = logging.getLogger(__name__)

MANIFEST_NAME = "asr-batch.jsonl"
_PART_SUFFIX = ".part"  # temporary outputs: ".meeting.txt.1a2b3c4d.part" until renamed to "meeting.txt"


@dataclass(frozen=True)
class BatchInput:
    """One audio or video file and the folder, relative to the output folder, where its outputs go."""

    path: Path
    subfolder: Path = Path()  # its place under a folder given as input, so outputs mirror the folder tree


@dataclass(frozen=True)
class BatchJob:
    """A file to transcribe, where its outputs go, and what identifies its content."""

    file: Path
    outputs: dict[str, Path]  # format -> output file
    size_bytes: int = 0
    sha256: str = ""
    duration_s: float = 0.0  # from the file's header, for the progress bar; 0 when it cannot be read
    problem: str | None = None  # why the file could not even be read; it is recorded as failed


@dataclass(frozen=True)
class BatchResult:
    """What a runner hands back for one file: the transcript, or the message saying why there is none."""

    job: BatchJob
    transcript: Transcript | None
    error: str | None = None
    retried: bool = False  # a worker died while it had this file, and it was sent again


@dataclass(frozen=True)
class BatchProgress:
    """How far a run is; `files_done` and `audio_done_s` count failed files too."""

    files_done: int
    files_total: int
    audio_done_s: float
    audio_total_s: float
    elapsed_s: float

    @property
    def speed(self) -> float:
        """Audio hours transcribed per hour (audio seconds per second)."""
        return self.audio_done_s / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def left_s(self) -> float | None:
        """Estimated seconds to the end; None until the first file is done."""
        return (self.audio_total_s - self.audio_done_s) / self.speed if self.speed > 0 else None

    def describe(self) -> str:
        """One line for the progress bar."""
        audio = f"audio {format_clock(self.audio_done_s)} / {format_clock(self.audio_total_s)}"
        left = "?" if self.left_s is None else format_clock(self.left_s)
        return f"{self.files_done}/{self.files_total} files · {audio} · {self.speed:.2f} h/h · {left} left"


BatchProgressCallback = Callable[[BatchProgress], None]


@dataclass(frozen=True)
class BatchSummary:
    """The end of a run: what was done, skipped (done before) and failed, with each failure's reason."""

    done: int
    skipped: int
    failed: tuple[tuple[Path, str], ...]
    retried: int  # files sent again after their worker died
    audio_s: float  # of the files done and failed in this run
    elapsed_s: float

    def lines(self) -> list[str]:
        """The summary as lines for people."""
        head = f"done {self.done}, skipped {self.skipped} (done before), failed {len(self.failed)}"
        if self.retried:
            head += f", retried after a lost worker {self.retried}"
        lines = [f"{head}; {format_clock(self.audio_s)} of audio in {format_clock(self.elapsed_s)}"]
        if self.elapsed_s > 0 and self.audio_s > 0:
            files_per_h = (self.done + len(self.failed)) * 3600 / self.elapsed_s
            lines[0] += f" ({files_per_h:.0f} files/h, {self.audio_s / self.elapsed_s:.2f} audio h/h)"
        lines += [f"failed: {file}: {message}" for file, message in self.failed]
        return lines


class Runner(Protocol):
    """Transcribes jobs and yields each result as it is ready, in any order."""

    def run(self, jobs: list[BatchJob]) -> Generator[BatchResult, None, None]: ...


# -- inputs ---------------------------------------------------------------------------------------------------------


def find_inputs(specs: list[str]) -> list[BatchInput]:
    """Files, folders (searched recursively for audio and video) and glob patterns -> each file once, in order.

    Raises:
        OptionsError: an input matches nothing, or nothing at all was found.
    """
    found: dict[Path, BatchInput] = {}
    for spec in specs:
        path = Path(spec)
        if path.is_dir():
            media = sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
            items = [BatchInput(p, p.parent.relative_to(path)) for p in media]
        elif path.is_file():
            items = [BatchInput(path)]
        elif glob.has_magic(spec):
            items = [BatchInput(Path(p)) for p in sorted(glob.glob(spec, recursive=True)) if Path(p).is_file()]
            if not items:
                raise OptionsError(f"No file matches {spec!r}. Check the pattern (quote it so the shell keeps it).")
        else:
            raise OptionsError(f"{spec}: no such file or folder. Check the path and its spelling.")
        for item in items:
            found.setdefault(item.path.resolve(), item)
    if not found:
        suffixes = " ".join(sorted(AUDIO_SUFFIXES))
        raise OptionsError(f"No audio or video files found in {', '.join(specs)} (looked for {suffixes}).")
    return list(found.values())


def plan_jobs(files_and_outputs: Iterable[tuple[Path, dict[str, Path]]]) -> list[BatchJob]:
    """Size, content hash and duration of each file (read once here; hashing a file is far cheaper than
    transcribing it).

    Raises:
        OptionsError: two inputs would write the same output file.
    """
    jobs: list[BatchJob] = []
    owners: dict[Path, Path] = {}
    for file, outputs in files_and_outputs:
        for path in outputs.values():
            other = owners.setdefault(path, file)
            if other != file:
                raise OptionsError(
                    f"{other} and {file} would both write {path}. Rename one, or give their folder instead "
                    "(outputs of a folder's files mirror its subfolders)."
                )
        jobs.append(_fingerprinted(file, outputs))
    return jobs


def unreadable_message(error: OSError) -> str:
    """What to tell the user about an input that could not be read."""
    return f"Cannot read it: {error.strerror or error}. Check that it is still there and that you may read it."


def _fingerprinted(file: Path, outputs: dict[str, Path]) -> BatchJob:
    """The job with the file's size, SHA-256 and duration, or with the reason it cannot be read."""
    digest = hashlib.sha256()
    try:
        with open(file, "rb") as stream:
            while block := stream.read(1 << 20):
                digest.update(block)
    except OSError as e:
        return BatchJob(file, outputs, problem=unreadable_message(e))
    try:
        duration_s = read_source_info(file).duration_s
    except ASRError:
        duration_s = 0.0  # transcription will say what is wrong with it
    return BatchJob(file, outputs, file.stat().st_size, digest.hexdigest(), duration_s)


# -- the manifest ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ManifestRecord:
    """One line of `asr-batch.jsonl`: the outcome of one file in one run (a later line overrides an earlier)."""

    file: str  # absolute path of the input
    size_bytes: int
    sha256: str
    status: str  # "done" or "failed"
    audio_s: float | None  # of the transcribed audio; None when it failed before decoding
    outputs: list[str] = field(default_factory=list)  # relative to the output folder
    error: str | None = None


class Manifest:
    """The append-only record of finished files in an output folder."""

    def __init__(self, output_dir: Path) -> None:
        self.output_dir = output_dir
        self.path = output_dir / MANIFEST_NAME
        self.latest: dict[str, ManifestRecord] = {}
        if self.path.exists():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    record = ManifestRecord(**json.loads(line))
                except (ValueError, TypeError):
                    continue  # the last line of a run killed while writing it
                self.latest[record.file] = record

    def is_done(self, job: BatchJob) -> bool:
        """Done before with the same content, and every output still there."""
        record = self.latest.get(str(job.file.resolve()))
        return (
            record is not None
            and record.status == "done"
            and record.sha256 == job.sha256
            and all(path.exists() for path in job.outputs.values())
        )

    def append(self, record: ManifestRecord) -> None:
        """Add one line and flush it to disk before the next file is reported."""
        self.output_dir.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a+b") as stream:
            stream.seek(0, os.SEEK_END)
            if stream.tell():  # a killed run may have left half a line: start on a fresh one
                stream.seek(-1, os.SEEK_END)
                needs_newline = stream.read(1) != b"\n"
            else:
                needs_newline = False
            line = json.dumps(asdict(record), ensure_ascii=False) + "\n"
            stream.write((b"\n" if needs_newline else b"") + line.encode("utf-8"))
            stream.flush()
            os.fsync(stream.fileno())
        self.latest[record.file] = record


# -- writing --------------------------------------------------------------------------------------------------------


def write_outputs(
    transcript: Transcript, outputs: dict[str, Path], layout: SubtitleLayout = DEFAULT_LAYOUT, *, name: str
) -> None:
    """Write each format under a hidden temporary name in its folder, then rename it into place.

    Raises:
        ASRError: a file could not be written; the message says what to check.
    """
    for fmt, path in outputs.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}{_PART_SUFFIX}")
        try:
            save(transcript, fmt, temporary, layout, name=name)  # titled by the recording, not the temporary name
            os.replace(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)


def remove_partial_outputs(jobs: Iterable[BatchJob]) -> int:
    """Delete the temporary outputs a killed run left next to these jobs' outputs; returns how many."""
    outputs = {path for job in jobs for path in job.outputs.values()}
    removed = 0
    for folder in {path.parent for path in outputs}:  # one listing per folder, however many files it holds
        for leftover in folder.glob(f".*{_PART_SUFFIX}"):
            name = leftover.name[1 : -len(_PART_SUFFIX)].rpartition(".")[0]  # ".a.txt.1a2b3c4d.part" -> "a.txt"
            if folder / name in outputs:
                leftover.unlink(missing_ok=True)
                removed += 1
    return removed


# -- the run --------------------------------------------------------------------------------------------------------


class LocalRunner:
    """Transcribes the jobs one after another with one engine in this process."""

    def __init__(self, engine: Engine, options: TranscribeOptions, aligner: Aligner | None = None) -> None:
        self.engine = engine
        self.options = options
        self.aligner = aligner

    def run(self, jobs: list[BatchJob]) -> Generator[BatchResult, None, None]:
        for job in jobs:
            try:
                transcript = transcribe_all(job.file, engine=self.engine, options=self.options, aligner=self.aligner)
            except ASRError as e:
                yield BatchResult(job, None, str(e))
                continue
            yield BatchResult(job, transcript)


def run_batch(
    jobs: list[BatchJob],
    runner: Runner,
    manifest: Manifest,
    progress: BatchProgressCallback | None = None,
    layout: SubtitleLayout = DEFAULT_LAYOUT,
) -> BatchSummary:
    """Transcribe every job not already done, write its outputs and record it in the manifest.

    Args:
        jobs: from `plan_jobs`.
        runner: `LocalRunner`, or `asr.cluster.RayRunner` for a Ray cluster.
        manifest: of the output folder; a file is recorded as soon as its outputs are in place.
        progress: called after each finished file (and once at the start).
        layout: how the subtitles are laid out.

    Returns:
        The summary. A KeyboardInterrupt passes through; the manifest then holds every file finished before it.
    """
    started = time.monotonic()
    remove_partial_outputs(jobs)
    todo = [job for job in jobs if not manifest.is_done(job)]
    unreadable = [job for job in todo if job.problem is not None]
    readable = [job for job in todo if job.problem is None]
    total_s = sum(job.duration_s for job in todo)
    done, retried, audio_s = 0, 0, 0.0
    failed: list[tuple[Path, str]] = []  # (input, its one-line message)

    def report() -> None:
        if progress is not None:
            finished = done + len(failed)
            progress(BatchProgress(finished, len(todo), audio_s, total_s, time.monotonic() - started))

    report()
    unread = [BatchResult(job, None, job.problem) for job in unreadable]
    with contextlib.closing(runner.run(readable)) as running:  # closed on Ctrl-C too: a runner stops its workers
        for result in itertools.chain(unread, running):
            error = _finish(result, manifest, layout)
            if error:
                failed.append((result.job.file, error))
            else:
                done += 1
            retried += result.retried
            audio_s += result.job.duration_s
            report()
    logger.info("Batch finished: %d done, %d failed", done, len(failed))
    return BatchSummary(done, len(jobs) - len(todo), tuple(failed), retried, audio_s, time.monotonic() - started)


def _finish(result: BatchResult, manifest: Manifest, layout: SubtitleLayout) -> str | None:
    """Write the file's outputs and record it in the manifest; returns why it failed, or None."""
    job, transcript, error = result.job, result.transcript, result.error
    if transcript is not None:
        try:
            write_outputs(transcript, job.outputs, layout, name=job.file.name)
        except ASRError as e:
            error = str(e)
    manifest.append(
        ManifestRecord(
            file=str(job.file.resolve()),
            size_bytes=job.size_bytes,
            sha256=job.sha256,
            status="failed" if error else "done",
            audio_s=None if transcript is None else transcript.info.duration_s,
            outputs=[] if error else [os.path.relpath(p, manifest.output_dir) for p in job.outputs.values()],
            error=error,
        )
    )
    return error
