"""Ray for `python -m asr batch --ray`: actors that hold the model, fed audio bytes through Ray's object store.

Only the batch command imports this module, and only with `--ray`: the app, the library and `transcribe` never
load Ray. Each actor loads the engine once (Ray's pattern for batch inference: a stateful class per worker) and
transcribes the bytes the driver `ray.put`s, so the inputs need not be on a disk the workers share; it returns
the `Transcript`, and the driver (`asr.batch.run_batch`) writes every output. A worker that dies (killed, out of
memory, its machine gone) is replaced and its files are sent once more.

Privacy: Ray's usage statistics are switched off (`RAY_USAGE_STATS_ENABLED=0`) before Ray starts. A local
cluster runs without its dashboard, cannot reach the cloud metadata servers Ray asks at start (`_NO_WAY_OUT`),
keeps its session folder (logs, sockets) and its workers' temporary files in a private temporary folder that is
deleted when the run ends, and never spills audio from the object store to disk. Workers get no file names,
print nothing, and return errors as values, so neither names nor text reach Ray's logs.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections import deque
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from .batch import BatchJob, BatchResult, unreadable_message
from .errors import ASRError, OptionsError
from .options import TranscribeOptions
from .pipeline import transcribe_all
from .results import Transcript
from .tempfiles import private_workdir

logger = logging.getLogger(__name__)

QUEUED_PER_WORKER = 2  # one file running and one waiting in the actor's queue, so no worker waits for the driver
_RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0"}
# Ray 2.60 starts a dashboard process even without the dashboard, for usage statistics, and it asks the cloud
# metadata servers (169.254.169.254, metadata.google.internal) which cloud it runs on before it looks at
# RAY_USAGE_STATS_ENABLED (dashboard/modules/usage_stats/usage_stats_head.py, `run`; tests/test_netns.py caught
# it). Those requests honour the proxy variables: pointed at a closed port on loopback, they fail on this machine.
# The processes a local cluster starts inherit them (its workers make no HTTP requests); this process does not.
_NO_WAY_OUT = {
    "HTTP_PROXY": "http://127.0.0.1:9",
    "HTTPS_PROXY": "http://127.0.0.1:9",
    "NO_PROXY": "",
    "http_proxy": "http://127.0.0.1:9",  # the lower-case names win where both are set
    "https_proxy": "http://127.0.0.1:9",
    "no_proxy": "",
}


def import_ray() -> ModuleType:
    """Ray, with its usage statistics off, or a clear message when it is not installed.

    Raises:
        ASRError: Ray is not installed.
    """
    os.environ.update(_RAY_ENV)  # before Ray is imported: the processes it starts inherit it
    try:
        import ray
    except ImportError as e:
        raise ASRError(
            "--ray needs Ray, which is not installed. Install it with `pip install -r requirements-cluster.txt`, "
            "or leave out --ray to run in this process."
        ) from e
    return ray


@contextlib.contextmanager
def connected(address: str, *, num_cpus: int | None = None, verbose: bool = False) -> Iterator[Path | None]:
    """Start (`local`) or join (`auto`, an address) a Ray cluster for the length of the block.

    Args:
        address: "local" starts a cluster on this machine, with its session folder in a private temporary
            folder removed afterwards; "auto" joins the cluster this machine runs (`ray start`); anything
            else is the address of a cluster's head, e.g. "10.0.0.5:6379".
        num_cpus: CPUs a local cluster may use (default: all); ignored when joining.
        verbose: let the workers' own output through to this terminal.

    Yields:
        The local cluster's temporary folder (Ray's session folder is in it), or None when joining.

    Raises:
        ASRError: Ray is missing or the cluster cannot be reached.
    """
    ray = import_ray()
    settings = {"logging_level": logging.WARNING, "log_to_driver": verbose}
    if address != "local":
        try:
            ray.init(address=address, **settings)
        except (ConnectionError, ValueError, RuntimeError) as e:
            raise ASRError(
                f"Could not join the Ray cluster at {address!r}: {e}. Start one with `ray start --head` "
                "(see docs/cluster.md), or use --ray local to start one on this machine."
            ) from e
        try:
            yield None
        finally:
            ray.shutdown()
        return
    with private_workdir() as folder:
        # The workers' temporary files (a long recording's decoded audio) go into this folder too, so even a
        # worker killed mid-file leaves nothing behind once the run ends.
        (folder / "tmp").mkdir()
        with _environment({**_NO_WAY_OUT, "TMPDIR": str(folder / "tmp")}):
            # No `_node_ip_address="127.0.0.1"`: Ray 2.60 swaps a loopback address for the machine's own, and its
            # servers listen on every interface whatever it is given (their token authentication keeps others out).
            ray.init(
                address="local",
                num_cpus=num_cpus,
                include_dashboard=False,
                _temp_dir=str(folder),
                # The object store holds audio; spilled, it would land on disk. Without spilling a full store
                # makes `ray.put` wait, and the driver keeps only QUEUED_PER_WORKER files per worker in it.
                _system_config={"automatic_object_spilling_enabled": False},
                **settings,
            )
        try:
            yield folder
        finally:
            ray.shutdown()


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """These environment variables for the block (for the processes started in it), then the old ones back."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class _Worker:
    """One Ray actor: the engine, loaded once, and the options of this batch."""

    def __init__(self, model: str, device: str, dtype: str, options: TranscribeOptions, aligner: str | None) -> None:
        from .engine import QwenEngine

        self.options = options
        self.problem: str | None = None
        self.aligner = None
        try:
            self.engine = QwenEngine.load(model, device=device, dtype=dtype)
            if aligner is not None:
                from .aligner import QwenAligner

                self.aligner = QwenAligner.load(aligner, device=device)
        except ASRError as e:
            self.problem = str(e)

    def ready(self) -> str | None:
        """Why the model could not be loaded, or None."""
        return self.problem

    def transcribe(self, data: bytes) -> tuple[Transcript | None, str | None]:
        """The transcript of one file's bytes, or the message saying what is wrong with the file."""
        if self.problem is not None:  # a replacement worker that could not load the model
            return None, self.problem
        try:
            return transcribe_all(data, engine=self.engine, options=self.options, aligner=self.aligner), None
        except ASRError as e:
            return None, str(e)


@dataclass(frozen=True)
class _Sent:
    """A file on its way: which worker has it and whether it is its second try."""

    job: BatchJob
    slot: int
    worker: object  # the actor handle it went to
    second_try: bool


class RayRunner:
    """Transcribes batch jobs on Ray actors (`asr.batch.Runner`); call inside `connected(...)`."""

    def __init__(
        self,
        model: str,
        *,
        options: TranscribeOptions,
        device: str = "auto",
        dtype: str = "auto",
        workers: int = 1,
        threads_per_worker: int = 1,
        gpus_per_worker: float = 0.0,
        aligner: str | None = None,
    ) -> None:
        self.model, self.options, self.device, self.dtype = model, options, device, dtype
        self.aligner = aligner  # the forced aligner's repo id or folder, for word timestamps
        self.n_workers, self.threads, self.gpus = workers, threads_per_worker, gpus_per_worker
        self.workers: list[Any] = []  # Ray actor handles (Ray publishes no types for them)  # the live actors, by slot
        self.replaced = 0  # workers that died and were started again

    def _check_resources(self, ray: ModuleType) -> None:
        """Refuse a request the cluster can never schedule (Ray would wait for it forever)."""
        available = ray.cluster_resources()
        cpus, gpus = available.get("CPU", 0), available.get("GPU", 0)
        if self.n_workers * self.threads > cpus or self.n_workers * self.gpus > gpus:
            raise OptionsError(
                f"{self.n_workers} worker(s) with {self.threads} thread(s) and {self.gpus:g} GPU(s) each do not fit "
                f"this Ray cluster ({cpus:g} CPUs, {gpus:g} GPUs). Ask for fewer workers, threads or GPUs."
            )

    def _start_worker(self, ray: ModuleType) -> Any:
        actor = ray.remote(_Worker).options(num_cpus=self.threads, num_gpus=self.gpus)
        # Ray sets OMP_NUM_THREADS to the actor's num_cpus, so torch uses that many threads.
        return actor.remote(self.model, self.device, self.dtype, self.options, self.aligner)

    def _start_workers(self, ray: ModuleType) -> None:
        self._check_resources(ray)
        self.workers = [self._start_worker(ray) for _ in range(self.n_workers)]
        problems = {p for p in ray.get([w.ready.remote() for w in self.workers]) if p}
        if problems:
            raise ASRError(" ".join(sorted(problems)))

    def run(self, jobs: list[BatchJob]) -> Generator[BatchResult, None, None]:
        """Keep every worker busy, yield each result as it comes, send a lost worker's files once more."""
        ray = import_ray()
        pending: deque[tuple[BatchJob, bool]] = deque((job, False) for job in jobs)
        sent: dict[object, _Sent] = {}
        try:
            self._start_workers(ray)

            def feed(slot: int) -> list[BatchResult]:
                """Send files to the worker in `slot` until it holds its share; returns those that could not be read."""
                unreadable = []
                while pending and sum(s.slot == slot for s in sent.values()) < QUEUED_PER_WORKER:
                    job, second_try = pending.popleft()
                    try:
                        data = job.file.read_bytes()
                    except OSError as e:
                        unreadable.append(BatchResult(job, None, unreadable_message(e)))
                        continue
                    worker = self.workers[slot]
                    ref = worker.transcribe.remote(ray.put(data))  # through the object store: no shared disk needed
                    sent[ref] = _Sent(job, slot, worker, second_try)
                return unreadable

            for slot in range(len(self.workers)):
                yield from feed(slot)
            while sent:
                [ref], _ = ray.wait(list(sent), num_returns=1)
                item = sent.pop(ref)
                try:
                    transcript, error = ray.get(ref)
                except ray.exceptions.RayActorError:
                    yield from self._lost(ray, item, pending)
                else:
                    yield BatchResult(item.job, transcript, error, retried=item.second_try)
                yield from feed(item.slot)
        finally:
            for worker in self.workers:
                ray.kill(worker)
            self.workers = []

    def _lost(self, ray: ModuleType, item: _Sent, pending: deque[tuple[BatchJob, bool]]) -> Iterator[BatchResult]:
        """The worker holding `item` died: start a new one in its slot (once) and send the file again (once)."""
        if self.workers[item.slot] is item.worker:
            logger.warning("A worker died; starting a new one and sending its files again")
            self.workers[item.slot] = self._start_worker(ray)
            self.replaced += 1
        if item.second_try:
            yield BatchResult(
                item.job,
                None,
                "Its worker died twice while it was being transcribed (out of memory, or the machine went "
                "away). Check the workers' memory, then run the batch again to retry it.",
            )
        else:
            pending.appendleft((item.job, True))
