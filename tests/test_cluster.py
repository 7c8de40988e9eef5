"""`python -m asr batch --ray`: a real local Ray cluster on this machine, the tiny checkpoint, espeak-ng speech.

One cluster serves the module (2 CPUs, so 2 one-thread actors); its session folder is a private temporary
folder, read here for leaks and removed at the end. Audio reaches the actors only as bytes through the object
store: their error messages name no file (the in-process run names the path), which shows the bytes path ran.
"""

from __future__ import annotations

import contextlib
import json
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import ray
from test_batch import ROOT, manifest_lines, outputs_of, write_clips

from asr import writers
from asr.batch import LocalRunner, Manifest, find_inputs, run_batch
from asr.cli import _batch_jobs
from asr.cluster import RayRunner, connected
from asr.options import DecodeOptions, TranscribeOptions

FORMATS = writers.FORMATS
PREFIX = "raybatch"  # the clips' file names start with it: it must never show up in Ray's logs
# The random tiny model never ends a text by itself: a small token budget keeps each file to a fraction of a second.
FAST = TranscribeOptions(decode=DecodeOptions(tokens_per_s=2.0, min_new_tokens_budget=4))


@pytest.fixture(scope="module")
def cluster():
    """A local cluster for the module; its temporary folder (Ray's session folder) is gone afterwards."""
    with connected("local", num_cpus=2) as folder:
        yield folder
    assert folder is not None and not folder.exists(), "the local cluster's temporary folder was left behind"


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> list[Path]:
    return write_clips(tmp_path_factory.mktemp("ray-clips"), 20, prefix=PREFIX)


def _jobs(inputs: list[Path], out: Path):
    return _batch_jobs(find_inputs([str(i) for i in inputs]), out, FORMATS)


@pytest.fixture(scope="module")
def in_process(engine, clips, tmp_path_factory) -> Path:
    """The reference: the same 20 files transcribed in this process with one engine."""
    out = tmp_path_factory.mktemp("in-process")
    summary = run_batch(_jobs([clips[0].parent], out), LocalRunner(engine, FAST), Manifest(out))
    assert summary.done == len(clips) and not summary.failed
    return out


def _runner(tiny_model_dir: Path, workers: int = 2) -> RayRunner:
    return RayRunner(str(tiny_model_dir), options=FAST, device="cpu", workers=workers)


@pytest.fixture(scope="module")
def on_ray(cluster, tiny_model_dir, clips, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("on-ray")
    summary = run_batch(_jobs([clips[0].parent], out), _runner(tiny_model_dir), Manifest(out))
    assert summary.done == len(clips) and not summary.failed and not summary.retried
    return out


@pytest.mark.slow
def test_twenty_files_on_two_actors_match_the_in_process_run(on_ray, in_process, clips):
    assert len(outputs_of(on_ray)) == len(clips) * len(FORMATS)
    assert outputs_of(on_ray) == outputs_of(in_process)  # byte for byte, every format
    assert sorted(line["file"] for line in manifest_lines(on_ray)) == sorted(str(c.resolve()) for c in clips)


@pytest.mark.slow
def test_ray_logs_hold_no_transcript_or_file_name(cluster, on_ray):
    texts = [(on_ray / name).read_text(encoding="utf-8") for name in outputs_of(on_ray) if name.endswith(".txt")]
    words = sorted({w for text in texts for w in re.findall(r"\w{6,}", text)}, key=len, reverse=True)[:30]
    assert words, "the transcripts have no long words to look for"
    logs = [p for p in cluster.rglob("*") if p.is_file() and not p.is_socket()]
    assert any("worker" in p.name for p in logs), sorted(p.name for p in logs)  # the workers' logs are there
    content = "\n".join(p.read_text(encoding="utf-8", errors="replace") for p in logs)
    assert "_Worker" in content  # the search itself works: Ray logs the actor class it ran
    assert PREFIX not in content
    assert [w for w in words if w in content] == []


def test_workers_temporary_files_stay_in_the_clusters_folder(cluster):
    def temporary_folder() -> str:  # nested, so Ray sends it by value (workers cannot import the tests)
        return tempfile.gettempdir()

    where = Path(ray.get(ray.remote(num_cpus=1)(temporary_folder).remote()))
    assert where.is_relative_to(cluster), where  # removed with the cluster, even after a worker is killed
    assert not Path(tempfile.gettempdir()).is_relative_to(cluster)  # this process keeps its own


@pytest.mark.slow
def test_killed_worker_is_replaced_and_its_file_redone(cluster, tiny_model_dir, clips, in_process, tmp_path):
    runner = _runner(tiny_model_dir)
    killed: list[object] = []

    def kill_a_busy_worker(progress) -> None:
        if progress.files_done == 1 and not killed:  # every worker has files in hand now
            killed.append(runner.workers[0])
            ray.kill(runner.workers[0])

    subset = [c for c in clips if c.parent == clips[0].parent][:6]  # outputs named as in the folder's run
    summary = run_batch(_jobs(subset, tmp_path), runner, Manifest(tmp_path), kill_a_busy_worker)
    assert killed and runner.replaced == 1
    assert summary.done == len(subset) and not summary.failed and summary.retried >= 1
    expected = outputs_of(in_process)
    assert outputs_of(tmp_path) == {name: expected[name] for name in outputs_of(tmp_path)}
    assert len(outputs_of(tmp_path)) == len(subset) * len(FORMATS)
    assert len(manifest_lines(tmp_path)) == len(subset)  # each file recorded once


@pytest.mark.slow
def test_bad_and_vanished_files_are_recorded_and_the_rest_done(cluster, tiny_model_dir, clips, tmp_path):
    bad = tmp_path / "notes.mp3"
    bad.write_text("These are my meeting notes, not audio.\n" * 20)
    gone = tmp_path / "gone.wav"
    gone.write_bytes(clips[2].read_bytes())
    out = tmp_path / "out"
    jobs = _batch_jobs(find_inputs([str(clips[0]), str(bad), str(gone), str(clips[1])]), out, ("txt",))
    gone.unlink()  # after planning: the driver finds it missing when it reads it for a worker
    summary = run_batch(jobs, _runner(tiny_model_dir, workers=1), Manifest(out))
    assert summary.done == 2
    failed = dict(summary.failed)
    assert failed[bad].startswith("This file is not an audio or video file (it looks like a text file)")
    assert str(bad) not in failed[bad]  # the worker got bytes, never the path
    assert failed[gone].startswith("Cannot read it: No such file or directory.")
    records = {line["file"]: line for line in manifest_lines(out) if line["status"] == "failed"}
    assert {f: r["error"] for f, r in records.items()} == {str(f.resolve()): m for f, m in failed.items()}


@contextlib.contextmanager
def _ctrl_c_as_from_a_terminal() -> Iterator[None]:
    """Start a child that hears Ctrl-C, as a command typed in a terminal does. A test run started in the background
    of a script (`bash tests/run.sh &`) ignores SIGINT, and an ignored signal stays ignored across exec; a handled
    one becomes the default, which Python turns into KeyboardInterrupt."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _signal_state(pid: int | str) -> str:
    """The signals a process ignores, blocks and catches (bit masks from /proc), to tell why a Ctrl-C was not heard."""
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return " ".join(line.replace("\t", "") for line in lines if line.startswith(("SigIgn", "SigBlk", "SigCgt")))


@pytest.mark.slow
def test_cli_ray_local_stops_on_ctrl_c_and_resumes(tiny_model_dir, tmp_path):
    """The command as people run it: its own local cluster, Ctrl-C part way, then a rerun with a bad file too."""
    clips, out = write_clips(tmp_path / "in", 6, prefix=PREFIX), tmp_path / "out"
    folder = clips[0].parent
    command = [sys.executable, "-m", "asr", "batch", str(folder), "--ray", "local", "--workers", "2"]
    command += ["--model", str(tiny_model_dir), "--device", "cpu", "--format", "all", "--output-dir", str(out)]
    with _ctrl_c_as_from_a_terminal():
        driver = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    assert driver.stderr is not None
    while not (out / "asr-batch.jsonl").exists() or len(manifest_lines(out)) < 2:
        assert driver.poll() is None, driver.stderr.read()[-3000:]
        assert time.monotonic() < deadline, "the driver wrote no manifest lines in time"
        time.sleep(0.05)
    signals = _signal_state(driver.pid)  # read before the signal, for the message below
    driver.send_signal(signal.SIGINT)
    _, err = driver.communicate(timeout=120)
    assert driver.returncode == 130, f"driver {signals}, pytest {_signal_state('self')}\n{err[-3000:]}"
    assert "Stopped (Ctrl-C)" in err and "Traceback" not in err
    finished = {line["file"] for line in manifest_lines(out)}
    assert 2 <= len(finished) < len(clips)

    bad = folder / "sub" / "broken.mp3"
    bad.write_bytes(b"\0" * 2048)
    rerun = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 1, rerun.stderr[-3000:]
    assert f"done {len(clips) - len(finished)}, skipped {len(finished)} (done before), failed 1" in rerun.stderr
    assert f"failed: {bad}: " in rerun.stderr
    outputs = outputs_of(out)  # hidden temporary files included: none may be left
    assert sorted(outputs) == sorted(
        str(c.parent.relative_to(folder) / f"{c.stem}.{fmt}") for c in clips for fmt in FORMATS
    )
    for clip in clips:
        stem = str(clip.parent.relative_to(folder) / clip.stem)
        assert json.loads(outputs[f"{stem}.json"])["text"] == outputs[f"{stem}.txt"].decode().rstrip("\n")
    records = manifest_lines(out)
    assert sorted(r["file"] for r in records if r["status"] == "done") == sorted(str(c.resolve()) for c in clips)
    assert [r["file"] for r in records if r["status"] == "failed"] == [str(bad.resolve())]
