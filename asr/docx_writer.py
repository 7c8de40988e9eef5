"""Render a `Transcript` as a Word document (.docx), for people who hand transcripts on as Word files.

The document reads like the page: the file name as its title, the facts line (duration, sample rate,
channels, codec, size), the language, then one paragraph per segment that starts with its time
("1:02:03") in bold. python-docx builds it from its own blank template, so nothing here depends on
Word being installed. DOCX is a zip of XML parts, so this writer returns bytes, not text.
"""

from __future__ import annotations

import io
import re

from .results import Transcript, format_clock

DEFAULT_TITLE = "Transcript"
# Characters XML 1.0 forbids (C0 controls other than tab, newline and carriage return); lxml refuses
# them, and an edited transcript may carry one pasted from elsewhere.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")


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
    document.core_properties.title = title
    document.add_heading(title, level=1)
    document.add_paragraph(transcript.info.source.summary())
    document.add_paragraph(f"Language: {', '.join(transcript.languages) or 'unknown'}")
    for segment in transcript.segments:
        text = " ".join(_xml_safe(segment.text).split())  # one paragraph: line breaks become spaces
        if not text:
            continue
        paragraph = document.add_paragraph()
        paragraph.add_run(format_clock(segment.start_s)).bold = True
        paragraph.add_run(f"  {text}")
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def _xml_safe(text: str) -> str:
    """`text` without the control characters that XML cannot hold."""
    return _NOT_XML.sub("", text)
