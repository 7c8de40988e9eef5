"""`python -m asr batch` in this process (no Ray): inputs, manifest, atomic outputs, resume, failures, Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import unicodedata
from pathlib import Path

import pytest
import soundfile as sf

from asr import batch
from asr.audio import SAMPLE_RATE
from asr.batch import MANIFEST_NAME, BatchInput, LocalRunner, Manifest, find_inputs, run_batch
from asr.cli import main
from asr.errors import OptionsError
from asr.options import TranscribeOptions
from asr.writers import FORMATS
from testbed.speech import SENTENCES, speak

ROOT = Path(__file__).resolve().parents[1]


def write_clips(folder: Path, count: int, prefix: str = "clip") -> list[Path]:
    """`count` WAV files of distinct espeak-ng speech (a sentence at a speed of its own), every fourth in sub/."""
    paths = []
    for index in range(count):
        path = folder / ("sub" if index % 4 == 3 else "") / f"{prefix}-{index:02d}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        samples = speak(SENTENCES[index % len(SENTENCES)], speed_wpm=140 + 20 * (index // len(SENTENCES)))
        sf.write(path, samples, SAMPLE_RATE)
        paths.append(path)
    return paths


def outputs_of(folder: Path) -> dict[str, bytes]:
    """Every output file under `folder` (the manifest left out), by relative path."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != MANIFEST_NAME
    }


def manifest_lines(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / MANIFEST_NAME).read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> list[Path]:
    return write_clips(tmp_path_factory.mktemp("clips"), 6)


@pytest.fixture(scope="module")
def expected(engine, clips, tmp_path_factory) -> Path:
    """The outputs of the in-process run over the clips' folder, in all formats."""
    out = tmp_path_factory.mktemp("expected")
    assert (
        main(["batch", str(clips[0].parent), "--model", engine.name, "--format", "all", "--output-dir", str(out)]) == 0
    )
    return out


def test_find_inputs_searches_folders_takes_files_and_globs_once(tmp_path):
    (tmp_path / "a" / "deep").mkdir(parents=True)
    for name in ("a/one.WAV", "a/deep/two.mp4", "a/notes.txt", "three.flac", "four.xyz"):
        (tmp_path / name).write_bytes(b"x")
    found = find_inputs(
        [str(tmp_path / "a"), str(tmp_path / "*.flac"), str(tmp_path / "four.xyz"), str(tmp_path / "a/one.WAV")]
    )
    assert found == [
        BatchInput(tmp_path / "a/deep/two.mp4", Path("deep")),
        BatchInput(tmp_path / "a/one.WAV", Path()),
        BatchInput(tmp_path / "three.flac"),
        BatchInput(tmp_path / "four.xyz"),  # a file named on the command line is taken whatever its suffix
    ]


@pytest.mark.parametrize(
    ("spec", "message"),
    [("missing.wav", "no such file or folder"), ("*.ogg", "No file matches"), ("empty", "No audio or video files")],
)
def test_find_inputs_says_what_matched_nothing(tmp_path, monkeypatch, spec, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(OptionsError, match=message):
        find_inputs([spec])


def test_two_inputs_writing_one_output_are_refused(capsys, tmp_path, clips):
    twin = tmp_path / "elsewhere" / clips[0].name
    twin.parent.mkdir()
    twin.write_bytes(clips[0].read_bytes())
    code = main(["batch", str(clips[0]), str(twin), "--output-dir", str(tmp_path / "out")])
    assert code == 2
    assert "would both write" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # refused before anything was written


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--output-dir", "-"], "not '-'"),
        (["--workers", "2"], "need --ray"),
        (["--ray", "local", "--workers", "0"], "1 or more"),
    ],
)
def test_bad_batch_arguments_get_a_message(capsys, clips, argv, message):
    assert main(["batch", str(clips[0]), *argv]) == 2
    assert message in capsys.readouterr().err


def test_manifest_survives_half_a_line(tmp_path, clips):
    manifest_path = tmp_path / MANIFEST_NAME
    done = batch.ManifestRecord(str(clips[0].resolve()), 1, "ab", "done", 1.0, ["clip-00.txt"])
    manifest_path.write_text(json.dumps(batch.asdict(done)) + '\n{"file": "/x", "size_by', encoding="utf-8")
    manifest = Manifest(tmp_path)
    assert list(manifest.latest) == [done.file]
    manifest.append(batch.ManifestRecord("/y", 2, "cd", "failed", None, error="bad"))
    lines = manifest_path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 3 and json.loads(lines[2])["file"] == "/y"  # the new line did not join the broken one
    assert set(Manifest(tmp_path).latest) == {done.file, "/y"}


def test_a_killed_runs_temporary_outputs_are_removed_and_nothing_else(tmp_path):
    job = batch.BatchJob(tmp_path / "in.wav", {"txt": tmp_path / "a.txt", "srt": tmp_path / "sub" / "a.srt"})
    ours = [tmp_path / ".a.txt.1a2b3c4d.part", tmp_path / "sub" / ".a.srt.0f0f0f0f.part"]
    others = [tmp_path / ".b.txt.1a2b3c4d.part", tmp_path / "a.txt", tmp_path / ".a.txt.keep"]
    for path in ours + others:
        path.parent.mkdir(exist_ok=True)
        path.write_text("half")
    assert batch.remove_partial_outputs([job]) == 2
    assert [p.exists() for p in ours + others] == [False, False, True, True, True]


def test_batch_writes_mirrored_outputs_and_a_manifest(expected, clips):
    names = set(outputs_of(expected))
    assert names == {str(c.parent.relative_to(clips[0].parent) / f"{c.stem}.{fmt}") for c in clips for fmt in FORMATS}
    lines = manifest_lines(expected)
    assert sorted(line["file"] for line in lines) == sorted(str(c.resolve()) for c in clips)
    assert all(line["status"] == "done" and line["error"] is None and line["audio_s"] > 2 for line in lines)
    first = next(line for line in lines if line["file"] == str(clips[3].resolve()))
    assert first["outputs"] == [f"sub/{clips[3].stem}.{fmt}" for fmt in FORMATS]
    assert first["size_bytes"] == clips[3].stat().st_size and len(first["sha256"]) == 64


def test_rerun_skips_done_files_and_redoes_changed_ones(capsys, engine, clips, expected, tmp_path):
    out = tmp_path / "out"
    argv = ["batch", str(clips[0].parent), "--model", engine.name, "--format", "all", "--output-dir", str(out)]
    for name, data in outputs_of(expected).items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_bytes(data)
    (out / MANIFEST_NAME).write_bytes((expected / MANIFEST_NAME).read_bytes())
    changed = clips[1]
    original = changed.read_bytes()
    try:
        changed.write_bytes(clips[2].read_bytes())  # new content under the same name: its hash no longer matches
        assert main(argv) == 0
    finally:
        changed.write_bytes(original)
    err = capsys.readouterr().err
    assert "done 1, skipped 5 (done before), failed 0" in err
    assert (out / f"{changed.stem}.txt").read_bytes() == (expected / f"{clips[2].stem}.txt").read_bytes()


def test_bad_file_is_recorded_and_the_rest_done(capsys, engine, clips, tmp_path):
    bad = tmp_path / "notes.mp3"
    bad.write_text("These are my meeting notes, not audio.\n" * 20)
    out = tmp_path / "out"
    code = main(["batch", str(clips[0]), str(bad), str(clips[1]), "--model", engine.name, "--output-dir", str(out)])
    assert code == 1
    err = capsys.readouterr().err
    assert "done 2, skipped 0 (done before), failed 1" in err
    assert f"failed: {bad}: " in err and "looks like a text file" in err
    assert "Traceback" not in err
    record = next(line for line in manifest_lines(out) if line["file"] == str(bad.resolve()))
    assert record["status"] == "failed" and "looks like a text file" in record["error"] and record["outputs"] == []
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [MANIFEST_NAME, f"{clips[0].stem}.txt", f"{clips[1].stem}.txt"]
    )


def test_ctrl_c_keeps_what_finished(engine, clips, expected, tmp_path):
    jobs = [
        batch.BatchJob(c, {"txt": tmp_path / f"{c.stem}.txt"}, c.stat().st_size, "h", 3.0)
        for c in clips
        if c.parent == clips[0].parent
    ]

    def interrupt_after_two(progress: batch.BatchProgress) -> None:
        if progress.files_done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_batch(jobs, LocalRunner(engine, TranscribeOptions()), Manifest(tmp_path), interrupt_after_two)
    assert [line["file"] for line in manifest_lines(tmp_path)] == [str(j.file.resolve()) for j in jobs[:2]]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [MANIFEST_NAME, *(f"{j.file.stem}.txt" for j in jobs[:2])]
    )
    assert (tmp_path / f"{jobs[0].file.stem}.txt").read_bytes() == (expected / f"{jobs[0].file.stem}.txt").read_bytes()


@pytest.mark.slow
def test_killed_driver_resumes_without_duplicates_or_half_files(tiny_model_dir, clips, expected, tmp_path):
    out = tmp_path / "out"
    command = [sys.executable, "-m", "asr", "batch", str(clips[0].parent), "--model", str(tiny_model_dir)]
    command += ["--format", "all", "--output-dir", str(out)]
    # A killed process cannot remove its temporary folder: keep it under tmp_path, not in the shared /tmp.
    (tmp_path / "tmp").mkdir()
    env = {**os.environ, "TMPDIR": str(tmp_path / "tmp")}
    driver = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    assert driver.stderr is not None
    while not (out / MANIFEST_NAME).exists() or len(manifest_lines(out)) < 2:
        assert driver.poll() is None, driver.stderr.read().decode()[-3000:]
        assert time.monotonic() < deadline, "the driver wrote no manifest lines in time"
        time.sleep(0.05)
    driver.send_signal(signal.SIGKILL)  # no chance to clean up
    driver.wait()
    finished = {line["file"] for line in manifest_lines(out)}
    assert 2 <= len(finished) < len(clips), "kill the driver part way"
    # A half file may be there now, but only under a hidden temporary name, never under an output's name.
    stray = [p for p in out.rglob("*") if p.is_file() and p.name != MANIFEST_NAME and not p.name.startswith(".")]
    assert all(outputs_of(expected)[str(p.relative_to(out))] == p.read_bytes() for p in stray)

    rerun = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"done {len(clips) - len(finished)}, skipped {len(finished)} (done before), failed 0" in rerun.stderr
    assert outputs_of(out) == outputs_of(expected)  # every output, no temporary file left
    files = [line["file"] for line in manifest_lines(out)]
    assert sorted(files) == sorted(str(c.resolve()) for c in clips)  # each file once: nothing done twice


def test_app_library_and_plain_cli_never_import_ray():
    check = (
        "import runpy, sys\n"
        "import asr, asr.cli, asr.batch\n"
        "sys.argv = ['asr', 'transcribe', '--help']\n"
        "try:\n    runpy.run_module('asr', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "print('ray' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", check], cwd=ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.strip().splitlines()[-1] == "False"
    with_cluster = subprocess.run(
        [sys.executable, "-c", "import sys, asr.cluster; asr.cluster.import_ray(); print('ray' in sys.modules)"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "RAY_USAGE_STATS_ENABLED": "1"},
    )
    assert with_cluster.stdout.strip() == "True"  # the check above can see Ray when it is loaded


def test_word_timestamps_and_the_subtitle_layout_reach_the_batch(engine, tiny_aligner_dir, clips, tmp_path):
    out = tmp_path / "out"
    argv = ["batch", str(clips[0]), "--model", engine.name, "--format", "all", "--output-dir", str(out)]
    argv += ["--word-timestamps", "--aligner", str(tiny_aligner_dir), "--language", "en", "--max-line-width", "20"]
    assert main(argv) == 0
    document = json.loads((out / f"{clips[0].stem}.json").read_text(encoding="utf-8"))
    assert document["info"]["aligner"] == str(tiny_aligner_dir)
    assert all(s["words"] and not s["approximate_times"] for s in document["segments"])
    cue_lines = [line for line in (out / f"{clips[0].stem}.srt").read_text(encoding="utf-8").splitlines() if line]
    text_lines = [line for line in cue_lines if not line.isdigit() and " --> " not in line]
    assert text_lines and all(
        sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in line) <= 20 for line in text_lines
    )
