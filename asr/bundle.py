"""Output names shared by the CLI and the page, and one zip with every format of several transcripts.

Both front ends name outputs after the recordings the same way (`output_bases`): ``meeting.m4a``
gives ``meeting.srt``; recordings that share a stem keep their suffix (``a.mp3.srt``, ``a.wav.srt``)
so neither overwrites the other, and a name that comes twice (the same file transcribed again, or
two folders holding ``a.wav``) gets " (2)", " (3)", ... The zip is built in memory: a day's
transcripts are a few megabytes at most, and nothing touches the disk.
"""

from __future__ import annotations

import io
import zipfile
from collections import Counter
from collections.abc import Sequence
from pathlib import PurePath

from .results import Transcript
from .writers import FORMATS, render


def output_bases(names: Sequence[str]) -> list[str]:
    """The base of each recording's output names, in order, all different.

    Args:
        names: the recordings' file names; only the last part of a path counts.

    Returns:
        For each name its stem, or its whole name when another name has the same stem, with
        " (2)", " (3)", ... added to a repeat.
    """
    names = [PurePath(name).name for name in names]
    stems = Counter(PurePath(name).stem for name in names)
    bases = [name if stems[PurePath(name).stem] > 1 else PurePath(name).stem or "transcript" for name in names]
    seen: Counter[str] = Counter()
    unique = []
    for base in bases:
        seen[base] += 1
        unique.append(base if seen[base] == 1 else f"{base} ({seen[base]})")
    return unique


def build_zip(transcripts: Sequence[tuple[str, Transcript]]) -> bytes:
    """One zip with every format (TXT, SRT, VTT, JSON, DOCX) of every transcript.

    Args:
        transcripts: (the recording's file name, its transcript) pairs, in the order to list them.

    Returns:
        The zip file's bytes: ``<base>.<format>`` entries at its top level, bases from `output_bases`.
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        names = [name for name, _ in transcripts]
        for base, (name, transcript) in zip(output_bases(names), transcripts, strict=True):
            for fmt in FORMATS:
                archive.writestr(f"{base}.{fmt}", render(transcript, fmt, name=name))
    return buffer.getvalue()
