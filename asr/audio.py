"""Any audio or video input -> the one waveform the pipeline uses: mono float32 samples at 16 kHz.

Why it is built this way:

* **PyAV for everything.** Its wheels bundle FFmpeg, so phone recordings (m4a/aac), browser recordings
  (webm/opus), podcasts (mp3), and the first audio track of a video (mp4/mov/mkv) all decode without a
  system ``ffmpeg`` (whisper's ``load_audio`` shells out to one).
* **soundfile as a fast path** for WAV, FLAC and Ogg Vorbis, whose samples libsndfile hands over in large
  blocks instead of one Python round trip per packet. It is tried only when the first bytes say RIFF/WAVE,
  fLaC or OggS (so libsndfile never probes, or prints warnings about, an mp3 or an mp4), and only for codecs
  listed in ``_SOUNDFILE_CODECS``, which names them the way FFmpeg does, so both paths report the same
  ``SourceInfo``. Anything else, or anything libsndfile refuses, goes to PyAV.
* **One resampler for both paths.** Samples are made float and mono at the source rate first, then go
  through the same FFmpeg resampler (``av.AudioResampler(format="flt", layout="mono", rate=16000)``, flushed
  at the end), so a 44.1 kHz WAV gives the same samples whichever path read it. 16 kHz input is not resampled.
* **We average the channels ourselves.** Asked for ``layout="mono"``, FFmpeg downmixes stereo as
  ``0.707 * (L + R)`` (no normalisation for float output): 1.41 times (+3 dB) a signal present in both
  channels, with a different matrix for each layout. The plain average is predictable, keeps the level, and
  works for any channel count, including layouts with no named channels.
* **Bytes and file objects are decoded in memory** (``io.BytesIO`` or the object itself): the upload itself
  never touches the disk. Only the decoded samples of an input longer than ``SPILL_AFTER_S`` may go to disk,
  and only into the private folder the caller passes as ``spill_dir`` (``tempfiles.private_workdir``), under
  a generated name, removed when the run ends.
* **Damaged packets become silence, one packet at a time.** faster-whisper's ``_ignore_invalid_frames``
  wraps ``container.decode()``, but a generator that raised cannot resume, so that stops at the first bad
  packet. We demux and decode each packet ourselves; a packet FFmpeg rejects is replaced by silence of its
  length (so later speech keeps its timestamps) and counted, and we fail only if nothing decodes at all.
  Damage FFmpeg does not report as a bad packet is not covered: in an MP3 with overwritten bytes the parser
  resynchronises on the next frame header, the lost frames are simply missing, and later speech moves earlier.
* **Long inputs are refused early.** ``max_duration_s`` is checked against the length the container
  declares before anything is decoded, then against the samples as they arrive (browser recordings often
  declare no length).
* **Privacy.** The log gets counts and durations only: never a file name, a path or any content. Messages
  meant for the user travel in ``AudioDecodeError`` and may name the path the user gave us.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import os
import stat
import threading
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import av
import numpy as np
import soundfile as sf

from .errors import AudioDecodeError, OptionsError, TranscriptionCancelled
from .results import DecodedAudio, SourceInfo
from .tempfiles import private_workdir

__all__ = ["SAMPLE_RATE", "AudioSource", "decode_audio", "read_source_info"]

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16_000  # Hz; what Qwen3-ASR's feature extractor expects
SPILL_AFTER_S = 10 * 60  # decoded audio longer than this is kept on disk (memory-mapped) when allowed

AudioSource = str | os.PathLike | bytes | BinaryIO  # what decode_audio and read_source_info accept

_HEAD_BYTES = 4096  # first bytes kept to recognise the format; enough for text detection
_SOUNDFILE_BLOCK_FRAMES = 1 << 18  # frames per libsndfile read (~6 s at 44.1 kHz)
_RESAMPLE_GROUP_SAMPLES = 1 << 16  # decoded samples batched per resampler call (cf. faster-whisper _group_frames)

# (libsndfile format, subtype) -> FFmpeg's codec name; only these take the soundfile fast path.
_SOUNDFILE_CODECS = {
    **{
        (container, subtype): codec
        for container in ("WAV", "WAVEX")
        for subtype, codec in (
            ("PCM_U8", "pcm_u8"),
            ("PCM_16", "pcm_s16le"),
            ("PCM_24", "pcm_s24le"),
            ("PCM_32", "pcm_s32le"),
            ("FLOAT", "pcm_f32le"),
            ("DOUBLE", "pcm_f64le"),
        )
    },
    ("FLAC", "PCM_S8"): "flac",
    ("FLAC", "PCM_16"): "flac",
    ("FLAC", "PCM_24"): "flac",
    ("OGG", "VORBIS"): "vorbis",
}
_SOUNDFILE_CONTAINERS = {"WAV": "wav", "WAVEX": "wav", "FLAC": "flac", "OGG": "ogg"}  # -> FFmpeg's format name

# Integer sample formats and the divisor FFmpeg (and libsndfile) use to scale them to [-1, 1).
_INT_SCALE = {"s16": 2.0**15, "s32": 2.0**31, "s64": 2.0**63}

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

_FORMATS_HINT = "Choose a recording such as WAV, MP3, M4A, FLAC, OGG, OPUS or WEBM, or a video with sound."


def decode_audio(
    source: AudioSource,
    *,
    max_duration_s: float | None = None,
    spill_dir: Path | None = None,
    cancel: threading.Event | None = None,
) -> DecodedAudio:
    """Decode any audio, or the first audio track of a video, to mono float32 samples at 16 kHz.

    Args:
        source: A path; the file's bytes; or a binary file object (e.g. Streamlit's ``UploadedFile``),
            read from its current position, which is left as it was. Bytes and file objects are decoded
            in memory.
        max_duration_s: Refuse inputs longer than this many seconds; ``None`` for no limit. When the
            container declares its length, a longer input is refused before anything is decoded.
        spill_dir: A private folder (``tempfiles.private_workdir``) for the samples of inputs longer than
            ``SPILL_AFTER_S``, returned memory-mapped; it must outlive their use. ``None`` keeps all in RAM.
        cancel: when set from another thread, decoding stops at the next block (a long file takes seconds).

    Returns:
        The samples (1-D ``float32`` at ``SAMPLE_RATE``, channels averaged) and the facts of the source;
        ``source.duration_s`` is the length of the decoded samples.

    Raises:
        AudioDecodeError: The input is missing, a folder, unreadable, empty, not audio, a video without an
            audio track, damaged so that nothing decodes, holds no samples, or is longer than
            ``max_duration_s``. The message says which, and what to do.
        TranscriptionCancelled: ``cancel`` was set.
        OptionsError: ``max_duration_s`` is not a positive number.
        TypeError: ``source`` is none of the accepted types.
    """
    _check_max_duration(max_duration_s)
    with _prepared_source(source) as src:
        decoded = _decode_with_soundfile(src, max_duration_s, spill_dir, cancel)
        if decoded is None:
            decoded = _decode_with_pyav(src, max_duration_s, spill_dir, cancel)
    logger.debug(
        "Decoded %.2f s of audio (%s in %s, %d Hz, %d channel(s))",
        decoded.source.duration_s,
        decoded.source.codec,
        decoded.source.container,
        decoded.source.sample_rate,
        decoded.source.channels,
    )
    return decoded


@dataclass(frozen=True)
class AudioOverview:
    """What a page shows of an input before it is transcribed: its facts and a loudness envelope."""

    source: SourceInfo
    seconds: tuple[float, ...]  # the start of each envelope point
    levels: tuple[float, ...]  # the peak level (0-1) from there to the next point


def overview(source: AudioSource, *, points: int = 400) -> AudioOverview:
    """Facts and a `points`-point loudness envelope of `source`, in bounded memory.

    The samples of a long input are decoded into a private folder (memory-mapped, as `decode_audio` does
    with a ``spill_dir``) and read back point by point, so a two-hour upload never sits in RAM as samples;
    the folder is removed before this returns.

    Raises:
        AudioDecodeError: as `decode_audio`.
    """
    with private_workdir() as folder:
        decoded = decode_audio(source, spill_dir=folder)
        facts, samples = decoded.source, decoded.samples
        step = max(1, len(samples) // points)
        starts = range(0, len(samples), step)
        levels = tuple(float(np.abs(samples[start : start + step]).max()) for start in starts)
        del decoded, samples  # the memory map is closed before its folder is removed
    return AudioOverview(facts, tuple(round(start / SAMPLE_RATE, 2) for start in starts), levels)


def read_source_info(source: AudioSource) -> SourceInfo:
    """Describe an input without decoding all of it, for ``python -m asr info FILE``.

    When the container declares its length, only the first packets are decoded (to check that the audio
    really decodes and to learn its true sample rate and channel count) and ``duration_s`` is the declared
    length, which can differ from the decoded length by a few milliseconds. When it declares none, the whole
    input is decoded and ``duration_s`` is exact.

    Args:
        source: A path, the file's bytes, or a binary file object (see ``decode_audio``).

    Returns:
        The duration, source sample rate, channel count, codec and container names, and size in bytes.

    Raises:
        AudioDecodeError: For the same inputs as ``decode_audio`` (there is no length limit here).
        TypeError: ``source`` is none of the accepted types.
    """
    with _prepared_source(source) as src:
        info = _soundfile_info(src)
        if info is None:
            info = _pyav_info(src)
    return info


# --- the source: where to read from, how to name it, what we know before decoding -------------------------


@dataclass
class _Source:
    """A checked, non-empty input: a path or a seekable file object at its start, and a label for messages."""

    target: str | BinaryIO
    label: str  # the path the user gave, quoted, or "this file" for bytes; for messages, never for the log
    size_bytes: int | None
    head: bytes  # the first bytes, to recognise the format; never logged

    @property
    def subject(self) -> str:
        """The label at the start of a sentence."""
        return self.label[:1].upper() + self.label[1:]

    def rewound(self) -> str | BinaryIO:
        """The target, positioned at its start (each reader starts from the beginning)."""
        if not isinstance(self.target, str):
            self.target.seek(0)
        return self.target


@contextlib.contextmanager
def _prepared_source(source: AudioSource) -> Iterator[_Source]:
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


def _source_from_bytes(data: bytes, label: str = "this file") -> _Source:
    """An in-memory source."""
    if not data:
        raise AudioDecodeError(
            f"{label[:1].upper()}{label[1:]} is empty (0 bytes): there is no audio in it. {_FORMATS_HINT}"
        )
    return _Source(io.BytesIO(data), label, len(data), data[:_HEAD_BYTES])


def _source_from_path(path: str) -> _Source:
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
        raise AudioDecodeError(f"{label} is empty (0 bytes): there is no audio in it. {_FORMATS_HINT}")
    return _Source(path, label, info.st_size, head)


def _source_from_file_object(file: BinaryIO, start: int | None) -> _Source:
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
        raise AudioDecodeError(f"This file is empty (0 bytes): there is no audio in it. {_FORMATS_HINT}")
    return _Source(file, "this file", size, head)


def _position(file: BinaryIO) -> int | None:
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


def _check_max_duration(max_duration_s: float | None) -> None:
    """Reject a limit that is not a positive number of seconds."""
    valid = isinstance(max_duration_s, (int, float)) and not isinstance(max_duration_s, bool) and max_duration_s > 0
    if max_duration_s is not None and not valid:
        raise OptionsError(f"max_duration_s must be a positive number of seconds or None, got {max_duration_s!r}")


# --- soundfile fast path ------------------------------------------------------------------------------------


def _decode_with_soundfile(
    src: _Source, max_duration_s: float | None, spill_dir: Path | None, cancel: threading.Event | None
) -> DecodedAudio | None:
    """Decode WAV/FLAC/Ogg Vorbis with libsndfile; None when it does not fit (then PyAV decodes)."""
    sound_file = _open_soundfile(src)
    if sound_file is None:
        return None
    with sound_file:
        rate, declared = sound_file.samplerate, sound_file.frames
        if max_duration_s is not None and declared / rate > max_duration_s:
            raise _too_long_error(src, declared / rate, max_duration_s)
        try:
            samples = _collect(_resample_to_16k(_soundfile_blocks(sound_file)), max_duration_s, spill_dir, cancel)
        except sf.SoundFileError:  # libsndfile failed part way: FFmpeg may do better, and explains errors well
            logger.debug("libsndfile failed while reading; decoding with PyAV instead")
            return None
        if samples is None:  # resampling rounded a length right at the limit up past it
            raise _too_long_error(src, declared / rate, max_duration_s)
        if sound_file.tell() < declared:  # a read failed quietly (libsndfile cannot report a file object's errors)
            logger.debug("libsndfile read less than the declared length; decoding with PyAV instead")
            return None
        info = _soundfile_source_info(sound_file, src, len(samples) / SAMPLE_RATE)
    return DecodedAudio(samples, info)


def _soundfile_blocks(sound_file: sf.SoundFile) -> Iterator[tuple[np.ndarray, int]]:
    """Mono float32 blocks and their rate, read from libsndfile in large pieces."""
    while len(block := sound_file.read(_SOUNDFILE_BLOCK_FRAMES, dtype="float32", always_2d=True)):
        yield (block[:, 0] if sound_file.channels == 1 else _mix(block.T)), sound_file.samplerate


def _soundfile_info(src: _Source) -> SourceInfo | None:
    """The facts from libsndfile's header parse alone; None when it does not fit."""
    sound_file = _open_soundfile(src)
    if sound_file is None:
        return None
    with sound_file:
        return _soundfile_source_info(sound_file, src, sound_file.frames / sound_file.samplerate)


def _soundfile_source_info(sound_file: sf.SoundFile, src: _Source, duration_s: float) -> SourceInfo:
    """SourceInfo with FFmpeg's names for libsndfile's format and codec."""
    return SourceInfo(
        duration_s=duration_s,
        sample_rate=sound_file.samplerate,
        channels=sound_file.channels,
        codec=_SOUNDFILE_CODECS[(sound_file.format, sound_file.subtype)],
        container=_SOUNDFILE_CONTAINERS[sound_file.format],
        size_bytes=src.size_bytes,
    )


def _open_soundfile(src: _Source) -> sf.SoundFile | None:
    """Open with libsndfile when the input is a WAV/FLAC/Ogg file with a codec we map, else None."""
    head = src.head
    if not ((head[:4] in (b"RIFF", b"RIFX") and head[8:12] == b"WAVE") or head[:4] in (b"fLaC", b"OggS")):
        return None
    try:
        sound_file = sf.SoundFile(src.rewound())
    except (sf.SoundFileError, RuntimeError, TypeError, ValueError):  # not for libsndfile: let PyAV judge it
        logger.debug("libsndfile cannot open this input; decoding with PyAV instead")
        return None
    if (sound_file.format, sound_file.subtype) not in _SOUNDFILE_CODECS or sound_file.frames <= 0:
        sound_file.close()
        return None
    return sound_file


# --- PyAV path ----------------------------------------------------------------------------------------------


@dataclass
class _DecodeStats:
    """What happened while decoding one stream; filled in by ``_decoded_frames``."""

    invalid_packets: int = 0  # packets the decoder rejected and we skipped
    read_error: str | None = None  # why the demuxer stopped early (damaged or truncated container)
    decoded_frames: int = 0  # frames the decoder gave (the silence that replaces damaged packets not counted)
    sample_rate: int = 0  # of the first decoded frame
    channels: int = 0  # of the first decoded frame

    def note(self, frame: av.AudioFrame) -> None:
        """Count a decoded frame; the first one tells the source's real rate and channel count."""
        if not self.decoded_frames:
            self.sample_rate, self.channels = frame.sample_rate, frame.layout.nb_channels
        self.decoded_frames += 1


def _decode_with_pyav(
    src: _Source, max_duration_s: float | None, spill_dir: Path | None, cancel: threading.Event | None
) -> DecodedAudio:
    """Decode the first audio stream with FFmpeg."""
    container = _open_container(src)
    with container:
        stream = _first_audio_stream(container, src)
        declared = _declared_duration_s(container, stream)
        if max_duration_s is not None and declared is not None and declared > max_duration_s:
            raise _too_long_error(src, declared, max_duration_s)
        stats = _DecodeStats()
        frames = _decoded_frames(container, stream, stats)
        try:
            samples = _collect(_resample_to_16k(_downmixed(frames)), max_duration_s, spill_dir, cancel)
        except (av.FFmpegError, OSError) as e:  # from the resampler or a failing file object
            raise AudioDecodeError(
                f"Decoding {src.label} failed ({_reason(e)}). The file may be damaged; try exporting it again."
            ) from e
        finally:
            frames.close()
        if samples is None:
            assert max_duration_s is not None  # _collect gives None only when a limit was passed
            raise _too_long_error(src, _measure_stream_s(container, stream), max_duration_s)
        _log_damage(stats)
        if not stats.decoded_frames or not len(samples):
            raise _no_samples_error(src, stats)
        codec = _codec_name(stream)
        info = SourceInfo(
            len(samples) / SAMPLE_RATE, stats.sample_rate, stats.channels, codec, container.format.name, src.size_bytes
        )
    return DecodedAudio(samples, info)


def _pyav_info(src: _Source) -> SourceInfo:
    """The facts from the container, checked by decoding its first frame; a full decode if no length is declared."""
    container = _open_container(src)
    with container:
        stream = _first_audio_stream(container, src)
        declared = _declared_duration_s(container, stream)
        if declared is not None:
            stats = _DecodeStats()
            frames = _decoded_frames(container, stream, stats)
            try:
                for _ in frames:
                    if stats.decoded_frames:
                        break
            except OSError as e:
                raise AudioDecodeError(f"Cannot read {src.label} ({_reason(e)}).") from e
            finally:
                frames.close()
            if not stats.decoded_frames:
                raise _no_samples_error(src, stats)
            return SourceInfo(
                declared, stats.sample_rate, stats.channels, _codec_name(stream), container.format.name, src.size_bytes
            )
    return _decode_with_pyav(src, None, None, None).source


def _open_container(src: _Source) -> av.container.InputContainer:
    """Open the input with FFmpeg, or explain why it cannot be read."""
    target = src.rewound()
    if isinstance(target, str):  # FFmpeg reads "x:..." as protocol x (http:, concat:, ...); a path is a file
        target = "file:" + target
    try:
        return av.open(target, metadata_errors="ignore")
    except (av.FFmpegError, OSError) as e:
        kind = _recognise_non_media(src.head)
        if kind is not None:
            raise _not_audio_error(src, kind) from e
        raise AudioDecodeError(
            f"{src.subject} could not be read as audio or video ({_reason(e)}). It may be truncated or damaged, or "
            "not a media file at all. Try exporting or downloading it again, or convert it to WAV or MP3."
        ) from e


def _first_audio_stream(container: av.container.InputContainer, src: _Source) -> av.audio.stream.AudioStream:
    """The first audio stream, or an error that says what the input holds instead."""
    if container.streams.audio:
        stream = container.streams.audio[0]
        if stream.codec_context is None:
            raise AudioDecodeError(
                f"{src.subject} uses an audio codec this app cannot decode. Convert it to WAV or MP3 first."
            )
        return stream
    kind = _recognise_non_media(src.head) or _image_kind(container)
    if kind is None and container.streams.video:
        raise AudioDecodeError(
            f"{src.subject} has no audio track: it holds only video, so there is nothing to transcribe. "
            "Choose a video with sound, or the audio file itself."
        )
    raise _not_audio_error(src, kind)


def _declared_duration_s(container: av.container.InputContainer, stream: av.audio.stream.AudioStream) -> float | None:
    """The length the container declares for the stream (or for itself), if any; nothing is decoded."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration and container.duration > 0:
        return container.duration / av.time_base
    return None


def _decoded_frames(
    container: av.container.InputContainer, stream: av.audio.stream.AudioStream, stats: _DecodeStats
) -> Iterator[av.AudioFrame]:
    """Every frame FFmpeg can decode from the stream; a packet it rejects becomes silence of its length."""
    packets = container.demux(stream)  # ends with empty packets that flush the decoder
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            return
        except av.FFmpegError as e:  # the container is unreadable from here on, typically truncated
            stats.read_error = _reason(e)
            break
        try:
            frames = packet.decode()
        except MemoryError:
            raise
        except av.FFmpegError:  # InvalidDataError and kin: a damaged packet (codecs raise various types)
            stats.invalid_packets += 1
            yield from _silence_for(packet, stream, stats)
            continue
        for frame in frames:
            stats.note(frame)
            yield frame
    # The demuxer stopped early, so its flush packets never came: drain what the decoder still holds.
    try:
        frames = stream.codec_context.decode(None)
    except av.FFmpegError:
        stats.invalid_packets += 1
        return
    for frame in frames:
        stats.note(frame)
        yield frame


def _silence_for(packet: av.Packet, stream: av.audio.stream.AudioStream, stats: _DecodeStats) -> list[av.AudioFrame]:
    """Silence as long as a packet that would not decode, so later audio keeps its place on the timeline."""
    rate = stats.sample_rate or stream.codec_context.sample_rate
    if not (packet.duration and packet.time_base and rate):
        return []
    samples = round(packet.duration * packet.time_base * rate)
    if samples <= 0:
        return []
    frame = av.AudioFrame.from_ndarray(np.zeros((1, samples), dtype=np.float32), format="flt", layout="mono")
    frame.sample_rate = rate
    return [frame]


def _downmixed(frames: Iterable[av.AudioFrame]) -> Iterator[tuple[np.ndarray, int]]:
    """Mono float32 samples and their rate from decoded frames of any sample format and channel layout."""
    for frame in frames:
        data = frame.to_ndarray()
        channels = frame.layout.nb_channels
        if not frame.format.is_planar:  # interleaved: one row of samples * channels values
            data = data.reshape(-1, channels).T
        kind = frame.format.packed.name
        if kind == "u8":
            data = (data.astype(np.float32) - 128.0) / 128.0
        elif kind in _INT_SCALE:
            data = data.astype(np.float32) / np.float32(_INT_SCALE[kind])
        else:  # flt or dbl
            data = data.astype(np.float32, copy=False)
        yield (data[0] if channels == 1 else _mix(data)), frame.sample_rate


def _mix(channels: np.ndarray) -> np.ndarray:
    """The average of the channels (rows); the loudest channel alone when the average cancels out.

    A channel with reversed polarity (a miswired microphone, a stereo-widening effect) sounds fine on its
    own, but the average of +x and -x is silence: when the average keeps less than 1/100 of the channels'
    power (-20 dB), which natural recordings never do, the loudest channel is used instead.
    """
    mono = channels.mean(axis=0)
    power = np.mean(np.square(channels, dtype=np.float64), axis=1)
    if power.max() > 1e-8 and np.mean(np.square(mono, dtype=np.float64)) < 0.01 * power.mean():
        return channels[int(np.argmax(power))]
    return mono


def _measure_stream_s(container: av.container.InputContainer, stream: av.audio.stream.AudioStream) -> float | None:
    """The stream's length from the timestamps of its remaining packets, which are read but not decoded."""
    end = None
    try:
        for packet in container.demux(stream):
            if packet.pts is not None and packet.duration:
                end = max(end or 0, packet.pts + packet.duration)
    except av.FFmpegError:  # only the length in the message becomes vaguer; the refusal stands
        logger.debug("Could not read to the end of the stream to measure it")
    if end is None or not stream.time_base:
        return None
    return float((end - (stream.start_time or 0)) * stream.time_base)


def _codec_name(stream: av.audio.stream.AudioStream) -> str:
    """FFmpeg's codec name ("mp3"), not its decoder's ("mp3float")."""
    return stream.codec_context.codec.canonical_name


def _image_kind(container: av.container.InputContainer) -> str | None:
    """Describe inputs that FFmpeg opens as a picture or as text art (it can, but they hold no sound)."""
    name = container.format.name
    if name.endswith("_pipe") or name == "image2":
        return "an image"
    if name == "tty":
        return "a text file"
    return None


def _log_damage(stats: _DecodeStats) -> None:
    """Warn (with counts only) when packets were skipped or the input ended in damage."""
    if stats.invalid_packets:
        logger.warning("Replaced %d damaged audio packet(s) with silence", stats.invalid_packets)
    if stats.read_error is not None:
        logger.warning("Stopped reading early (%s): the input is probably truncated or damaged", stats.read_error)


# --- shared: resampling, collecting, messages ----------------------------------------------------------------


def _resample_to_16k(blocks: Iterable[tuple[np.ndarray, int]]) -> Iterator[np.ndarray]:
    """Mono float32 samples at 16 kHz from mono float32 blocks at their own rate (FFmpeg's resampler)."""
    resampler: av.AudioResampler | None = None
    rate = 0
    pending: list[np.ndarray] = []
    pending_samples = 0
    position = 0  # samples already given to the resampler at this rate, for contiguous timestamps

    def push(samples: np.ndarray | None) -> list[np.ndarray]:
        nonlocal position
        frame = None
        if samples is not None:
            frame = av.AudioFrame.from_ndarray(samples[np.newaxis, :], format="flt", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = rate, position, Fraction(1, rate)
            position += len(samples)
        return [out.to_ndarray().reshape(-1) for out in resampler.resample(frame)]

    for samples, block_rate in blocks:
        if not np.isfinite(samples).all():  # a broken float file: NaN or inf would poison VAD and the model
            bad = ~np.isfinite(samples)
            logger.warning("Replaced %d NaN or infinite sample(s) with silence", int(bad.sum()))
            samples = np.where(bad, np.float32(0), samples)
        if block_rate != rate:  # the first block, or a stream that changes rate part way
            if pending:
                yield from push(np.concatenate(pending))
            if resampler is not None:
                yield from push(None)
            rate, position, pending, pending_samples = block_rate, 0, [], 0
            resampler = (
                None if rate == SAMPLE_RATE else av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
            )
        if resampler is None:
            yield samples
            continue
        pending.append(samples)
        pending_samples += len(samples)
        if pending_samples >= _RESAMPLE_GROUP_SAMPLES:
            yield from push(np.concatenate(pending))
            pending, pending_samples = [], 0
    if resampler is not None:
        if pending:
            yield from push(np.concatenate(pending))
        yield from push(None)  # flush: the resampler holds back the last few samples


def _collect(
    blocks: Iterable[np.ndarray],
    max_duration_s: float | None,
    spill_dir: Path | None,
    cancel: threading.Event | None,
) -> np.ndarray | None:
    """All blocks as one float32 array, or None as soon as they pass ``max_duration_s``.

    Past ``SPILL_AFTER_S`` the samples go to a file in ``spill_dir`` and come back memory-mapped, so a
    three-hour recording costs disk pages the OS can drop, not 700 MB of RAM held for the whole run.
    """
    limit = math.inf if max_duration_s is None else max_duration_s * SAMPLE_RATE
    parts: list[np.ndarray] = []
    total = 0
    spill: BinaryIO | None = None
    try:
        for block in blocks:
            if cancel is not None and cancel.is_set():
                raise TranscriptionCancelled("Transcription cancelled while decoding the audio.")
            total += len(block)
            if total > limit:
                return None
            if spill is None and spill_dir is not None and total > SPILL_AFTER_S * SAMPLE_RATE:
                spill = open(spill_dir / f"{uuid.uuid4().hex}.f32", "wb")  # noqa: SIM115 (closed in finally)
                for part in parts:
                    spill.write(part.astype(np.float32, copy=False).tobytes())
                parts = []
            if spill is not None:
                spill.write(block.astype(np.float32, copy=False).tobytes())
            else:
                parts.append(block)
        if spill is not None:
            spill.close()
            return np.memmap(
                spill.name, dtype=np.float32, mode="c"
            )  # copy-on-write: writable for torch, file untouched
    finally:
        if spill is not None:
            spill.close()
    if not parts:
        return np.zeros(0, dtype=np.float32)
    return np.concatenate(parts).astype(np.float32, copy=False)


def _too_long_error(src: _Source, length_s: float | None, max_duration_s: float) -> AudioDecodeError:
    """The message for an input over the length limit, with both lengths."""
    limit = f"the limit of {_format_duration(max_duration_s)} (max_duration_s={max_duration_s:g})"
    # length_s is None when the stream declares no length and its packets carry no timestamps
    length = f"longer than {limit}" if length_s is None else f"{_format_duration(length_s)} long, more than {limit}"
    return AudioDecodeError(f"{src.subject} is {length}. Split it into shorter parts or raise the limit.")


def _no_samples_error(src: _Source, stats: _DecodeStats) -> AudioDecodeError:
    """The message for an input that opened but gave no samples."""
    kind = _recognise_non_media(src.head)
    if kind is not None:
        return _not_audio_error(src, kind)
    if stats.invalid_packets or stats.read_error is not None:
        damage = f"{stats.invalid_packets} damaged packet(s)" if stats.invalid_packets else stats.read_error
        return AudioDecodeError(
            f"No audio could be decoded from {src.label} ({damage}): it is probably truncated or damaged. "
            "Try exporting or downloading it again."
        )
    return AudioDecodeError(
        f"{src.subject} contains no audio samples (0 seconds of sound): the recording is empty or was cut off "
        "before any audio. Record or export it again."
    )


def _not_audio_error(src: _Source, kind: str | None) -> AudioDecodeError:
    """The message for an input that is not audio at all."""
    looks = f" (it looks like {kind})" if kind else ""
    return AudioDecodeError(f"{src.subject} is not an audio or video file{looks}. {_FORMATS_HINT}")


def _recognise_non_media(head: bytes) -> str | None:
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


def _reason(error: BaseException) -> str:
    """FFmpeg's or the OS's own words for an error, without the file name that ``str(error)`` appends."""
    return getattr(error, "strerror", None) or str(error) or type(error).__name__


def _format_duration(seconds: float) -> str:
    """Seconds as "42.5 s" or "1:02:03"."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"
