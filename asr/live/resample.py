"""Microphone audio at its own rate -> 16 kHz, piece by piece (browsers capture at 44.1 or 48 kHz).

FFmpeg's resampler (through PyAV, which decodes files too) keeps its filter state between pieces, so a
stream resampled in pieces sounds the same as resampled at once, and no piece's edge clicks.
"""

from __future__ import annotations

import av
import numpy as np

from ..audio import SAMPLE_RATE


class Resampler:
    """Mono float32 at `rate` in, mono float32 at 16 kHz out; a little of each piece comes out with the next."""

    def __init__(self, rate: int) -> None:
        self._rate = rate
        self._resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        self._pts = 0

    def push(self, samples: np.ndarray) -> np.ndarray:
        samples = np.ascontiguousarray(samples, dtype=np.float32).reshape(1, -1)
        if samples.shape[1] == 0:
            return np.zeros(0, dtype=np.float32)
        frame = av.AudioFrame.from_ndarray(samples, format="flt", layout="mono")
        frame.sample_rate, frame.pts = self._rate, self._pts
        self._pts += samples.shape[1]
        parts = [out.to_ndarray().reshape(-1) for out in self._resampler.resample(frame)]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)
