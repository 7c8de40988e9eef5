"""asr.audio on real files: espeak-ng speech encoded with PyAV's own encoders, decoded back and compared."""

from __future__ import annotations

import io
import logging
import math
import mmap
import os
import re
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
import soundfile as sf

from asr import audio
from asr.audio import SAMPLE_RATE, decode_audio, decoder, libsndfile, pyav, read_source_info
from asr.errors import AudioDecodeError, OptionsError
from asr.results import SourceInfo
from testbed import corpus

MP4 = "mov,mp4,m4a,3gp,3g2,mj2"
MKV = "matroska,webm"


@dataclass(frozen=True)
class Spec:
    """One file to encode, and what decoding it must report."""

    file_name: str
    format: str  # PyAV/FFmpeg muxer
    encoder: str
    codec: str  # FFmpeg's codec name that SourceInfo must show
    container: str  # FFmpeg's demuxer name that SourceInfo must show
    rate: int = SAMPLE_RATE
    channels: int = 1
    sample_format: str | None = None
    lossless: bool = True
    video: bool = False
    decoded_rate: int | None = None  # when the decoder's rate is not the encoder's (opus is always 48 kHz)
    codec_options: tuple[tuple[str, str], ...] = ()

    def __str__(self) -> str:
        return self.file_name

    def make(self, encode_speech) -> Path:
        """Encode the speech to this spec (once per session)."""
        return encode_speech(
            self.file_name,
            format=self.format,
            codec=self.encoder,
            rate=self.rate,
            channels=self.channels,
            sample_format=self.sample_format,
            codec_options=dict(self.codec_options) or None,
            video=self.video,
        )


def _wav(file_name: str, encoder: str, sample_format: str, rate: int = SAMPLE_RATE, channels: int = 1) -> Spec:
    """A WAV spec; the codec name is the encoder's."""
    return Spec(file_name, "wav", encoder, encoder, "wav", rate, channels, sample_format)


WAV_S16 = _wav("s16.wav", "pcm_s16le", "s16")
WAV_U8 = _wav("u8.wav", "pcm_u8", "u8")
WAV_S24 = _wav("s24.wav", "pcm_s24le", "s32")
WAV_S32 = _wav("s32.wav", "pcm_s32le", "s32")
WAV_F32 = _wav("f32.wav", "pcm_f32le", "flt")
WAV_F64 = _wav("f64.wav", "pcm_f64le", "dbl")
WAV_F32_STEREO = _wav("f32-stereo.wav", "pcm_f32le", "flt", channels=2)
WAV_8K = _wav("s16-8k.wav", "pcm_s16le", "s16", rate=8_000)
WAV_44K_STEREO = _wav("s16-44k-stereo.wav", "pcm_s16le", "s16", rate=44_100, channels=2)
WAV_48K = _wav("s16-48k.wav", "pcm_s16le", "s16", rate=48_000)
FLAC = Spec("speech.flac", "flac", "flac", "flac", "flac")
FLAC_44K_STEREO = Spec("stereo-44k.flac", "flac", "flac", "flac", "flac", 44_100, 2)
MP3 = Spec("speech.mp3", "mp3", "libmp3lame", "mp3", "mp3", 44_100, 2, lossless=False)
MP3_16K = Spec("speech-16k.mp3", "mp3", "libmp3lame", "mp3", "mp3", lossless=False)
# FFmpeg's own Vorbis encoder is "experimental" and handles stereo only.
VORBIS = Spec(
    "speech.ogg", "ogg", "vorbis", "vorbis", "ogg", 44_100, 2, lossless=False, codec_options=(("strict", "-2"),)
)
OPUS_OGG = Spec("speech.opus", "ogg", "libopus", "opus", "ogg", 48_000, lossless=False)
OPUS_WEBM = Spec("speech.webm", "webm", "libopus", "opus", MKV, 48_000, lossless=False)
OPUS_WEBM_16K = Spec("speech-16k.webm", "webm", "libopus", "opus", MKV, lossless=False, decoded_rate=48_000)
AAC_M4A = Spec("speech.m4a", "ipod", "aac", "aac", MP4, 44_100, lossless=False)
AAC_M4A_STEREO_48K = Spec("stereo-48k.m4a", "ipod", "aac", "aac", MP4, 48_000, 2, lossless=False)
MP4_VIDEO = Spec("video.mp4", "mp4", "aac", "aac", MP4, 44_100, lossless=False, video=True)
MOV_VIDEO = Spec("video.mov", "mov", "pcm_s16le", "pcm_s16le", MP4, 48_000, 2, video=True)
MKV_VIDEO = Spec("video.mkv", "matroska", "flac", "flac", MKV, 48_000, 2, video=True)
MKV_VIDEO_OPUS = Spec("video-opus.mkv", "matroska", "libopus", "opus", MKV, 48_000, 2, lossless=False, video=True)

ALL_SPECS = [
    WAV_S16,
    WAV_U8,
    WAV_S24,
    WAV_S32,
    WAV_F32,
    WAV_F64,
    WAV_F32_STEREO,
    WAV_8K,
    WAV_44K_STEREO,
    WAV_48K,
    FLAC,
    FLAC_44K_STEREO,
    MP3,
    MP3_16K,
    VORBIS,
    OPUS_OGG,
    OPUS_WEBM,
    OPUS_WEBM_16K,
    AAC_M4A,
    AAC_M4A_STEREO_48K,
    MP4_VIDEO,
    MOV_VIDEO,
    MKV_VIDEO,
    MKV_VIDEO_OPUS,
]
SOUNDFILE_SPECS = [WAV_S16, WAV_U8, WAV_S24, WAV_S32, WAV_F32, WAV_F64, WAV_F32_STEREO, WAV_44K_STEREO, FLAC]
SOUNDFILE_SPECS += [FLAC_44K_STEREO, VORBIS]


# --- helpers -----------------------------------------------------------------------------------------------


def _gain(spec: Spec) -> float:
    """What an average downmix makes of the reference: stereo files hold speech at 1.0 and 0.5."""
    return 0.75 if spec.channels == 2 else 1.0


def _envelope(samples: np.ndarray, window: int = 160) -> np.ndarray:
    """Mean absolute amplitude per 10 ms."""
    usable = len(samples) // window * window
    return np.abs(samples[:usable]).reshape(-1, window).mean(axis=1)


def _envelope_correlation(decoded: np.ndarray, reference: np.ndarray, max_lag: int = 5) -> float:
    """Best Pearson correlation of the 10 ms envelopes over lags of up to +-50 ms (codec delay)."""
    a, b = _envelope(decoded), _envelope(reference)
    best = -1.0
    for lag in range(-max_lag, max_lag + 1):
        x, y = (a[lag:], b) if lag >= 0 else (a, b[-lag:])
        n = min(len(x), len(y))
        best = max(best, float(np.corrcoef(x[:n], y[:n])[0, 1]))
    return best


def _waveform_correlation(decoded: np.ndarray, reference: np.ndarray) -> float:
    """Pearson correlation of the samples, aligned at the start."""
    n = min(len(decoded), len(reference))
    return float(np.corrcoef(decoded[:n], reference[:n])[0, 1])


def _rms(samples: np.ndarray) -> float:
    """Root mean square level."""
    return float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))


def _without_soundfile(monkeypatch: pytest.MonkeyPatch) -> None:
    """Send every input down the PyAV path."""
    monkeypatch.setattr(libsndfile, "_SOUNDFILE_CODECS", {})


def _fail(message: str):
    """A stand-in for a function that must not be called."""

    def fail(*args, **kwargs):
        raise AssertionError(message)

    return fail


class _NonSeekable(io.RawIOBase):
    """A read-only stream that cannot seek, like a pipe or a network response."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        chunk = self._data.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)


def _webm_without_duration(samples: np.ndarray) -> bytes:
    """Opus in WebM written to a non-seekable stream, so it declares no length (like browser recordings)."""
    sink = io.BytesIO()

    class Sink(io.RawIOBase):
        def writable(self) -> bool:
            return True

        def write(self, data) -> int:
            return sink.write(bytes(data))

    with av.open(Sink(), "w", format="webm") as output:
        stream = output.add_stream("libopus", rate=48_000)
        stream.layout = "mono"
        context = stream.codec_context
        resampler = av.AudioResampler(format=context.format.name, layout="mono", rate=48_000, frame_size=960)
        frame = av.AudioFrame.from_ndarray(samples[np.newaxis, :], format="flt", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = SAMPLE_RATE, 0, Fraction(1, SAMPLE_RATE)
        for piece in [*resampler.resample(frame), *resampler.resample(None)]:
            output.mux(stream.encode(piece))
        output.mux(stream.encode(None))
    return sink.getvalue()


# --- every format decodes to the same speech ---------------------------------------------------------------


@pytest.mark.parametrize("spec", ALL_SPECS, ids=str)
def test_decodes_format_to_mono_16k_speech(spec: Spec, encode_speech, speech_16k: np.ndarray) -> None:
    path = spec.make(encode_speech)

    decoded = decode_audio(path)

    samples, reference = decoded.samples, _gain(spec) * speech_16k
    assert samples.dtype == np.float32
    assert samples.ndim == 1
    assert decoded.source == SourceInfo(
        duration_s=len(samples) / SAMPLE_RATE,
        sample_rate=spec.decoded_rate or spec.rate,
        channels=spec.channels,
        codec=spec.codec,
        container=spec.container,
        size_bytes=path.stat().st_size,
    )
    # Lossless formats keep every sample (give or take one from resampling twice); lossy codecs may add a
    # little priming or padding (AAC: up to 1024 samples at the source rate).
    if spec.lossless:
        assert abs(len(samples) - len(speech_16k)) <= 1
    else:
        assert decoded.source.duration_s == pytest.approx(len(speech_16k) / SAMPLE_RATE, abs=0.03)
    assert _envelope_correlation(samples, reference) > (0.99 if spec.lossless else 0.98)
    assert _waveform_correlation(samples, reference) > (0.98 if spec.lossless else 0.95)
    # The level checks the downmix too: stereo gives 0.75 of the reference (FFmpeg's "mono" would give 1.06).
    assert _rms(samples) == pytest.approx(_rms(reference), rel=0.02 if spec.lossless else 0.08)


@pytest.mark.parametrize(
    ("spec", "tolerance"),
    [(WAV_S16, 2**-15), (WAV_U8, 2**-7), (WAV_S24, 2**-23), (WAV_S32, 2**-24), (WAV_F32, 0), (WAV_F64, 2**-24)],
    ids=str,
)
def test_pcm_at_16k_is_the_reference_up_to_quantisation(spec: Spec, tolerance: float, encode_speech, speech_16k):
    decoded = decode_audio(spec.make(encode_speech))

    assert len(decoded.samples) == len(speech_16k)
    np.testing.assert_allclose(decoded.samples, speech_16k, rtol=0, atol=tolerance + 1e-7)


@pytest.mark.parametrize("soundfile", [True, False], ids=["soundfile", "pyav"])
def test_channels_are_averaged_not_ffmpeg_downmixed(soundfile: bool, monkeypatch, encode_speech, speech_16k):
    if not soundfile:
        _without_soundfile(monkeypatch)
    decoded = decode_audio(WAV_F32_STEREO.make(encode_speech))

    # (1.0 * x + 0.5 * x) / 2; FFmpeg's "mono" layout would give 0.707 * 1.5 * x.
    np.testing.assert_allclose(decoded.samples, 0.75 * speech_16k, rtol=0, atol=1e-6)


def test_many_channels_are_averaged(tmp_path: Path, speech_16k: np.ndarray, monkeypatch) -> None:
    gains = np.array([1.0, 0.5, 0.0, -0.25, 0.25, 0.5], dtype=np.float32)  # 5.1 in libsndfile's WAVEX
    path = tmp_path / "six.wav"
    sf.write(path, speech_16k[:, np.newaxis] * gains, SAMPLE_RATE, subtype="FLOAT")

    fast = decode_audio(path)
    _without_soundfile(monkeypatch)
    slow = decode_audio(path)

    for decoded in (fast, slow):
        assert decoded.source.channels == 6
        np.testing.assert_allclose(decoded.samples, speech_16k * gains.mean(), rtol=0, atol=1e-6)


# --- the soundfile fast path and PyAV agree ----------------------------------------------------------------


@pytest.mark.parametrize("spec", SOUNDFILE_SPECS, ids=str)
def test_soundfile_and_pyav_paths_agree(spec: Spec, encode_speech, monkeypatch) -> None:
    path = spec.make(encode_speech)
    with monkeypatch.context() as patch:
        patch.setattr(decoder, "decode_with_pyav", _fail("the soundfile path should have decoded this"))
        fast = decode_audio(path)
    _without_soundfile(monkeypatch)
    slow = decode_audio(path)

    assert fast.source == slow.source
    assert len(fast.samples) == len(slow.samples)
    np.testing.assert_allclose(fast.samples, slow.samples, rtol=0, atol=1e-6)


# --- path, bytes and file objects --------------------------------------------------------------------------


@pytest.mark.parametrize("spec", [WAV_S16, FLAC_44K_STEREO, MP3, VORBIS, OPUS_WEBM, AAC_M4A, MP4_VIDEO], ids=str)
def test_path_bytes_and_file_objects_give_the_same_audio(spec: Spec, encode_speech) -> None:
    path = spec.make(encode_speech)
    data = path.read_bytes()

    with open(path, "rb") as opened:
        from_open_file = decode_audio(opened)
    results = {
        "Path": decode_audio(path),
        "str": decode_audio(str(path)),
        "bytes": decode_audio(data),
        "bytearray": decode_audio(bytearray(data)),
        "BytesIO": decode_audio(io.BytesIO(data)),
        "open file": from_open_file,
        "non-seekable": decode_audio(_NonSeekable(data)),
    }

    expected = results["Path"]
    for name, decoded in results.items():
        assert decoded.source == expected.source, name
        np.testing.assert_array_equal(decoded.samples, expected.samples, err_msg=name)


def test_caller_keeps_its_file_object_open_and_in_place(encode_speech) -> None:
    with open(MP3.make(encode_speech), "rb") as opened:
        info = read_source_info(opened)
        decoded = decode_audio(opened)  # e.g. the app shows the facts first, then transcribes

        assert not opened.closed
        assert opened.tell() == 0
    assert decoded.source.codec == info.codec == "mp3"


@pytest.mark.parametrize("file_name", ["clip:1.mp3", "concat:speech.mp3", "http:x.mp3"])
def test_path_is_always_a_local_file(file_name: str, tmp_path: Path, encode_speech, monkeypatch) -> None:
    """FFmpeg would read "name:..." as a protocol; the path must still name a plain file."""
    (tmp_path / file_name).write_bytes(MP3.make(encode_speech).read_bytes())
    monkeypatch.chdir(tmp_path)

    assert decode_audio(file_name).source.codec == "mp3"


def test_file_object_is_read_from_its_current_position(encode_speech) -> None:
    data = WAV_S16.make(encode_speech).read_bytes()
    buffer = io.BytesIO(b"junk before the audio" + data)
    buffer.seek(len(b"junk before the audio"))

    decoded = decode_audio(buffer)

    np.testing.assert_array_equal(decoded.samples, decode_audio(data).samples)
    assert buffer.tell() == len(b"junk before the audio")


# --- bad inputs: one precise AudioDecodeError each ---------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-recording.wav"
    with pytest.raises(AudioDecodeError, match=r"^File not found: .*no-such-recording\.wav") as caught:
        decode_audio(missing)
    assert isinstance(caught.value.__cause__, FileNotFoundError)
    with pytest.raises(AudioDecodeError, match="File not found"):
        read_source_info(missing)


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(AudioDecodeError, match="is a folder, not a file"):
        decode_audio(tmp_path)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root can read any file")
def test_unreadable_file(tmp_path: Path, encode_speech) -> None:
    path = tmp_path / "locked.wav"
    path.write_bytes(WAV_S16.make(encode_speech).read_bytes())
    path.chmod(0)
    with pytest.raises(AudioDecodeError, match="permission denied"):
        decode_audio(path)


def test_permission_error_on_open_is_explained(encode_speech, monkeypatch) -> None:
    """The same check for runs as root, where chmod cannot lock a file: open() itself refuses."""
    path = WAV_S16.make(encode_speech)

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(audio.source, "open", refuse, raising=False)
    with pytest.raises(AudioDecodeError, match=r"Cannot read '.*s16\.wav': permission denied") as caught:
        decode_audio(path)
    assert isinstance(caught.value.__cause__, PermissionError)


@pytest.mark.parametrize("kind", ["path", "bytes", "file object"])
def test_empty_input(kind: str, tmp_path: Path) -> None:
    path = tmp_path / "empty.mp3"
    path.write_bytes(b"")
    sources: dict[str, Path | bytes | io.BytesIO] = {"path": path, "bytes": b"", "file object": io.BytesIO()}
    source = sources[kind]
    with pytest.raises(AudioDecodeError, match=r"is empty \(0 bytes\)"):
        decode_audio(source)
    with pytest.raises(AudioDecodeError, match=r"is empty \(0 bytes\)"):
        read_source_info(source.getvalue() if isinstance(source, io.BytesIO) else source)


NOT_AUDIO = {
    "text": (lambda: ("Meeting notes, not a recording.\n" * 50).encode(), "a text file"),
    "png": (corpus.png, "a PNG image"),
    "pdf": (corpus.pdf, "a PDF"),
    "zip": (corpus.zip_archive, "a ZIP archive"),
}


@pytest.mark.parametrize("suffix", [".mp3", ".wav", ""])
@pytest.mark.parametrize("kind", NOT_AUDIO)
def test_not_audio(kind: str, suffix: str, tmp_path: Path) -> None:
    make, looks_like = NOT_AUDIO[kind]
    path = tmp_path / f"renamed{suffix}"
    path.write_bytes(make())
    message = rf"is not an audio or video file \(it looks like {looks_like}"

    with pytest.raises(AudioDecodeError, match=message):
        decode_audio(path)
    with pytest.raises(AudioDecodeError, match=message):
        read_source_info(path)
    if suffix == "":  # without a name, FFmpeg can only guess from the content
        with pytest.raises(AudioDecodeError, match=r"^This file is not an audio or video file"):
            decode_audio(path.read_bytes())


@pytest.mark.parametrize("container_format, file_name", [("mp4", "silent.mp4"), ("matroska", "silent.mkv")])
def test_video_without_audio_track(container_format: str, file_name: str, encode_speech) -> None:
    path = encode_speech(file_name, format=container_format, codec="", video=True, audio=False)
    with av.open(str(path)) as container:  # the file really is a playable video
        assert len(container.streams.video) == 1 and not container.streams.audio

    for source in (path, path.read_bytes()):
        with pytest.raises(AudioDecodeError, match="has no audio track"):
            decode_audio(source)
        with pytest.raises(AudioDecodeError, match="has no audio track"):
            read_source_info(source)


@pytest.mark.parametrize("spec", [AAC_M4A, MP4_VIDEO, MP3], ids=str)
def test_truncated_file_where_nothing_decodes(spec: Spec, encode_speech) -> None:
    data = spec.make(encode_speech).read_bytes()
    # MP4 keeps its index at the end, so half a file cannot be opened; 300 bytes of MP3 is only its header.
    cut = data[: len(data) // 2] if spec.container == MP4 else data[:300]

    with pytest.raises(AudioDecodeError, match=r"could not be read as audio or video.*truncated or damaged") as caught:
        decode_audio(cut)
    assert isinstance(caught.value.__cause__, av.FFmpegError)


def test_truncated_file_keeps_what_decodes(encode_speech, speech_16k: np.ndarray) -> None:
    data = MP3.make(encode_speech).read_bytes()

    decoded = decode_audio(data[: len(data) // 2])

    full_s = len(speech_16k) / SAMPLE_RATE
    assert 0.3 * full_s < decoded.source.duration_s < 0.7 * full_s


def _damage_m4a(data: bytes, start: int, stop: int | None) -> bytes:
    """The M4A with bytes [start, stop) of its audio payload (the mdat box) overwritten with noise."""
    damaged = bytearray(data)
    payload = damaged.find(b"mdat") + 4
    end = damaged.find(b"moov") - 4 if stop is None else payload + stop
    damaged[payload + start : end] = np.random.default_rng(0).bytes(end - payload - start)
    return bytes(damaged)


def test_damaged_packets_become_silence(encode_speech, caplog) -> None:
    path = AAC_M4A.make(encode_speech)
    clean = decode_audio(path)

    with caplog.at_level(logging.WARNING, logger="asr.audio"):
        damaged = decode_audio(_damage_m4a(path.read_bytes(), 8_000, 12_000))

    assert re.search(r"Replaced \d+ damaged audio packet\(s\) with silence", caplog.text)
    # The timeline is kept: later speech stays where it was.
    assert damaged.source.duration_s == pytest.approx(clean.source.duration_s, abs=0.05)
    tail = slice(len(clean.samples) * 3 // 4, None)
    assert _waveform_correlation(damaged.samples[tail], clean.samples[tail]) > 0.99


def test_unreadable_rest_of_a_container_keeps_what_decoded(encode_speech, caplog) -> None:
    """FFmpeg's demuxers rarely fail part way (truncation reads as the end), so the failure is injected here."""
    with av.open(str(MP3.make(encode_speech))) as container:
        stream = container.streams.audio[0]

        class FailsHalfWay:
            def demux(self, stream):
                for index, packet in enumerate(container.demux(stream)):
                    if index == 40:
                        raise av.error.InvalidDataError(-1094995529, "Invalid data found when processing input")
                    yield packet

        stats = pyav.DecodeStats()
        with caplog.at_level(logging.WARNING, logger="asr.audio"):
            frames = list(pyav.decoded_frames(FailsHalfWay(), stream, stats))  # type: ignore[arg-type]  # a stand-in
            pyav.log_damage(stats)

    assert stats.read_error == "Invalid data found when processing input"
    assert 35 <= len(frames) == stats.decoded_frames <= 41  # 40 packets of 1152 samples, less the decoder's delay
    assert "Stopped reading early (Invalid data found when processing input)" in caplog.text


def test_nothing_decodes(encode_speech) -> None:
    damaged = _damage_m4a(AAC_M4A.make(encode_speech).read_bytes(), 0, None)

    with pytest.raises(AudioDecodeError, match=r"No audio could be decoded from this file \(\d+ damaged packet"):
        decode_audio(damaged)
    with pytest.raises(AudioDecodeError, match="No audio could be decoded"):
        read_source_info(damaged)


def test_zero_samples(tmp_path: Path) -> None:
    path = tmp_path / "nothing.wav"
    sf.write(path, np.zeros(0, dtype=np.float32), SAMPLE_RATE, subtype="PCM_16")  # a valid header, no frames

    with pytest.raises(AudioDecodeError, match=r"contains no audio samples \(0 seconds of sound\)"):
        decode_audio(path)
    with pytest.raises(AudioDecodeError, match="contains no audio samples"):
        read_source_info(path.read_bytes())


def test_wrong_source_type_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="path, bytes or a binary file object"):
        decode_audio(np.zeros(16_000, dtype=np.float32))  # type: ignore[arg-type]  # the wrong type on purpose


def test_nothing_about_the_input_is_logged(tmp_path: Path, encode_speech, caplog) -> None:
    path = tmp_path / "secret-client-interview.m4a"
    path.write_bytes(_damage_m4a(AAC_M4A.make(encode_speech).read_bytes(), 8_000, 12_000))

    with caplog.at_level(logging.DEBUG, logger="asr"):
        decode_audio(path)
        read_source_info(path)
        with pytest.raises(AudioDecodeError):
            decode_audio(tmp_path / "secret-missing.wav")

    assert caplog.records  # the damage was reported ...
    assert "secret" not in caplog.text  # ... without the file's name or path
    assert str(tmp_path) not in caplog.text


# --- max_duration_s ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("soundfile", [True, False], ids=["soundfile", "pyav"])
def test_declared_length_over_the_limit_is_refused_before_decoding(soundfile: bool, tmp_path: Path, monkeypatch):
    if not soundfile:
        _without_soundfile(monkeypatch)
    three_hours = corpus.sparse_silent_wav(tmp_path / "three-hours.wav", 3 * 3600, rate=8_000)
    for path_module in (libsndfile, pyav):
        monkeypatch.setattr(path_module, "collect", _fail("samples were decoded before the refusal"))

    with pytest.raises(AudioDecodeError, match=r"is 3:00:00 long, more than the limit of 1:00:00") as caught:
        decode_audio(three_hours, max_duration_s=3600)

    assert "max_duration_s=3600" in str(caught.value)


def test_undeclared_length_is_refused_while_decoding(speech_16k: np.ndarray) -> None:
    data = _webm_without_duration(speech_16k)
    with av.open(io.BytesIO(data), "r") as container:
        assert container.duration is None  # what the test relies on

    with pytest.raises(AudioDecodeError, match=r"more than the limit of 1\.5 s") as caught:
        decode_audio(data, max_duration_s=1.5)

    said = re.search(r"is ([\d.]+) s long", str(caught.value))
    assert said is not None
    length = float(said[1])
    assert length == pytest.approx(len(speech_16k) / SAMPLE_RATE, abs=0.1)


@pytest.mark.parametrize("spec", [WAV_S16, MP3, AAC_M4A], ids=str)
def test_input_within_the_limit_decodes(spec: Spec, encode_speech, speech_16k: np.ndarray) -> None:
    decoded = decode_audio(spec.make(encode_speech), max_duration_s=len(speech_16k) / SAMPLE_RATE + 0.5)
    assert decoded.source.duration_s > 3


@pytest.mark.parametrize("spec", [WAV_S16, MP3, AAC_M4A], ids=str)
def test_input_over_the_limit_is_refused(spec: Spec, encode_speech) -> None:
    with pytest.raises(AudioDecodeError, match=r"is 3\.\d s long, more than the limit of 2\.0 s"):
        decode_audio(spec.make(encode_speech), max_duration_s=2)


@pytest.mark.parametrize("bad", [0, -1.0, math.nan, "60", True])
def test_bad_limit_is_an_options_error(bad, encode_speech) -> None:
    with pytest.raises(OptionsError, match="max_duration_s must be a positive number"):
        decode_audio(WAV_S16.make(encode_speech), max_duration_s=bad)


# --- read_source_info --------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", ALL_SPECS, ids=str)
def test_source_info_matches_decoding(spec: Spec, encode_speech) -> None:
    path = spec.make(encode_speech)

    info = read_source_info(path)

    decoded = decode_audio(path).source
    assert (info.sample_rate, info.channels, info.codec, info.container, info.size_bytes) == (
        decoded.sample_rate,
        decoded.channels,
        decoded.codec,
        decoded.container,
        decoded.size_bytes,
    )
    assert info.duration_s == pytest.approx(decoded.duration_s, abs=0.03)


def test_source_info_fields(encode_speech, speech_16k: np.ndarray) -> None:
    path = WAV_44K_STEREO.make(encode_speech)
    facts = read_source_info(path)
    assert facts.duration_s == pytest.approx(len(speech_16k) / SAMPLE_RATE, abs=1e-4)
    assert facts == SourceInfo(
        duration_s=facts.duration_s,
        sample_rate=44_100,
        channels=2,
        codec="pcm_s16le",
        container="wav",
        size_bytes=path.stat().st_size,
    )
    info = read_source_info(io.BytesIO(MKV_VIDEO_OPUS.make(encode_speech).read_bytes()))
    assert (info.sample_rate, info.channels, info.codec, info.container) == (48_000, 2, "opus", MKV)


@pytest.mark.parametrize("soundfile", [True, False], ids=["soundfile", "pyav"])
def test_source_info_of_a_long_file_does_not_decode_it(soundfile: bool, tmp_path: Path, monkeypatch) -> None:
    if not soundfile:
        _without_soundfile(monkeypatch)
    path = corpus.sparse_silent_wav(tmp_path / "three-hours.wav", 3 * 3600, rate=8_000)
    for path_module in (libsndfile, pyav):
        monkeypatch.setattr(path_module, "collect", _fail("read_source_info decoded the whole file"))

    started = time.perf_counter()
    info = read_source_info(path)

    assert info == SourceInfo(10_800.0, 8_000, 1, "pcm_s16le", "wav", path.stat().st_size)
    assert time.perf_counter() - started < 1.0  # decoding it all would take several seconds


def test_source_info_decodes_when_no_length_is_declared(speech_16k: np.ndarray) -> None:
    data = _webm_without_duration(speech_16k)

    info = read_source_info(data)

    assert info == decode_audio(data).source
    assert info.duration_s == pytest.approx(len(speech_16k) / SAMPLE_RATE, abs=0.03)


def test_overview_of_a_long_file_finds_its_loud_part_and_leaves_nothing_behind(tmp_path, monkeypatch):
    """Twelve minutes (past SPILL_AFTER_S, so decoded into a private folder) with one loud second at 5:00."""
    from asr import tempfiles

    monkeypatch.setattr(tempfiles.tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    path = corpus.sparse_silent_wav(tmp_path / "long.wav", 12 * 60)
    with open(path, "r+b") as file:  # one second of a loud tone, written into the silence at 5:00
        file.seek(44 + 300 * SAMPLE_RATE * 2)
        tone = (0.8 * 32767 * np.sin(np.arange(SAMPLE_RATE) * 2 * np.pi * 440 / SAMPLE_RATE)).astype("<i2")
        file.write(tone.tobytes())
    mapped: list[list[Path]] = []  # the spill files there when samples were memory-mapped instead of held in RAM
    real_frombuffer = np.frombuffer

    def recorded_frombuffer(buffer: Any, **kwargs: Any) -> np.ndarray:
        if isinstance(buffer, mmap.mmap):
            mapped.append(sorted((tmp_path / "tmp").rglob("*.f32")))
        return real_frombuffer(buffer, **kwargs)

    monkeypatch.setattr(np, "frombuffer", recorded_frombuffer)
    facts = audio.overview(str(path), points=400)
    assert len(mapped) == 1 and len(mapped[0]) == 1  # mapped from the private folder under tmp
    assert facts.source.duration_s == pytest.approx(720.0) and len(facts.levels) == len(facts.seconds) >= 400
    loudest = facts.seconds[int(np.argmax(facts.levels))]
    assert 298.0 <= loudest <= 301.0 and max(facts.levels) == pytest.approx(0.8, abs=0.01)
    assert sum(level > 0 for level in facts.levels) <= 2  # silence elsewhere
    assert list((tmp_path / "tmp").iterdir()) == []  # the decoded samples' folder is gone
