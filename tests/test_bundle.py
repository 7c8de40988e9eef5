"""Output names shared by the CLI and the page, and the "Download all" zip, read back entry by entry."""

from __future__ import annotations

import io
import zipfile

import docx
import pytest

from asr.bundle import build_zip, output_bases
from asr.options import TranscribeOptions
from asr.results import Segment, SourceInfo, Transcript, TranscriptionInfo
from asr.writers import FORMATS, WRITERS


@pytest.mark.parametrize(
    ("names", "bases"),
    [
        (["meeting.m4a", "call.mp3"], ["meeting", "call"]),
        (["a.mp3", "a.wav", "b.wav"], ["a.mp3", "a.wav", "b"]),  # same stem: the suffix keeps them apart
        (["a.wav", "a.wav", "a.wav"], ["a.wav", "a.wav (2)", "a.wav (3)"]),  # the same name again
        (["x/a.wav", "y/a.wav"], ["a.wav", "a.wav (2)"]),  # only the name counts, never a folder
        (["../../etc/passwd"], ["passwd"]),
        ([".wav", ""], [".wav", "transcript"]),
    ],
)
def test_output_bases(names, bases):
    assert output_bases(names) == bases


def _transcript(text: str) -> Transcript:
    source = SourceInfo(duration_s=4.0, sample_rate=16_000, channels=1, codec="pcm_s16le", container="wav")
    info = TranscriptionInfo(source, 4.0, "English", TranscribeOptions(), model="tiny")
    return Transcript(segments=(Segment(0.5, 3.5, text, "English"),), info=info)


def test_zip_holds_every_format_of_every_file_kept_apart():
    files = [("a.wav", _transcript("First.")), ("a.mp3", _transcript("Second.")), ("notes.m4a", _transcript("Third."))]
    with zipfile.ZipFile(io.BytesIO(build_zip(files))) as archive:
        assert archive.testzip() is None
        names = archive.namelist()
        assert names == [f"{base}.{fmt}" for base in ("a.wav", "a.mp3", "notes") for fmt in FORMATS]
        assert "docx" in FORMATS and len(names) == 15
        for (name, transcript), base in zip(files, ("a.wav", "a.mp3", "notes"), strict=True):
            for fmt in ("txt", "srt", "vtt", "json"):
                assert archive.read(f"{base}.{fmt}").decode("utf-8") == WRITERS[fmt](transcript)
            paragraphs = [p.text for p in docx.Document(io.BytesIO(archive.read(f"{base}.docx"))).paragraphs]
            assert paragraphs[0] == name and paragraphs[-1] == f"0:00  {transcript.segments[0].text}"
