"""Background transcription jobs: per-file results, errors, cancel, and taking turns."""

from __future__ import annotations

import io
import logging
import sys
import threading
import time

import numpy as np
import pytest
import soundfile as sf
from fakes import FakeEngine

import asr
from asr import jobs, tempfiles
from asr.jobs import FileResult, JobInput, JobSnapshot, JobStatus, TranscriptionJob
from asr.results import Transcript
from testbed.speech import SENTENCES, silence, speech_with_pauses

GRACE_S = 1.0  # the tests' `abandoned_after_s`: a blip must be shorter, a closed page lasts longer


def _transcript(result: FileResult) -> Transcript:
    """The result's transcript, which a finished file has."""
    assert result.transcript is not None, result.error
    return result.transcript


def _wav_bytes(samples: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, asr.SAMPLE_RATE, format="WAV")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def three_sentences() -> bytes:
    return _wav_bytes(speech_with_pauses(SENTENCES[:3], (3.0, 3.0))[0])


def _wait_for(condition, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def _running_job_held_by(gate: threading.Event, data: bytes) -> TranscriptionJob:
    """A job that holds the shared model: started, running, and stopped at its first batch until `gate` opens."""
    job = TranscriptionJob([JobInput("a.wav", data)], engine=FakeEngine(gate=gate), options=asr.TranscribeOptions())
    job.start()
    _wait_for(lambda: job.snapshot().status is JobStatus.RUNNING)
    return job


def test_files_run_in_order_and_a_bad_one_fails_alone(three_sentences):
    inputs = [
        JobInput("a.wav", three_sentences),
        JobInput("notes.txt", b"just text " * 100),
        JobInput("b.wav", three_sentences),
    ]
    job = TranscriptionJob(inputs, engine=FakeEngine(), options=asr.TranscribeOptions()).start()
    assert job.wait(30)
    snapshot = job.snapshot()
    assert snapshot.status is JobStatus.DONE and snapshot.current is None
    assert [r.name for r in snapshot.results] == ["a.wav", "notes.txt", "b.wav"]
    first, bad, last = snapshot.results
    assert len(_transcript(first).segments) == 3 and first.error is None
    assert bad.transcript is None and "not an audio or video file" in (bad.error or "")
    assert _transcript(last).segments == _transcript(first).segments


def test_progress_and_segments_are_visible_while_running(three_sentences):
    gate = threading.Event()
    job = TranscriptionJob(
        [JobInput("a.wav", three_sentences)],
        engine=FakeEngine(gate=gate),
        options=asr.TranscribeOptions(decode=asr.DecodeOptions(batch_size=1)),
    ).start()
    _wait_for(lambda: job.snapshot().status is JobStatus.RUNNING)
    assert job.snapshot().current == "a.wav" and job.snapshot().segments == ()
    gate.set()
    assert job.wait(30)
    done = job.snapshot()
    assert _transcript(done.results[0]).info.duration_s == pytest.approx(done.total_s)
    assert done.processed_s == done.total_s > 0


def test_a_move_to_the_cpu_is_shown_while_running_and_kept_with_the_result(three_sentences):
    """No GPU here: the fake engine plays one that runs out of memory for any chunk until it moves to the CPU."""
    gate = threading.Event()
    engine = FakeEngine(max_rows=0, cpu_fallback=True, gate=gate, free_calls=2)
    job = TranscriptionJob([JobInput("a.wav", three_sentences)], engine=engine, options=asr.TranscribeOptions())
    job.start()
    _wait_for(lambda: job.snapshot().notices)
    (notice,) = job.snapshot().notices
    assert "moved to the CPU" in notice and job.snapshot().status is JobStatus.RUNNING
    gate.set()
    assert job.wait(30)
    (result,) = job.snapshot().results
    assert result.notices == (notice,) and len(_transcript(result).segments) == 3


def test_cancel_keeps_finished_segments_as_a_partial_result(three_sentences):
    gate = threading.Event()
    engine = FakeEngine(gate=gate, free_calls=1)  # the first chunk runs, the second waits at the gate
    job = TranscriptionJob(
        [JobInput("a.wav", three_sentences), JobInput("b.wav", three_sentences)],
        engine=engine,
        options=asr.TranscribeOptions(decode=asr.DecodeOptions(batch_size=1)),
    )
    job.start()
    _wait_for(lambda: len(job.snapshot().segments) == 1)
    job.cancel()
    gate.set()
    assert job.wait(30)
    snapshot = job.snapshot()
    assert snapshot.status is JobStatus.CANCELLED
    (result,) = snapshot.results  # b.wav never started
    assert result.cancelled and 1 <= len(_transcript(result).segments) < 3


class _WatchedTurn:
    """The shared turn, telling when a job asked for it and was refused (the other job holds it)."""

    def __init__(self, turn: threading.Lock) -> None:
        self._turn, self.refused = turn, threading.Event()

    def acquire(self, timeout: float = -1) -> bool:
        got = self._turn.acquire(timeout=timeout)
        if not got:
            self.refused.set()
        return got

    def release(self) -> None:
        self._turn.release()


def test_jobs_of_two_sessions_take_turns(three_sentences, monkeypatch):
    turn = _WatchedTurn(jobs._TURN)
    monkeypatch.setattr(jobs, "_TURN", turn)
    gate = threading.Event()
    first = _running_job_held_by(gate, three_sentences)
    second = TranscriptionJob(
        [JobInput("b.wav", three_sentences)], engine=FakeEngine(), options=asr.TranscribeOptions()
    ).start()
    assert turn.refused.wait(30)  # the second job asked for the model while the first held it
    assert second.snapshot().status is JobStatus.QUEUED  # shown to its user as waiting
    gate.set()
    assert first.wait(30) and second.wait(30)
    assert second.snapshot().status is JobStatus.DONE


def _cancel_logs(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "asr.jobs" and "its page has been closed" in r.getMessage()]


def test_a_running_job_whose_page_is_gone_is_cancelled_after_the_grace_and_keeps_nothing(
    three_sentences, tmp_path, monkeypatch, caplog
):
    monkeypatch.setattr(tempfiles.tempfile, "tempdir", str(tmp_path))  # where the run's work folder goes
    caplog.set_level(logging.INFO, logger="asr.jobs")
    data = bytes(bytearray(three_sentences))  # an object of its own, so its references can be counted
    unreferenced = sys.getrefcount(data)
    page_open = threading.Event()
    page_open.set()
    gate = threading.Event()
    job = TranscriptionJob(
        [JobInput("secret-meeting.wav", data), JobInput("b.wav", data)],
        engine=FakeEngine(gate=gate, free_calls=1),  # the first chunk runs, the next batch waits at the gate
        options=asr.TranscribeOptions(decode=asr.DecodeOptions(batch_size=1)),
        still_wanted=page_open.is_set,
        abandoned_after_s=GRACE_S,
    ).start()
    _wait_for(lambda: len(job.snapshot().segments) == 1)
    assert len(list(tmp_path.iterdir())) == 1  # the run's private work folder

    page_open.clear()  # a dropped connection that comes back (a reconnect) ...
    time.sleep(GRACE_S / 4)
    page_open.set()
    time.sleep(GRACE_S * 1.5)
    assert _cancel_logs(caplog) == []  # ... does not cancel the run

    page_open.clear()  # the tab is closed
    closed_at = time.monotonic()
    _wait_for(lambda: _cancel_logs(caplog))
    assert time.monotonic() - closed_at >= GRACE_S
    gate.set()  # the batch in flight finishes; the job stops before the next one
    assert job.wait(30)
    assert job.snapshot() == JobSnapshot(status=JobStatus.CANCELLED)  # no partial result, no segments
    assert list(tmp_path.iterdir()) == []
    assert sys.getrefcount(data) == unreferenced  # the job let go of the audio
    (record,) = _cancel_logs(caplog)
    assert record.levelno == logging.INFO and record.getMessage().startswith("Cancelling a running transcription")
    assert "secret" not in caplog.text


def test_a_queued_job_whose_page_is_gone_leaves_the_queue_without_waiting(three_sentences, caplog):
    caplog.set_level(logging.INFO, logger="asr.jobs")
    gate = threading.Event()
    first = _running_job_held_by(gate, three_sentences)
    second = TranscriptionJob(
        [JobInput("b.wav", three_sentences)],
        engine=FakeEngine(),
        options=asr.TranscribeOptions(),
        still_wanted=lambda: False,
        abandoned_after_s=GRACE_S,
    ).start()
    assert second.wait(GRACE_S + 5)  # while the first job still holds the model
    assert second.snapshot() == JobSnapshot(status=JobStatus.CANCELLED)
    assert first.snapshot().status is JobStatus.RUNNING
    (record,) = _cancel_logs(caplog)
    assert record.getMessage().startswith("Cancelling a queued transcription")
    gate.set()
    assert first.wait(30) and first.snapshot().status is JobStatus.DONE


def test_silence_gives_a_result_with_the_no_speech_note():
    job = TranscriptionJob(
        [JobInput("quiet.wav", _wav_bytes(silence(4.0)))], engine=FakeEngine(), options=asr.TranscribeOptions()
    ).start()
    assert job.wait(30)
    (result,) = job.snapshot().results
    assert _transcript(result).segments == () and _transcript(result).info.notes == (asr.NO_SPEECH_NOTE,)


def test_speed_and_time_left_estimates():
    snapshot = JobSnapshot(JobStatus.RUNNING, processed_s=60.0, total_s=150.0, elapsed_s=25.0, reported_s=25.0)
    assert snapshot.speed == pytest.approx(2.4) and snapshot.remaining_s == pytest.approx(37.5)
    later = JobSnapshot(JobStatus.RUNNING, processed_s=60.0, total_s=150.0, elapsed_s=30.0, reported_s=25.0)
    assert later.speed == pytest.approx(2.4) and later.remaining_s == pytest.approx(32.5)  # counted down
    overdue = JobSnapshot(JobStatus.RUNNING, processed_s=60.0, total_s=150.0, elapsed_s=90.0, reported_s=25.0)
    assert overdue.remaining_s == 0.0
    assert JobSnapshot(JobStatus.RUNNING).speed is None and JobSnapshot(JobStatus.RUNNING).remaining_s is None


def test_a_cancelled_download_job_ends_as_cancelled_without_an_error(monkeypatch):
    """The job hands its cancel event to `hub.download_model`. The download itself is stood in for here: the
    real one against a local mirror is cancelled in tests/test_download.py, in a process of its own."""
    from asr import hub
    from asr.errors import DownloadCancelled
    from asr.jobs import DownloadJob

    def waits_for_cancel(model, *, endpoint, tqdm_class, cancel):
        assert cancel.wait(10), "the job never set the event"
        raise DownloadCancelled(f"The download of {model} was cancelled.")

    monkeypatch.setattr(hub, "download_model", waits_for_cancel)
    job = DownloadJob("Qwen/Qwen3-ForcedAligner-0.6B-hf").start()
    job.cancel()
    assert job.wait(10)
    snapshot = job.snapshot()
    assert snapshot.status is JobStatus.CANCELLED and snapshot.error is None
