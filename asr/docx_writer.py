"""Render a `Transcript` as a Word document (.docx), for people who hand transcripts on as Word files.

The document reads like the page: the file name as its title, the facts line (duration, sample rate,
channels, codec, size), the language, then one paragraph per segment that starts with its time
("1:02:03") in bold. python-docx builds it from its own blank template, so nothing here depends on
Word being installed. DOCX is a zip of XML parts, so this writer returns bytes, not text. The same
transcript always gives the same bytes (fixed document dates, zip entries dated 1980-01-01), so a rerun
or a batch on other machines writes identical files.
"""

from __future__ import annotations

import datetime
import io
import re
import zipfile

from .results import Transcript, format_clock, speaker_runs

DEFAULT_TITLE = "Transcript"
# Characters XML 1.0 forbids (C0 controls other than tab, newline and carriage return); lxml refuses
# them, and an edited transcript may carry one pasted from elsewhere.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")
_FIXED_DATE = datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)  # the document's created/modified dates


def render_docx(transcript: Transcript, title: str = DEFAULT_TITLE) -> bytes:
    """Render the transcript as a .docx file.

    Args:
        transcript: the finished (possibly edited) transcription.
        title: the heading and the document's title property; the recording's file name, usually.

    Returns:
        The bytes of the .docx file. Segments without text (e.g. a dropped context echo) are left out.
    """
    from docx import Document  # imported here: only a DOCX download needs python-docx and lxml

    document = Document()
    title = _xml_safe(title) or DEFAULT_TITLE
    properties = document.core_properties
    properties.title = title
    properties.created = properties.modified = _FIXED_DATE
    properties.last_modified_by = properties.author = ""
    document.add_heading(title, level=1)
    document.add_paragraph(transcript.info.source.summary())
    document.add_paragraph(f"Language: {', '.join(transcript.languages) or 'unknown'}")
    for speaker, segments in speaker_runs(transcript.segments):
        name = transcript.speaker_name(speaker)
        for segment in segments:
            text = " ".join(_xml_safe(segment.text).split())  # one paragraph: line breaks become spaces
            if not text:
                continue
            paragraph = document.add_paragraph()
            paragraph.add_run(format_clock(segment.start_s)).bold = True
            if name:  # the speaker's name, bold, opens each turn
                paragraph.add_run(f"  {_xml_safe(name)}:").bold = True
                name = None
            paragraph.add_run(f"  {text}")
    buffer = io.BytesIO()
    document.save(buffer)
    return _without_zip_dates(buffer.getvalue())


def _without_zip_dates(data: bytes) -> bytes:
    """The same zip with every entry dated 1980-01-01 (the zip format's earliest), not the time of writing."""
    output = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(output, "w") as target:
        for entry in source.infolist():
            dated = zipfile.ZipInfo(entry.filename, date_time=(1980, 1, 1, 0, 0, 0))
            dated.compress_type = entry.compress_type
            target.writestr(dated, source.read(entry))
    return output.getvalue()


def _xml_safe(text: str) -> str:
    """`text` without the control characters that XML cannot hold."""
    return _NOT_XML.sub("", text)
