"""Background transcription jobs: per-file results, errors, cancel, and taking turns."""

from __future__ import annotations

import io
import threading
import time

import numpy as np
import pytest
import soundfile as sf
from fakes import FakeEngine
from speech import SENTENCES, silence, speech_with_pauses

import asr
from asr.jobs import JobInput, JobStatus, TranscriptionJob


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
    assert len(first.transcript.segments) == 3 and first.error is None
    assert bad.transcript is None and "not an audio or video file" in bad.error
    assert last.transcript.segments == first.transcript.segments


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
    assert done.results[0].transcript.info.duration_s == pytest.approx(done.total_s)
    assert done.processed_s == done.total_s > 0


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
    assert result.cancelled and 1 <= len(result.transcript.segments) < 3


def test_jobs_of_two_sessions_take_turns(three_sentences):
    gate = threading.Event()
    first = TranscriptionJob(
        [JobInput("a.wav", three_sentences)], engine=FakeEngine(gate=gate), options=asr.TranscribeOptions()
    ).start()
    _wait_for(lambda: first.snapshot().status is JobStatus.RUNNING)
    second = TranscriptionJob(
        [JobInput("b.wav", three_sentences)], engine=FakeEngine(), options=asr.TranscribeOptions()
    ).start()
    time.sleep(0.2)
    assert second.snapshot().status is JobStatus.QUEUED  # shown to its user as waiting
    gate.set()
    assert first.wait(30) and second.wait(30)
    assert second.snapshot().status is JobStatus.DONE


def test_silence_gives_a_result_with_the_no_speech_note():
    job = TranscriptionJob(
        [JobInput("quiet.wav", _wav_bytes(silence(4.0)))], engine=FakeEngine(), options=asr.TranscribeOptions()
    ).start()
    assert job.wait(30)
    (result,) = job.snapshot().results
    assert result.transcript.segments == () and result.transcript.info.notes == (asr.NO_SPEECH_NOTE,)


def test_speed_and_time_left_estimates():
    from asr.jobs import JobSnapshot

    snapshot = JobSnapshot(JobStatus.RUNNING, processed_s=60.0, total_s=150.0, elapsed_s=25.0)
    assert snapshot.speed == pytest.approx(2.4) and snapshot.remaining_s == pytest.approx(37.5)
    assert JobSnapshot(JobStatus.RUNNING).speed is None and JobSnapshot(JobStatus.RUNNING).remaining_s is None
