"""Every writer with speakers, against literal golden strings; renames, moves and merges reach every format."""

from __future__ import annotations

import io
import json

import pytest
from docx import Document

import asr
from asr.errors import OptionsError
from asr.options import SpeakerOptions, TranscribeOptions
from asr.results import Segment, SourceInfo, SpeakerTurn, Transcript, TranscriptionInfo, Word
from asr.writers import render

TURNS = (SpeakerTurn(0.5, 2.4, "S1"), SpeakerTurn(2.9, 4.0, "S2"), SpeakerTurn(4.5, 6.2, "S1"))


def _segment(speaker: str, *words: tuple[float, float, str]) -> Segment:
    timed = tuple(Word(a, b, text, speaker) for a, b, text in words)
    return Segment(timed[0].start_s, timed[-1].end_s, " ".join(w.text for w in timed), "English", (), timed, speaker)


def conversation(names: tuple[str, ...] = ("Alice",)) -> Transcript:
    info = TranscriptionInfo(
        SourceInfo(6.5, 16_000, 1, "pcm_s16le", "wav"),
        6.5,
        "English",
        TranscribeOptions(speakers=SpeakerOptions(names=names)),
        "Qwen/Qwen3-ASR-0.6B",
        speaker_turns=TURNS,
    )
    segments = (
        _segment("S1", (0.5, 1.0, "Shall"), (1.0, 1.4, "we"), (1.4, 2.4, "start?")),
        _segment("S2", (2.9, 3.4, "Yes,"), (3.4, 4.0, "please.")),
        _segment("S1", (4.5, 5.0, "Good."), (5.0, 6.2, "Thanks.")),
    )
    return Transcript(segments, info)


def test_txt_is_written_as_turns_with_names() -> None:
    expected = "Alice: Shall we start?\n\nSpeaker 2: Yes, please.\n\nAlice: Good. Thanks.\n"
    assert render(conversation(), "txt") == expected


def test_srt_names_the_speaker_at_the_first_cue_of_each_turn() -> None:
    assert render(conversation(), "srt") == (
        "1\n00:00:00,500 --> 00:00:02,400\nAlice: Shall we start?\n\n"
        "2\n00:00:02,900 --> 00:00:04,000\nSpeaker 2: Yes, please.\n\n"
        "3\n00:00:04,500 --> 00:00:06,200\nAlice: Good. Thanks.\n\n"
    )


def test_vtt_uses_voice_tags() -> None:
    assert render(conversation(), "vtt") == (
        "WEBVTT\n\n"
        "00:00:00.500 --> 00:00:02.400\n<v Alice>Shall we start?\n\n"
        "00:00:02.900 --> 00:00:04.000\n<v Speaker 2>Yes, please.\n\n"
        "00:00:04.500 --> 00:00:06.200\n<v Alice>Good. Thanks.\n\n"
    )


def test_json_has_speakers_turns_and_a_speaker_on_segments_and_words() -> None:
    document = json.loads(render(conversation(), "json"))
    assert document["speakers"] == [{"id": "S1", "name": "Alice"}, {"id": "S2", "name": "Speaker 2"}]
    assert document["speaker_turns"] == [
        {"start_s": 0.5, "end_s": 2.4, "speaker": "S1"},
        {"start_s": 2.9, "end_s": 4.0, "speaker": "S2"},
        {"start_s": 4.5, "end_s": 6.2, "speaker": "S1"},
    ]
    assert [s["speaker"] for s in document["segments"]] == ["S1", "S2", "S1"]
    assert [w["speaker"] for w in document["segments"][1]["words"]] == ["S2", "S2"]
    assert document["info"]["options"]["speakers"] == {
        "count": None,
        "min_speakers": 1,
        "max_speakers": 8,
        "names": ["Alice"],
    }


def _docx_paragraphs(transcript: Transcript) -> list[list[tuple[str, bool]]]:
    document = Document(io.BytesIO(render(transcript, "docx")))  # type: ignore[arg-type]
    return [[(run.text, bool(run.bold)) for run in p.runs] for p in document.paragraphs[3:]]


def test_docx_puts_the_name_in_bold_at_the_start_of_each_turn() -> None:
    assert _docx_paragraphs(conversation()) == [
        [("0:00", True), ("  Alice:", True), ("  Shall we start?", False)],
        [("0:03", True), ("  Speaker 2:", True), ("  Yes, please.", False)],
        [("0:04", True), ("  Alice:", True), ("  Good. Thanks.", False)],
    ]


def test_a_long_turn_is_cut_into_cues_of_one_speaker_and_named_once() -> None:
    words = [(0.5 + 0.4 * i, 0.9 + 0.4 * i, f"word{i}") for i in range(30)]
    long_one = _segment("S1", *words)
    transcript = Transcript((long_one, conversation().segments[1]), conversation().info)
    srt = render(transcript, "srt")
    assert isinstance(srt, str)
    assert srt.count("Alice: ") == 1 and srt.count("Speaker 2: ") == 1 and srt.count(" --> ") > 2
    vtt = render(transcript, "vtt")
    assert isinstance(vtt, str) and vtt.count("<v Alice>") == srt.count(" --> ") - 1


def test_a_rename_reaches_every_format() -> None:
    renamed = asr.rename_speaker(conversation(), "S2", "  Bob  ")
    for fmt in ("txt", "srt", "vtt", "json"):
        text = render(renamed, fmt)
        assert isinstance(text, str) and "Bob" in text and "Speaker 2" not in text, fmt
    assert ("  Bob:", True) in _docx_paragraphs(renamed)[1]
    assert json.loads(render(renamed, "json"))["speakers"][1] == {"id": "S2", "name": "Bob"}


def test_bad_renames_say_what_to_do() -> None:
    with pytest.raises(OptionsError, match="already called 'Alice'"):
        asr.rename_speaker(conversation(), "S2", "Alice")
    with pytest.raises(OptionsError, match="must not be empty"):
        asr.rename_speaker(conversation(), "S2", " ")
    with pytest.raises(OptionsError, match="No speaker 'S9'"):
        asr.rename_speaker(conversation(), "S9", "Zed")


def test_moving_a_sentence_and_merging_speakers() -> None:
    moved = asr.move_segment(conversation(), 1, "S1")
    assert render(moved, "txt") == "Alice: Shall we start? Yes, please. Good. Thanks.\n"
    merged = asr.merge_speakers(conversation(), "S2", "S1")
    assert merged.speakers is not None
    assert [s.id for s in merged.speakers] == ["S1"] and {t.speaker for t in merged.speaker_turns} == {"S1"}
    assert "Speaker 2" not in render(merged, "vtt") and json.loads(render(merged, "json"))["speakers"] == [
        {"id": "S1", "name": "Alice"}
    ]
