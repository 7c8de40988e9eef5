"""Shared fixtures. Audio files are encoded on the spot from espeak-ng speech (nothing is stored in the repo)."""

from __future__ import annotations

import fractions
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import pytest

from asr.audio import SAMPLE_RATE
from testbed.speech import SENTENCES, silence, speak

EncodeSpeech = Callable[..., Path]


@pytest.fixture(scope="session")
def speech_16k() -> np.ndarray:
    """About 3.7 s of real speech, mono float32 at 16 kHz, with 0.25 s of silence at each end."""
    return np.concatenate([silence(0.25), speak(SENTENCES[0]), silence(0.25)])


@pytest.fixture(scope="session")
def encode_speech(speech_16k: np.ndarray, tmp_path_factory: pytest.TempPathFactory) -> EncodeSpeech:
    """Factory: ``encode_speech(file_name, format=..., codec=..., ...)`` writes ``speech_16k`` with PyAV's encoders.

    Stereo files carry the speech on the left and the same speech at half level on the right, so an average
    downmix gives 0.75 times the reference. ``video=True`` adds a tiny black video stream; ``audio=False``
    leaves the audio out. Each distinct file is made once per session.
    """
    folder = tmp_path_factory.mktemp("encoded")
    made: dict[tuple, Path] = {}

    def encode(
        file_name: str,
        *,
        format: str,
        codec: str,
        rate: int = SAMPLE_RATE,
        channels: int = 1,
        sample_format: str | None = None,
        codec_options: dict[str, str] | None = None,
        video: bool = False,
        audio: bool = True,
    ) -> Path:
        key = (file_name, format, codec, rate, channels, sample_format, str(codec_options), video, audio)
        if key not in made:
            path = folder / file_name
            assert not path.exists(), f"two different specs use the file name {file_name}"
            _write(path, speech_16k, format, codec, rate, channels, sample_format, codec_options, video, audio)
            made[key] = path
        return made[key]

    return encode


def _write(
    path: Path,
    samples: np.ndarray,
    container_format: str,
    codec: str,
    rate: int,
    channels: int,
    sample_format: str | None,
    codec_options: dict[str, str] | None,
    video: bool,
    audio: bool,
) -> None:
    """Encode 16 kHz mono samples into one file, resampled and spread over channels as asked."""
    layout = {1: "mono", 2: "stereo"}[channels]
    planes = np.stack([samples, 0.5 * samples][:channels]).astype(np.float32)
    duration_s = len(samples) / SAMPLE_RATE
    with av.open(str(path), "w", format=container_format) as output:
        if audio:
            stream = output.add_stream(codec, rate=rate, options=codec_options or {})
            assert isinstance(stream, av.audio.stream.AudioStream)
            stream.layout = layout
            if sample_format:
                stream.format = sample_format
        if video:
            _write_video(output, duration_s)
        if audio:
            assert isinstance(stream, av.audio.stream.AudioStream)
            context = stream.codec_context
            resampler = av.AudioResampler(
                format=context.format.name, layout=layout, rate=rate, frame_size=context.frame_size or 1024
            )
            frame = av.AudioFrame.from_ndarray(planes, format="fltp", layout=layout)
            frame.sample_rate, frame.pts, frame.time_base = SAMPLE_RATE, 0, fractions.Fraction(1, SAMPLE_RATE)
            for piece in [*resampler.resample(frame), *resampler.resample(None)]:
                output.mux(stream.encode(piece))
            output.mux(stream.encode(None))


def _write_video(output: av.container.OutputContainer, duration_s: float) -> None:
    """A 32x32 black video stream at 10 fps as long as the audio."""
    stream = output.add_stream("mpeg4", rate=10)
    stream.width = stream.height = 32
    stream.pix_fmt = "yuv420p"
    for index in range(round(duration_s * 10)):
        frame = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), dtype=np.uint8), format="rgb24")
        frame.pts = index
        output.mux(stream.encode(frame))
    output.mux(stream.encode(None))


pytest_plugins = ["model_fixtures", "browser_fixtures"]
