"""The benchmark's input: espeak-ng sentences joined by random pauses, with the ground-truth speech spans."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from asr.audio import SAMPLE_RATE
from testbed.voiced import all_sentences, voiced_sentences

SEED = 0


@dataclass(frozen=True)
class SyntheticSpeech:
    """Mono float32 samples at 16 kHz and the sample spans where a sentence is spoken."""

    samples: np.ndarray
    spans: tuple[tuple[int, int], ...]

    @property
    def duration_s(self) -> float:
        return len(self.samples) / SAMPLE_RATE

    @property
    def speech_s(self) -> float:
        return sum(end - start for start, end in self.spans) / SAMPLE_RATE

    def speech_s_between(self, start: int, end: int) -> float:
        """Seconds of ground-truth speech inside samples [start, end)."""
        return sum(max(0, min(end, e) - max(start, s)) for s, e in self.spans) / SAMPLE_RATE


def build_speech(
    duration_s: float, *, seed: int = SEED, lead_s: float = 0.5, voiced_path: Path | None = None
) -> SyntheticSpeech:
    """Random sentences (seeded) with random 0.3-2 s pauses, padded with silence to exactly `duration_s`.

    The same seed gives the same sequence, so a shorter input is the start of a longer one.
    """
    sentences = all_sentences()
    voiced = voiced_sentences(voiced_path)
    rng = np.random.default_rng(seed)
    total = round(duration_s * SAMPLE_RATE)
    lead = round(lead_s * SAMPLE_RATE)
    parts: list[np.ndarray] = [np.zeros(lead, np.float32)]
    spans: list[tuple[int, int]] = []
    position = lead
    while True:
        text = sentences[int(rng.integers(len(sentences)))]
        wave = voiced[text]
        if position + len(wave) + lead > total:
            break
        parts.append(wave)
        spans.append((position, position + len(wave)))
        position += len(wave)
        pause = round(float(rng.uniform(0.3, 2.0)) * SAMPLE_RATE)
        parts.append(np.zeros(pause, np.float32))
        position += pause
    samples = np.concatenate(parts)[:total]
    samples = np.pad(samples, (0, total - len(samples)))
    return SyntheticSpeech(samples=samples, spans=tuple(spans))
