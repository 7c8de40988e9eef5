"""Bad and unusual inputs for tests/test_corpus.py, made on the spot (nothing is stored in the repo).

Everything starts from espeak-ng speech (testbed/speech.py), numpy noise or plain bytes, and is written with
soundfile (WAV, FLAC, AIFF), PyAV's encoders (MP3, AAC, Opus, mu-law, video) or byte surgery on the result.
The makers return bytes; the test writes them under whatever file name the case needs.
"""

from __future__ import annotations

import dataclasses
import fractions
import functools
import io
import struct
import tempfile
import zipfile
from pathlib import Path

import av
import numpy as np
import soundfile as sf

from asr.audio import SAMPLE_RATE
from testbed.speech import SENTENCES, silence, speak


@functools.cache
def clip() -> np.ndarray:
    """About 3.7 s of speech, mono float32 at 16 kHz, with 0.25 s of silence at each end (as ``speech_16k``)."""
    return np.concatenate([silence(0.25), speak(SENTENCES[0]), silence(0.25)])


def seconds(samples: np.ndarray, rate: int = SAMPLE_RATE) -> float:
    return samples.shape[-1] / rate


def trimmed(samples: np.ndarray, floor: float = 1e-3) -> np.ndarray:
    """The samples without the silence espeak-ng leaves before and after a sentence."""
    loud = np.flatnonzero(np.abs(samples) > floor)
    return samples[loud[0] : loud[-1] + 1]


def nonstop_speech(min_seconds: float) -> np.ndarray:
    """Sentences back to back with the silence around each one cut off, repeated to at least ``min_seconds``."""
    sentences = [trimmed(speak(sentence, speed_wpm=190)) for sentence in SENTENCES]
    parts: list[np.ndarray] = []
    while sum(map(len, parts)) < min_seconds * SAMPLE_RATE:
        parts.extend(sentences)
    return np.concatenate(parts)


def white_noise(duration_s: float, level: float = 1.0, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-level, level, round(duration_s * SAMPLE_RATE)).astype(np.float32)


def telephone_band(samples: np.ndarray, low_hz: float = 300.0, high_hz: float = 3400.0) -> np.ndarray:
    """The samples band-limited like a phone line (an ideal FFT band-pass)."""
    spectrum = np.fft.rfft(samples)
    freqs = np.fft.rfftfreq(len(samples), 1 / SAMPLE_RATE)
    spectrum[(freqs < low_hz) | (freqs > high_hz)] = 0
    return np.fft.irfft(spectrum, len(samples)).astype(np.float32)


# --- writers ------------------------------------------------------------------------------------------------


def soundfile_bytes(
    samples: np.ndarray, *, rate: int = SAMPLE_RATE, format: str = "WAV", subtype: str = "PCM_16", endian: str = "FILE"
) -> bytes:
    """Samples at 16 kHz, shaped (n,) or (n, channels), resampled to ``rate`` and written by libsndfile."""
    data = samples if rate == SAMPLE_RATE else resample(samples, rate)
    buffer = io.BytesIO()
    sf.write(buffer, data, rate, format=format, subtype=subtype, endian=endian)
    return buffer.getvalue()


def resample(samples: np.ndarray, rate: int) -> np.ndarray:
    """16 kHz samples, shaped (n,) or (n, channels), at another rate (linear interpolation is enough here)."""
    n = samples.shape[0]
    positions = np.arange(round(n * rate / SAMPLE_RATE)) * SAMPLE_RATE / rate
    if samples.ndim == 1:
        return np.interp(positions, np.arange(n), samples).astype(np.float32)
    return np.stack([resample(samples[:, c], rate) for c in range(samples.shape[1])], axis=1)


@dataclasses.dataclass(frozen=True)
class Track:
    """One audio stream to encode: planes of 16 kHz samples, shaped (channels, n), and how to encode them."""

    planes: np.ndarray
    codec: str
    rate: int = SAMPLE_RATE
    options: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def layout(self) -> str:
        return {1: "mono", 2: "stereo", 6: "5.1"}[self.planes.shape[0]]


def pyav_bytes(container_format: str, tracks: list[Track], *, video_s: float | None = None, **open_options) -> bytes:
    """Encode audio tracks (and a tiny black video stream first, if asked) with PyAV into one file.

    MP4 needs a seekable output with a name, so everything goes through a temporary file.
    """
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"out.{container_format}"
        with av.open(str(path), "w", format=container_format, **open_options) as output:
            video = _add_video(output) if video_s is not None else None
            streams = []
            for track in tracks:
                stream = output.add_stream(track.codec, rate=track.rate, options=dict(track.options))
                stream.layout = track.layout
                streams.append(stream)
            if video is not None and video_s is not None:
                _write_video(output, video, video_s)
            for track, stream in zip(tracks, streams, strict=True):
                _write_audio(output, stream, track)
        return path.read_bytes()


def _write_audio(output: av.container.OutputContainer, stream: av.audio.stream.AudioStream, track: Track) -> None:
    context = stream.codec_context
    resampler = av.AudioResampler(
        format=context.format.name, layout=track.layout, rate=track.rate, frame_size=context.frame_size or 1024
    )
    frame = av.AudioFrame.from_ndarray(
        np.ascontiguousarray(track.planes, dtype=np.float32), format="fltp", layout=track.layout
    )
    frame.sample_rate, frame.pts, frame.time_base = SAMPLE_RATE, 0, fractions.Fraction(1, SAMPLE_RATE)
    for piece in [*resampler.resample(frame), *resampler.resample(None)]:
        output.mux(stream.encode(piece))
    output.mux(stream.encode(None))


def _add_video(output: av.container.OutputContainer) -> av.video.stream.VideoStream:
    stream = output.add_stream("mpeg4", rate=10)
    stream.width = stream.height = 32
    stream.pix_fmt = "yuv420p"
    return stream


def _write_video(output: av.container.OutputContainer, stream: av.video.stream.VideoStream, duration_s: float) -> None:
    """A 32x32 black picture at 10 fps for ``duration_s``."""
    for index in range(round(duration_s * 10)):
        frame = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), dtype=np.uint8), format="rgb24")
        frame.pts = index
        output.mux(stream.encode(frame))
    output.mux(stream.encode(None))


def mono(samples: np.ndarray, codec: str, rate: int = SAMPLE_RATE, **options: str) -> Track:
    return Track(samples[np.newaxis, :], codec, rate, options)


# --- files that are not audio -------------------------------------------------------------------------------


def png() -> bytes:
    """A real 16x16 PNG image, written by FFmpeg's PNG encoder."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="image2pipe") as output:
        stream = output.add_stream("png", rate=1)
        stream.width = stream.height = 16
        stream.pix_fmt = "rgb24"
        frame = av.VideoFrame.from_ndarray(np.full((16, 16, 3), 200, dtype=np.uint8), format="rgb24")
        output.mux(stream.encode(frame))
        output.mux(stream.encode(None))
    return buffer.getvalue()


def pdf() -> bytes:
    return b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


def zip_archive() -> bytes:
    """A ZIP holding a WAV, as a mail client saves 'recording.zip'."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("recording.wav", soundfile_bytes(clip()))
    return buffer.getvalue()


def text() -> bytes:
    return ("Meeting notes, 3rd quarter: not a recording.\n" * 40).encode()


def html_error_page() -> bytes:
    """What a failed download often saves under the audio file's name."""
    return b"<!DOCTYPE html>\n<html><head><title>403 Forbidden</title></head>\n<body>Access denied</body></html>\n"


def text_with_bom(encoding: str) -> bytes:
    """Notes as Windows tools save them: "utf-8-sig" (Notepad's UTF-8), "utf-16" (PowerShell 5's ``>``)."""
    return ("Meeting notes, 3rd quarter: not a recording.\r\n" * 40).encode(encoding)


def random_bytes(size: int = 64 * 1024, seed: int = 1) -> bytes:
    return np.random.default_rng(seed).bytes(size)


# --- byte surgery -------------------------------------------------------------------------------------------


def truncated(data: bytes, fraction: float = 0.5) -> bytes:
    """The first ``fraction`` of the file, as an interrupted copy or download leaves it."""
    return data[: round(len(data) * fraction)]


def overwritten(data: bytes, start: float, stop: float, seed: int = 2) -> bytes:
    """The bytes between two fractions of the file replaced by noise (a damaged disk sector, a bad transfer)."""
    damaged = bytearray(data)
    begin, end = round(len(data) * start), round(len(data) * stop)
    damaged[begin:end] = np.random.default_rng(seed).bytes(end - begin)
    return bytes(damaged)


def _chunk_offset(wav: bytes, chunk_id: bytes) -> int:
    """Where a RIFF chunk's payload starts (after its id and size)."""
    position = 12
    while position + 8 <= len(wav):
        size = struct.unpack_from("<I", wav, position + 4)[0]
        if wav[position : position + 4] == chunk_id:
            return position + 8
        position += 8 + size + (size & 1)
    raise ValueError(f"no {chunk_id!r} chunk")


def wav_with_fields(
    wav: bytes,
    *,
    sample_rate: int | None = None,
    data_size: int | None = None,
    riff_size: int | None = None,
    channels: int | None = None,
) -> bytes:
    """A WAV whose header fields say something else than its data (the data itself is unchanged)."""
    patched = bytearray(wav)
    fmt = _chunk_offset(wav, b"fmt ")
    if channels is not None:
        struct.pack_into("<H", patched, fmt + 2, channels)
    if sample_rate is not None:
        old_rate, byte_rate = struct.unpack_from("<II", wav, fmt + 4)
        struct.pack_into("<II", patched, fmt + 4, sample_rate, byte_rate * sample_rate // old_rate)
    if data_size is not None:
        struct.pack_into("<I", patched, _chunk_offset(wav, b"data") - 4, data_size)
    if riff_size is not None:
        struct.pack_into("<I", patched, 4, riff_size)
    return bytes(patched)


def wav_data_size(wav: bytes) -> int:
    return struct.unpack_from("<I", wav, _chunk_offset(wav, b"data") - 4)[0]


def wav_with_list_chunk(wav: bytes) -> bytes:
    """A WAV with an odd-sized LIST/INFO chunk (and its pad byte, as RIFF wants) between 'fmt ' and 'data'."""
    data = _chunk_offset(wav, b"data") - 8
    info = b"INFO" + b"INAM" + struct.pack("<I", 9) + b"Meeting!\x00"  # 21 bytes: odd
    extra = b"LIST" + struct.pack("<I", len(info)) + info + b"\x00"
    patched = wav[:data] + extra + wav[data:]
    return patched[:4] + struct.pack("<I", len(patched) - 8) + patched[8:]


def sparse_silent_wav(path: Path, duration_s: float, rate: int = SAMPLE_RATE) -> Path:
    """A real 16-bit mono WAV of digital silence, written as a sparse file (no disk space, no encoding time)."""
    data_bytes = round(duration_s * rate) * 2
    header = b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVEfmt "
    header += struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16) + b"data" + struct.pack("<I", data_bytes)
    with open(path, "wb") as file:
        file.write(header)
        file.truncate(len(header) + data_bytes)
    return path
