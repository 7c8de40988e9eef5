"""The page's preview of an input: its facts and a loudness envelope, in bounded memory."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..results import SourceInfo
from ..tempfiles import private_workdir
from .decoder import decode_audio
from .samples import SAMPLE_RATE
from .source import AudioSource


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
