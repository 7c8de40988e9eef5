"""The input before any decoder sees it: checked, labelled for messages, and sniffed from its first bytes."""

from __future__ import annotations

import contextlib
import io
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from ..errors import AudioDecodeError, OptionsError
from .messages import FORMATS_HINT

# What decode_audio and read_source_info accept: a path, the bytes, or a binary file object.
FileObject = BinaryIO | io.RawIOBase | io.BufferedIOBase  # e.g. open(path, "rb"), io.BytesIO, an upload
AudioSource = str | os.PathLike[str] | bytes | bytearray | memoryview | FileObject


# The file names of the recordings and videos the decoder is known to read: what a folder is searched for
# (`batch.find_inputs`) and what the page names (it takes any file, and the decoder says what it cannot read).
AUDIO_SUFFIXES = frozenset(
    {".wav", ".mp3", ".flac", ".ogg", ".oga", ".opus", ".m4a", ".aac", ".wma", ".aiff", ".aif"}
    | {".webm", ".mp4", ".mov", ".mkv", ".m4v", ".avi"}
)
_HEAD_BYTES = 4096  # first bytes kept to recognise the format; enough for text detection


# First bytes of common files that are not audio, for messages only (FFmpeg decides what it can read).
_NON_MEDIA_SIGNATURES = (
    (b"%PDF-", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive or an Office document"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"Rar!\x1a\x07", "a RAR archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"\x7fELF", "a program"),
)


@dataclass
class Source:
    """A checked, non-empty input: a path or a seekable file object at its start, and a label for messages."""

    target: str | FileObject
    label: str  # the path the user gave, quoted, or "this file" for bytes; for messages, never for the log
    size_bytes: int | None
    head: bytes  # the first bytes, to recognise the format; never logged

    @property
    def subject(self) -> str:
        """The label at the start of a sentence."""
        return self.label[:1].upper() + self.label[1:]

    def rewound(self) -> str | FileObject:
        """The target, positioned at its start (each reader starts from the beginning)."""
        if not isinstance(self.target, str):
            self.target.seek(0)
        return self.target


@contextlib.contextmanager
def prepared_source(source: AudioSource) -> Iterator[Source]:
    """Check the input before any decoder sees it; a caller's file object is left where it was."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        yield _source_from_bytes(bytes(source))
    elif isinstance(source, (str, os.PathLike)):
        yield _source_from_path(os.fsdecode(os.fspath(source)))
    elif hasattr(source, "read"):
        start = _position(source)
        try:
            yield _source_from_file_object(source, start)
        finally:
            if start is not None:
                source.seek(start)
    else:
        raise TypeError(f"Expected a path, bytes or a binary file object, not {type(source).__name__}")


def _source_from_bytes(data: bytes, label: str = "this file") -> Source:
    """An in-memory source."""
    if not data:
        raise AudioDecodeError(
            f"{label[:1].upper()}{label[1:]} is empty (0 bytes): there is no audio in it. {FORMATS_HINT}"
        )
    return Source(io.BytesIO(data), label, len(data), data[:_HEAD_BYTES])


def _source_from_path(path: str) -> Source:
    """A file on disk, checked for existence, type and permission."""
    label = f"'{path}'"
    try:
        info = os.stat(path)
    except (FileNotFoundError, NotADirectoryError) as e:
        raise AudioDecodeError(f"File not found: {path}. Check the path and its spelling.") from e
    except PermissionError as e:
        raise AudioDecodeError(_permission_message(label)) from e
    except OSError as e:
        raise AudioDecodeError(f"Cannot read {label}: {e.strerror}. Check the path, or copy the file elsewhere.") from e
    if stat.S_ISDIR(info.st_mode):
        raise AudioDecodeError(f"{label} is a folder, not a file. Give the path of an audio or video file.")
    try:
        with open(path, "rb") as file:
            if not stat.S_ISREG(info.st_mode):  # a pipe or device can be read only once: keep what it gives
                return _source_from_bytes(file.read(), label)
            head = file.read(_HEAD_BYTES)
    except PermissionError as e:
        raise AudioDecodeError(_permission_message(label)) from e
    except OSError as e:
        raise AudioDecodeError(f"Cannot read {label}: {e.strerror}. Check the file, or copy it elsewhere.") from e
    if not head:
        raise AudioDecodeError(f"{label} is empty (0 bytes): there is no audio in it. {FORMATS_HINT}")
    return Source(path, label, info.st_size, head)


def _source_from_file_object(file: FileObject, start: int | None) -> Source:
    """A file object: used in place when seekable and at its start, else read into memory from where it is."""
    try:
        if start != 0:
            data = file.read()
            _require_bytes(data)
            return _source_from_bytes(data)
        size = file.seek(0, io.SEEK_END)
        file.seek(0)
        head = file.read(_HEAD_BYTES)
        file.seek(0)
    except OSError as e:
        raise AudioDecodeError(f"Cannot read the given file object: {e}. Pass the file's bytes instead.") from e
    _require_bytes(head)
    if not size:
        raise AudioDecodeError(f"This file is empty (0 bytes): there is no audio in it. {FORMATS_HINT}")
    return Source(file, "this file", size, head)


def _position(file: FileObject) -> int | None:
    """Where a seekable file object stands; None for streams that cannot seek."""
    seekable = getattr(file, "seekable", None)
    if not (seekable() if callable(seekable) else hasattr(file, "seek") and hasattr(file, "tell")):
        return None
    try:
        return file.tell()
    except OSError as e:
        raise AudioDecodeError(f"Cannot read the given file object: {e}. Pass the file's bytes instead.") from e


def _require_bytes(data: object) -> None:
    """Reject file objects opened in text mode (a programming error, not a user error)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError("The file object must be opened in binary mode ('rb'), it returned text")


def _permission_message(label: str) -> str:
    """The message for a file we may not read."""
    return f"Cannot read {label}: permission denied. Give your user read access to it, or copy it somewhere you can."


def check_max_duration(max_duration_s: float | None) -> None:
    """Reject a limit that is not a positive number of seconds."""
    valid = isinstance(max_duration_s, (int, float)) and not isinstance(max_duration_s, bool) and max_duration_s > 0
    if max_duration_s is not None and not valid:
        raise OptionsError(f"max_duration_s must be a positive number of seconds or None, got {max_duration_s!r}")


def recognise_non_media(head: bytes) -> str | None:
    """Name the kind of a common non-audio file from its first bytes, for messages; None if unsure."""
    for signature, kind in _NON_MEDIA_SIGNATURES:
        if head.startswith(signature):
            return kind
    return "a text file" if _looks_like_text(head) else None


_TEXT_BOMS = ((b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"))


_MEDIA_STARTS = (b"ID3", b"RIFF", b"RIFX", b"OggS", b"fLaC", b"\x1aE\xdf\xa3")  # MP3 tag, WAV, Ogg, FLAC, Matroska


def _looks_like_text(head: bytes) -> bool:
    """True when the first bytes are printable text (UTF-8, or UTF-8/16 after a byte-order mark)."""
    if head.startswith(_MEDIA_STARTS) or head[4:8] == b"ftyp":  # the start of a real (if cut) media file
        return False
    encoding = "utf-8"
    for bom, name in _TEXT_BOMS:
        if head.startswith(bom):
            head, encoding = head[len(bom) :], name
            break
    for cut in range(4):  # the read may have split the last character
        try:
            text = head[: len(head) - cut].decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        return False
    return bool(text.strip()) and all(char.isprintable() or char in "\t\n\r\f" for char in text)
