"""`python -m asr` end to end on real encoded speech and the tiny checkpoint."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from asr.cli import main
from testbed.speech import SENTENCES, silence, speak


def speak_clip() -> np.ndarray:
    """One spoken English sentence with a little silence around it, at 16 kHz."""
    return np.concatenate([silence(0.5), speak(SENTENCES[0]), silence(0.5)])


FORMATS: dict[str, tuple[str, str, dict[str, Any]]] = {  # file name -> (container, codec, extra encoder arguments)
    "cli.wav": ("wav", "pcm_s16le", {}),
    "cli.mp3": ("mp3", "libmp3lame", {}),
    "cli.flac": ("flac", "flac", {}),
    "cli.ogg": ("ogg", "vorbis", {"rate": 44_100, "channels": 2, "codec_options": {"strict": "-2"}}),
    "cli.opus": ("ogg", "libopus", {"rate": 48_000}),
    "cli.m4a": ("ipod", "aac", {"rate": 44_100, "channels": 2}),
    "cli.webm": ("webm", "libopus", {"rate": 48_000}),
    "cli-video.mp4": ("mp4", "aac", {"video": True}),
    "cli-video.mkv": ("matroska", "flac", {"video": True, "rate": 48_000}),
}


@pytest.fixture(scope="module")
def speech_files(encode_speech):
    return [
        encode_speech(name, format=container, codec=codec, **extra)
        for name, (container, codec, extra) in FORMATS.items()
    ]


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory, encode_speech):
    """Each bad input next to the message the user should see about it."""
    folder = tmp_path_factory.mktemp("bad")
    empty = folder / "empty.wav"
    empty.write_bytes(b"")
    text = folder / "notes.mp3"
    text.write_text("These are my meeting notes, not audio.\n" * 20)
    m4a = encode_speech("cli-whole.m4a", format="ipod", codec="aac").read_bytes()
    truncated = folder / "cut.m4a"
    truncated.write_bytes(m4a[: len(m4a) // 3])
    silent_video = encode_speech("cli-silent.mp4", format="mp4", codec="aac", video=True, audio=False)
    return {
        empty: "is empty",
        text: "looks like a text file",
        truncated: "truncated or damaged",
        silent_video: "has no audio track",
        folder / "missing.wav": "File not found",
    }


def _cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_import_asr_does_not_load_torch():
    code = "import sys, asr; asr.QwenEngine; print('torch' in sys.modules)"
    light = subprocess.run(
        [sys.executable, "-c", "import sys, asr; print('torch' in sys.modules)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert light.stdout.strip() == "False"
    lazy = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert lazy.stdout.strip() == "True"  # the engine, and only the engine, brings torch


def test_every_format_gives_all_four_outputs(capsys, tmp_path, tiny_model_dir, speech_files):
    out = tmp_path / "out"
    code, _, err = _cli(
        capsys,
        "transcribe",
        *map(str, speech_files),
        "--model",
        str(tiny_model_dir),
        "--language",
        "en",
        "--format",
        "all",
        "--output-dir",
        str(out),
    )
    assert code == 0, err
    assert "Traceback" not in err
    stems = [file.stem for file in speech_files]
    for file in speech_files:
        base = file.name if stems.count(file.stem) > 1 else file.stem  # cli.wav -> cli.wav.srt, cli-video.mp4 -> ...
        outputs = {fmt: out / f"{base}.{fmt}" for fmt in ("txt", "srt", "vtt", "json")}
        assert all(path.is_file() for path in outputs.values()), file.name
        result = json.loads(outputs["json"].read_text(encoding="utf-8"))
        assert result["segments"] and result["languages"] == ["English"]
        assert result["info"]["source"]["channels"] >= 1 and result["info"]["model"] == str(tiny_model_dir)
        assert outputs["srt"].read_text(encoding="utf-8").startswith("1\n00:00:00,")
        assert outputs["vtt"].read_text(encoding="utf-8").startswith("WEBVTT\n\n")
        assert outputs["txt"].read_bytes().decode("utf-8").strip() == result["text"].strip()


def test_same_stem_keeps_both_outputs(capsys, tmp_path, tiny_model_dir, speech_files):
    wav, mp3 = speech_files[:2]
    code, _, err = _cli(
        capsys,
        "transcribe",
        str(wav),
        str(mp3),
        "--model",
        str(tiny_model_dir),
        "--format",
        "srt",
        "--output-dir",
        str(tmp_path),
    )
    assert code == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cli.mp3.srt", "cli.wav.srt"]


def test_stdout_output(capsys, tiny_model_dir, speech_files):
    code, out, err = _cli(
        capsys,
        "transcribe",
        str(speech_files[0]),
        "--model",
        str(tiny_model_dir),
        "--format",
        "vtt",
        "--output-dir",
        "-",
    )
    assert code == 0, err
    assert out.startswith("WEBVTT\n\n00:00:00.")


def test_bad_files_fail_alone_with_their_own_message(capsys, tmp_path, tiny_model_dir, speech_files, bad_files):
    good = speech_files[0]
    files = [*bad_files, good]
    code, _, err = _cli(
        capsys, "transcribe", *map(str, files), "--model", str(tiny_model_dir), "--output-dir", str(tmp_path)
    )
    assert code == 1
    assert (tmp_path / "cli.txt").is_file()  # the good file still got its transcript
    lines = {line.split(": error: ")[0]: line for line in err.splitlines() if ": error: " in line}
    assert set(lines) == {str(path) for path in bad_files}  # missing files are reported first, before the model loads
    for path, message in bad_files.items():
        assert message in lines[str(path)], lines[str(path)]
    assert "Traceback" not in err


def test_unknown_language_is_a_usage_error(capsys, speech_files):
    code, _, err = _cli(capsys, "transcribe", str(speech_files[0]), "--language", "klingon")
    assert code == 2
    assert err.count("\n") == 1 and "Unknown language 'klingon'" in err and "en (English)" in err


def test_usage_errors_exit_2_with_one_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["transcribe"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "required: FILE" in err
    with pytest.raises(SystemExit) as exit_info:
        main(["transcribe", "a.wav", "--format", "pdf"])
    assert exit_info.value.code == 2 and "invalid choice: 'pdf'" in capsys.readouterr().err


def test_missing_model_explains_how_to_get_it(capsys, tmp_path, speech_files, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    code, _, err = _cli(capsys, "transcribe", str(speech_files[0]), "--model", str(tmp_path / "no-model"))
    assert code == 1
    assert "No model folder" in err and "python -m asr download" in err and "Traceback" not in err


def test_a_missing_file_is_reported_before_a_missing_model(capsys, tmp_path, speech_files):
    missing = tmp_path / "meeting.wav"
    code, _, err = _cli(capsys, "transcribe", str(missing), "--model", str(tmp_path / "no-model"))
    assert code == 1 and err == f"{missing}: error: File not found: {missing}. Check the path and its spelling.\n"
    code, _, err = _cli(capsys, "transcribe", str(missing), str(speech_files[0]), "--model", str(tmp_path / "no-model"))
    assert code == 1 and err.index("File not found") < err.index("No model folder")  # the file first, then the model


def test_verbose_shows_the_weights_loading_bar(capsys, tmp_path, tiny_model_dir, speech_files):
    arguments = ["transcribe", str(speech_files[0]), "--model", str(tiny_model_dir), "--output-dir", str(tmp_path)]
    code, _, err = _cli(capsys, *arguments, "-v")
    assert code == 0 and "Loading weights" in err
    code, _, err = _cli(capsys, *arguments)
    assert code == 0 and "Loading weights" not in err


def test_the_aligner_comes_from_qwen3_asr_aligner(capsys, monkeypatch, tmp_path, tiny_model_dir, tiny_aligner_dir):
    clip = tmp_path / "talk.wav"
    sf.write(clip, speak_clip(), 16_000)
    arguments = ["transcribe", str(clip), "--model", str(tiny_model_dir), "--word-timestamps", "--language", "en"]
    monkeypatch.setenv("QWEN3_ASR_ALIGNER", str(tmp_path / "no-aligner"))
    code, _, err = _cli(capsys, *arguments, "--output-dir", str(tmp_path / "estimated"))
    assert code == 0, err
    (note,) = [line for line in err.splitlines() if line.startswith("note: ")]
    assert f"No model folder at {tmp_path / 'no-aligner'}." in note and "set QWEN3_ASR_ALIGNER to a folder" in note
    assert "QWEN3_ASR_MODEL" not in note
    monkeypatch.setenv("QWEN3_ASR_ALIGNER", str(tiny_aligner_dir))
    code, _, err = _cli(capsys, *arguments, "--format", "json", "--output-dir", str(tmp_path / "aligned"))
    assert code == 0 and "note: " not in err, err
    assert re.search(r"Finding word times… \d+%", err), err  # the bar names the aligner's pass, as the page does
    info = json.loads((tmp_path / "aligned" / "talk.json").read_text(encoding="utf-8"))["info"]
    assert info["aligner"] == str(tiny_aligner_dir)


def test_info_shows_the_facts(capsys, speech_files, bad_files):
    m4a = next(f for f in speech_files if f.suffix == ".m4a")
    code, out, err = _cli(capsys, "info", str(m4a))
    assert code == 0, err
    assert out.startswith(f"{m4a}: 0:04 · 44.1 kHz · stereo · AAC · ")
    code, out, err = _cli(capsys, "info", *map(str, bad_files))
    assert code == 1 and out == "" and err.count(": error: ") == len(bad_files)


def test_python_dash_m_asr_with_progress(tmp_path, tiny_model_dir, speech_files):
    """The real entry point in a fresh process, model chosen by QWEN3_ASR_MODEL."""
    env = {**os.environ, "QWEN3_ASR_MODEL": str(tiny_model_dir)}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "asr",
            "transcribe",
            str(speech_files[1]),
            "--format",
            "srt",
            "--output-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(__file__).parents[1],
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "100%" in result.stderr and "0:04 / 0:04" in result.stderr
    assert "Loading weights" not in result.stderr  # transformers' bar, shown only with -v
    assert (tmp_path / "cli.srt").read_text(encoding="utf-8").startswith("1\n")


def test_silence_only_file_gives_an_empty_transcript_and_a_note(capsys, tmp_path, tiny_model_dir):
    quiet = tmp_path / "quiet.wav"
    sf.write(quiet, np.zeros(10 * 16_000, dtype=np.float32), 16_000)
    code, _, err = _cli(
        capsys,
        "transcribe",
        str(quiet),
        "--model",
        str(tiny_model_dir),
        "--format",
        "all",
        "--output-dir",
        str(tmp_path),
    )
    assert code == 0, err
    assert f"{quiet}: no speech detected" in err
    assert (tmp_path / "quiet.txt").read_text(encoding="utf-8") == ""
    assert json.loads((tmp_path / "quiet.json").read_text(encoding="utf-8"))["info"]["notes"] == ["no speech detected"]


def test_max_duration_refuses_longer_files(capsys, tmp_path, tiny_model_dir, speech_files):
    code, _, err = _cli(
        capsys,
        "transcribe",
        str(speech_files[0]),
        "--model",
        str(tiny_model_dir),
        "--max-duration",
        "2",
        "--output-dir",
        str(tmp_path),
    )
    assert code == 1 and "more than the limit" in err and "Traceback" not in err
    code, _, err = _cli(capsys, "transcribe", str(speech_files[0]), "--max-duration", "-1")
    assert code == 2 and "max_duration_s must be positive" in err
