"""Real speech for the tests, made on the spot with espeak-ng (no recordings are stored).

espeak-ng speaks at 22.05 kHz; we resample to 16 kHz with PyAV's FFmpeg resampler so tests
can build exact timelines (speech, then n seconds of silence, then speech) in samples.
"""

from __future__ import annotations

import functools
import io
import subprocess

import av
import numpy as np
import soundfile as sf

from asr.audio import SAMPLE_RATE

SENTENCES = (
    "The quick brown fox jumps over the lazy dog.",
    "Please call Stella and ask her to bring these things with her from the store.",
    "We will meet again on Tuesday morning to discuss the budget for next year.",
    "The weather today is cloudy with a chance of rain in the afternoon.",
    "Six spoons of fresh snow peas, five thick slabs of blue cheese, and maybe a snack.",
)

MANDARIN_PINYIN = "ni3 hao3, jin1 tian1 tian1 qi4 hen3 hao3."  # voice cmn-latn-pinyin reads tone digits


@functools.lru_cache(maxsize=64)
def espeak_wav(text: str, voice: str = "en-us", speed_wpm: int = 160) -> bytes:
    """WAV bytes (22.05 kHz mono 16-bit) of espeak-ng saying `text`."""
    result = subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(speed_wpm), "--stdout", text],
        check=True,
        capture_output=True,
    )
    return result.stdout


def speak(text: str, voice: str = "en-us", speed_wpm: int = 160) -> np.ndarray:
    """Mono float32 samples at 16 kHz of espeak-ng saying `text`."""
    with av.open(io.BytesIO(espeak_wav(text, voice, speed_wpm)), "r") as container:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        parts = [
            out.to_ndarray().reshape(-1) for frame in container.decode(audio=0) for out in resampler.resample(frame)
        ]
        parts += [out.to_ndarray().reshape(-1) for out in resampler.resample(None)]
    return np.concatenate(parts).astype(np.float32)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(round(seconds * SAMPLE_RATE), dtype=np.float32)


def speech_with_pauses(sentences: tuple[str, ...], pauses_s: tuple[float, ...], lead_s: float = 0.5):
    """Sentences joined by the given pauses; returns (samples, [(start_sample, end_sample) per sentence])."""
    assert len(pauses_s) == len(sentences) - 1
    parts = [silence(lead_s)]
    spans = []
    position = len(parts[0])
    for index, sentence in enumerate(sentences):
        voiced = speak(sentence)
        parts.append(voiced)
        spans.append((position, position + len(voiced)))
        position += len(voiced)
        if index < len(pauses_s):
            parts.append(silence(pauses_s[index]))
            position += len(parts[-1])
    parts.append(silence(lead_s))
    return np.concatenate(parts), spans


def as_file(samples: np.ndarray, format: str) -> bytes:
    """`samples` as the bytes of an audio file in one of libsndfile's formats ("WAV", "MP3", "FLAC", ...)."""
    buffer = io.BytesIO()
    sf.write(buffer, samples, SAMPLE_RATE, format=format)
    return buffer.getvalue()


def interview_mp3() -> bytes:
    """About 15 s of speech (three sentences, two 1 s pauses) as an MP3: long enough to see a run's progress."""
    return as_file(speech_with_pauses(SENTENCES[:3], (1.0, 1.0))[0], "MP3")
