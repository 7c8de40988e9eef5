"""Progress inside a batch: the engine's prefill and decode steps as a share of the audio the batch covers.

A CPU batch of eight long chunks takes half a minute, most of a short file; reported only when it ends, the
progress line stands still and its estimate grows. The engine reports its work as it goes (the prefill layer
by layer, then every decode step), and `BatchProgress` turns that into the share of the batch done. Shares
should follow time, so that a steady run reads as a steady speed; `RunPace` learns from the run's finished
batches what they cost:

- how many decode steps to expect: the batch runs until its longest row ends, which real speech reaches
  long before its token budget; the tokens per second of speech that earlier chunks needed (with a margin)
  times the longest row's speech, at most the longest budget (random weights, as in the bench, always run to
  the budget, and then this is the budget);
- how much the prefill weighs against the steps: its seconds per second of audio and the seconds per step.

Before anything is learned (the first chunk), the prefill counts as `FIRST_PREFILL_SHARE` of the batch.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from .audio import SAMPLE_RATE
from .results import ChunkText

# What an engine tells of its work on one call: (share of the prefill done, 0 to 1; decode steps done).
EngineProgress = Callable[[float, int], None]

# The prefill's share of a batch's time on a CPU: encoder and prefill were 23 s of 51 s in bench/run.py (5 min).
FIRST_PREFILL_SHARE = 0.45
_STEPS_MARGIN = 1.25  # expect this many times the steps earlier chunks' text needed: a denser row ends later


@dataclass
class RunPace:
    """What one run has learned of its engine's pace (mutable: the run's own, never shared)."""

    prefill_s_per_audio_s: float | None = None
    step_s: float | None = None
    tokens: int = 0  # decoded in finished chunks (their end-of-text excluded)
    speech_s: float = 0.0  # of those chunks

    def expected_steps(self, longest_speech_s: float, longest_budget: int) -> int:
        if self.speech_s <= 0:
            return longest_budget
        rate = self.tokens / self.speech_s
        return max(1, min(longest_budget, round(rate * longest_speech_s * _STEPS_MARGIN) + 1))


@dataclass
class BatchProgress:
    """The engine's progress callback for one batch; calls `report` with the share of the batch done (0 to 1).

    The share never goes back: once the steps pass what was expected, it waits for the batch to end.
    """

    pace: RunPace
    audio_s: float  # seconds of audio in the batch's chunks
    longest_speech_s: float
    longest_budget: int
    report: Callable[[float], None]
    _started: float = field(default_factory=time.monotonic)
    _prefill_done_at: float | None = None
    _last_step_at: float | None = None
    _steps: int = 0
    _reported: float = 0.0

    def __call__(self, prefill: float, steps: int) -> None:
        now = time.monotonic()
        if prefill >= 1.0 and self._prefill_done_at is None:
            self._prefill_done_at = now
        if steps > 0:
            self._last_step_at, self._steps = now, steps
        expected = max(self.pace.expected_steps(self.longest_speech_s, self.longest_budget), round(steps / 0.95))
        weight = self._prefill_weight(expected)
        share = (weight * prefill + steps) / (weight + expected)
        if share > self._reported:
            self._reported = share
            self.report(share)

    def _prefill_weight(self, expected_steps: int) -> float:
        """The prefill's cost in decode steps."""
        pace = self.pace
        if pace.prefill_s_per_audio_s is None or not pace.step_s:
            return expected_steps * FIRST_PREFILL_SHARE / (1 - FIRST_PREFILL_SHARE)
        return pace.prefill_s_per_audio_s * self.audio_s / pace.step_s

    def learn(self, results: Sequence[ChunkText], speech_s: Sequence[float]) -> None:
        """Teach the run's pace what this batch cost, once the engine has returned its texts."""
        pace = self.pace
        pace.tokens += sum(result.num_tokens for result in results)
        pace.speech_s += sum(speech_s)
        if self._prefill_done_at is not None and self.audio_s > 0:
            pace.prefill_s_per_audio_s = (self._prefill_done_at - self._started) / self.audio_s
        if self._last_step_at is not None and self._prefill_done_at is not None and self._steps > 1:
            pace.step_s = (self._last_step_at - self._prefill_done_at) / self._steps


@dataclass
class RunProgress:
    """A run's progress callback, (processed seconds, total seconds), and what the run has learned of its pace.

    A batch's progress runs from where the last report left off to the end of its last chunk.
    """

    callback: Callable[[float, float], None] | None
    total_samples: int
    pace: RunPace = field(default_factory=RunPace)
    processed_sample: int = 0

    def at(self, processed_sample: int) -> None:
        self.processed_sample = processed_sample
        if self.callback is not None:
            self.callback(processed_sample / SAMPLE_RATE, self.total_samples / SAMPLE_RATE)

    def batch(self, end_sample: int, audio_s: float, speech_s: list[float], budgets: list[int]) -> BatchProgress | None:
        """The engine's progress callback for a batch that ends at `end_sample` and sends `audio_s` to the model."""
        callback = self.callback
        if callback is None:
            return None
        start, total_s = self.processed_sample, self.total_samples / SAMPLE_RATE

        def report(share: float) -> None:
            callback((start + share * (end_sample - start)) / SAMPLE_RATE, total_s)

        return BatchProgress(self.pace, audio_s, max(speech_s), max(budgets), report)
