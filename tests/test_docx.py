"""DOCX export: written, then read back with python-docx and checked paragraph by paragraph."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import docx
import pytest

from asr.cli import main
from asr.docx_writer import render_docx
from asr.options import TranscribeOptions
from asr.results import Segment, SegmentFlag, SourceInfo, Transcript, TranscriptionInfo, format_clock
from asr.writers import render, save

SOURCE = SourceInfo(
    duration_s=3725.25, sample_rate=44_100, channels=2, codec="mp3", container="mp3", size_bytes=3_100_000
)
# The tiny random model writes any characters, control characters included, which XML cannot hold.
NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")


def make_transcript(*segments: Segment) -> Transcript:
    info = TranscriptionInfo(
        source=SOURCE, duration_s=3725.25, language=None, options=TranscribeOptions(), model="tiny", notes=()
    )
    return Transcript(segments=segments, info=info)


def paragraphs(data: bytes) -> list[tuple[str, str, list[bool | None]]]:
    """(style, text, bold of each run) for every paragraph of a .docx file."""
    document = docx.Document(io.BytesIO(data))
    return [(p.style.name if p.style else "", p.text, [run.bold for run in p.runs]) for p in document.paragraphs]


def test_title_facts_language_then_one_paragraph_per_segment():
    transcript = make_transcript(
        Segment(1.5, 4.25, "Hello there.", "English"),
        Segment(62.0, 65.0, "", "English"),  # no text (e.g. a dropped echo): no paragraph
        Segment(3723.0, 3725.0, "你好，世界。", "Chinese", (SegmentFlag.TOKEN_CAP,)),
    )
    data = render_docx(transcript, title="meeting.m4a")
    assert paragraphs(data) == [
        ("Heading 1", "meeting.m4a", [None]),
        ("Normal", "1:02:05 · 44.1 kHz · stereo · MP3 · 3.1 MB", [None]),
        ("Normal", "Language: English, Chinese", [None]),
        ("Normal", "0:02  Hello there.", [True, None]),
        ("Normal", "1:02:03  你好，世界。", [True, None]),
    ]
    assert docx.Document(io.BytesIO(data)).core_properties.title == "meeting.m4a"


def test_empty_transcript_and_characters_xml_cannot_hold():
    data = render_docx(make_transcript(Segment(0.0, 1.0, "a\x00b\x1bc\nd", None)), title="\x07")
    assert [text for _, text, _ in paragraphs(data)] == [
        "Transcript",  # the title had nothing printable left
        "1:02:05 · 44.1 kHz · stereo · MP3 · 3.1 MB",
        "Language: unknown",
        "0:00  abc d",
    ]
    assert [text for _, text, _ in paragraphs(render_docx(make_transcript()))][2:] == ["Language: unknown"]


def test_save_and_render_title_it_with_the_file_name(tmp_path: Path):
    transcript = make_transcript(Segment(0.0, 1.0, "One.", "English"))
    path = save(transcript, "docx", tmp_path / "interview.docx")
    assert paragraphs(path.read_bytes())[0][1] == "interview"
    docx = render(transcript, "docx", name="call.mp3")
    assert isinstance(docx, bytes) and paragraphs(docx)[0][1] == "call.mp3"
    assert render(transcript, "txt", name="call.mp3") == "One.\n"


@pytest.fixture(scope="module")
def audio(encode_speech):
    return encode_speech("docx-cli.wav", format="wav", codec="pcm_s16le")


def test_cli_all_formats_include_docx(capsys, tmp_path, tiny_model_dir, audio):
    argv = ["transcribe", str(audio), "--model", str(tiny_model_dir), "--language", "en", "--format", "all"]
    assert main([*argv, "--output-dir", str(tmp_path)]) == 0, capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f"docx-cli.{fmt}" for fmt in ("docx", "json", "srt", "txt", "vtt")
    ]
    written = paragraphs((tmp_path / "docx-cli.docx").read_bytes())
    segments = json.loads((tmp_path / "docx-cli.json").read_text(encoding="utf-8"))["segments"]
    expected = [f"{format_clock(s['start_s'])}  {' '.join(NOT_XML.sub('', s['text']).split())}" for s in segments]
    assert segments and [text for _, text, _ in written[3:]] == expected


def test_cli_docx_to_stdout_is_the_file_itself(capsysbinary, tiny_model_dir, audio):
    argv = ["transcribe", str(audio), "--model", str(tiny_model_dir), "--format", "docx", "--output-dir", "-"]
    assert main(argv) == 0
    out = capsysbinary.readouterr().out
    assert paragraphs(out)[0][1] == "docx-cli.wav"
