"""`python -m asr live`: a file played through the live path, and a clear message without a microphone."""

from __future__ import annotations

import json
import time

import pytest
import soundfile as sf

import asr
from asr.cli import main
from testbed.speech import SENTENCES, speech_with_pauses


def test_from_file_writes_the_transcript_and_its_live_events(capsys, tmp_path, tiny_model_dir):
    samples, _ = speech_with_pauses(SENTENCES[:2], (1.2,))
    talk = tmp_path / "talk.wav"
    sf.write(talk, samples, asr.SAMPLE_RATE)
    speed = 4.0
    began = time.monotonic()
    source = ["--from-file", str(talk), "--speed", str(speed), "--model", str(tiny_model_dir), "--language", "en"]
    code = main(["live", *source, "--format", "json", "--output-dir", str(tmp_path / "out")])
    took = time.monotonic() - began
    out, err = capsys.readouterr()
    assert code == 0, err
    assert took >= len(samples) / asr.SAMPLE_RATE / speed  # played at its pace, not all at once
    document = json.loads((tmp_path / "out" / "talk.json").read_text(encoding="utf-8"))
    events = document["live_events"]
    assert all(set(event) == {"type", "at_s", "audio_end_s", "text"} for event in events)
    finals = [event for event in events if event["type"] == "final"]
    assert len(finals) == 2 and {event["type"] for event in events} <= {"draft", "final"}
    assert [event["at_s"] for event in events] == sorted(event["at_s"] for event in events)
    assert " ".join(f["text"] for f in finals) == " ".join(s["text"] for s in document["segments"])
    assert document["info"]["source"]["container"] == "live"
    for final in finals:  # each final was printed as a line (stdout is no terminal: no drafts)
        assert final["text"] in out


def test_without_a_microphone_the_message_says_what_to_do(capsys, monkeypatch):
    """Tests never record: the machine's sound devices are replaced by none at all."""
    import sounddevice

    def no_input(*args, **kwargs):
        raise sounddevice.PortAudioError("Error querying device -1")

    monkeypatch.setattr(sounddevice, "query_devices", no_input)
    assert main(["live"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "No microphone found" in err and "--from-file" in err


@pytest.mark.parametrize("argv", [["--speed", "0"], ["--language", "klingon"]])
def test_bad_live_arguments_are_usage_errors(capsys, argv):
    assert main(["live", "--from-file", "x.wav", *argv]) == 2
    assert capsys.readouterr().err.count("\n") == 1
