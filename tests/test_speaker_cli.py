"""`python -m asr transcribe --speakers ...` and `batch` on a two-speaker espeak-ng conversation."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import soundfile as sf
from docx import Document

from asr.cli import main
from testbed.conversations import conversation


@pytest.fixture(scope="module")
def meeting(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("meeting") / "meeting.wav"
    sf.write(path, conversation("two").samples, 16_000, subtype="PCM_16")
    return path


@pytest.mark.slow
def test_speakers_auto_format_all_writes_labelled_outputs(capsys, tmp_path, tiny_model_dir, meeting) -> None:
    out = tmp_path / "out"
    argv = ["transcribe", str(meeting), "--model", str(tiny_model_dir), "--language", "en"]
    code = main([*argv, "--speakers", "auto", "--speaker-names", "Alice", "--format", "all", "--output-dir", str(out)])
    err = capsys.readouterr().err
    assert code == 0, err
    result = json.loads((out / "meeting.json").read_text(encoding="utf-8"))
    assert result["speakers"] == [{"id": "S1", "name": "Alice"}, {"id": "S2", "name": "Speaker 2"}]
    assert {turn["speaker"] for turn in result["speaker_turns"]} == {"S1", "S2"}
    assert result["info"]["options"]["speakers"]["names"] == ["Alice"]
    spoken = [s for s in result["segments"] if s["text"]]
    assert spoken and all(s["speaker"] in ("S1", "S2") for s in spoken)
    names = {"S1": "Alice", "S2": "Speaker 2"}
    first = names[spoken[0]["speaker"]]
    assert (out / "meeting.txt").read_text(encoding="utf-8").startswith(f"{first}: ")
    assert f"<v {first}>" in (out / "meeting.vtt").read_text(encoding="utf-8")
    assert f"{first}: " in (out / "meeting.srt").read_text(encoding="utf-8").split("\n")[2]
    runs = Document(io.BytesIO((out / "meeting.docx").read_bytes())).paragraphs[3].runs
    assert runs[1].bold and runs[1].text.strip() == f"{first}:"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--speakers", "many"], "'auto' or a number"),
        (["--min-speakers", "2"], "need --speakers"),
        (["--speakers", "2", "--max-speakers", "3"], "not both"),
        (["--speakers", "auto", "--min-speakers", "4", "--max-speakers", "3"], "min <= max"),
    ],
)
def test_bad_speaker_flags_stop_before_any_model_work(capsys, extra, message, meeting) -> None:
    for command in (["transcribe", str(meeting)], ["batch", str(meeting), "--output-dir", "x"]):
        assert main([*command, *extra]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and err.count("\n") == 1


@pytest.mark.slow
def test_batch_takes_the_speaker_options(capsys, tmp_path, tiny_model_dir, meeting) -> None:
    out = tmp_path / "batch"
    argv = ["batch", str(meeting), "--model", str(tiny_model_dir), "--language", "en", "--speakers", "2"]
    code = main([*argv, "--format", "json", "--output-dir", str(out)])
    assert code == 0, capsys.readouterr().err
    (written,) = out.rglob("meeting.json")
    result = json.loads(written.read_text(encoding="utf-8"))
    assert len(result["speakers"]) == 2 and result["info"]["options"]["speakers"]["count"] == 2
