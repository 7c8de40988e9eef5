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

Before anything is learned (the first chunk), the prefill weighs `FIRST_PREFILL_STEPS_PER_AUDIO_S` decode steps per
second of audio.

With word timestamps on, the forced aligner runs after the engine on each batch: the batch's last
`align_share` of the way (as long as alignment took in the batch before, `FIRST_ALIGN_SHARE` at first) moves
with the aligner's layers, so the processed seconds keep moving through it at the same pace. The passes that
cover the whole file and transcribe nothing (speakers, the rest's speech scan) move no processed seconds:
they report their own share done as a `Stage`, and so does the aligner, so a page can say what is going on.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from .audio import SAMPLE_RATE
from .results import ChunkText

# What an engine tells of its work on one call: (share of the prefill done, 0 to 1; decode steps done).
EngineProgress = Callable[[float, int], None]
ShareProgress = Callable[[float], None]  # a pass's share done: 0 at its start, 1 at its end


class Stage(StrEnum):
    """A pass of a run besides the transcription itself, reported with its share done (`transcribe(stage=...)`)."""

    SPEAKERS = "speakers"  # who speaks when, over the whole file, before the first words (speakers on)
    SPEECH = "speech"  # the speech scan of the file's rest, after the first words
    WORD_TIMES = "word times"  # the forced aligner on a batch (word timestamps on)

    @property
    def words(self) -> str:
        """e.g. "Finding speakers": the one wording of the pass, for the page and the CLI."""
        return _STAGE_WORDS[self]

    def describe(self, share: float) -> str:
        """e.g. "Finding speakers… 40%": the page's progress line, its Live tab and the CLI's bar."""
        return f"{self.words}… {share:.0%}"


_STAGE_WORDS = {
    Stage.SPEAKERS: "Finding speakers",
    Stage.SPEECH: "Looking for speech",
    Stage.WORD_TIMES: "Finding word times",
}


StageProgress = Callable[[Stage, float], None]  # (the pass, its share done: 0 at its start, 1 at its end)

# The prefill's cost in decode steps per second of the batch's audio, before a batch has been timed: a first chunk of
# 2.65 s took 0.35 s of encoder and prefill at 70 ms a step (bfloat16, AVX-512), a 24 s chunk 3.8 s at 94 ms a step
# (float32, AVX2): 1.7-1.9 steps a second on both. As a share of the batch (0.45 before), it made the processed
# seconds jump through a short first chunk's prefill and then crawl through its steps.
FIRST_PREFILL_STEPS_PER_AUDIO_S = 2.0
_STEPS_MARGIN = 1.25  # expect this many times the steps earlier chunks' text needed: a denser row ends later
# The aligner's share of an aligned batch's time before one was timed: on a 2-core CPU word timestamps added 16%
# (30 s) to 89% (5 min) to a run's time (README), a share of 0.14 to 0.47.
FIRST_ALIGN_SHARE = 0.3


def part_of(report: ShareProgress | None, start: float, end: float) -> ShareProgress | None:
    """`report` for a part of a pass that takes it from share `start` to share `end`."""
    if report is None:
        return None
    return lambda share: report(start + share * (end - start))


@dataclass
class RunPace:
    """What one run has learned of its engine's pace (mutable: the run's own, never shared)."""

    prefill_s_per_audio_s: float | None = None
    step_s: float | None = None
    tokens: int = 0  # decoded in finished chunks (their end-of-text excluded)
    speech_s: float = 0.0  # of those chunks
    align_share: float | None = None  # of the last aligned batch's time, its alignment's

    def expected_steps(self, longest_speech_s: float, longest_budget: int) -> int:
        if self.speech_s <= 0:
            return longest_budget
        rate = self.tokens / self.speech_s
        return max(1, min(longest_budget, round(rate * longest_speech_s * _STEPS_MARGIN) + 1))


@dataclass
class BatchProgress:
    """The engine's progress callback for one batch; calls `report` with the share of the batch done (0 to 1).

    The engine's work takes the batch from 0 to `1 - align_share`, the aligner's (`aligning`) on to 1. The
    share never goes back: once the steps pass what was expected, it waits for the engine to return.
    """

    pace: RunPace
    audio_s: float  # seconds of audio in the batch's chunks
    longest_speech_s: float
    longest_budget: int
    report: ShareProgress
    align_share: float = 0.0  # of the batch's way, kept for its word times (0: no aligner)
    word_times: ShareProgress | None = None  # told of the aligner's share done, as `Stage.WORD_TIMES`
    _started: float = field(default_factory=time.monotonic)
    _prefill_done_at: float | None = None
    _last_step_at: float | None = None
    _steps: int = 0
    _reported: float = 0.0
    _generated_at: float | None = None
    _align_started: float | None = None

    def __call__(self, prefill: float, steps: int) -> None:
        now = time.monotonic()
        if prefill >= 1.0 and self._prefill_done_at is None:
            self._prefill_done_at = now
        if steps > 0:
            self._last_step_at, self._steps = now, steps
        expected = max(self.pace.expected_steps(self.longest_speech_s, self.longest_budget), round(steps / 0.95))
        weight = self._prefill_weight()
        self._advance((weight * prefill + steps) / (weight + expected) * (1 - self.align_share))

    def aligning(self, share: float) -> None:
        """The aligner's progress on this batch: 0 when it starts, 1 when it has timed every chunk it can."""
        now = time.monotonic()
        if self._align_started is None:
            self._align_started = now
        self._advance(1 - self.align_share * (1 - share))
        if self.word_times is not None:
            self.word_times(share)
        if share >= 1.0 and self._generated_at is not None:
            generated_s, aligned_s = self._generated_at - self._started, now - self._align_started
            if generated_s + aligned_s > 0:
                self.pace.align_share = aligned_s / (generated_s + aligned_s)

    def _advance(self, share: float) -> None:
        if share > self._reported:
            self._reported = share
            self.report(share)

    def _prefill_weight(self) -> float:
        """The prefill's cost in decode steps."""
        pace = self.pace
        if pace.prefill_s_per_audio_s is None or not pace.step_s:
            return FIRST_PREFILL_STEPS_PER_AUDIO_S * self.audio_s
        return pace.prefill_s_per_audio_s * self.audio_s / pace.step_s

    def learn(self, results: Sequence[ChunkText], speech_s: Sequence[float]) -> None:
        """Teach the run's pace what this batch cost, once the engine has returned its texts."""
        self._generated_at = time.monotonic()
        pace = self.pace
        pace.tokens += sum(result.num_tokens for result in results)
        pace.speech_s += sum(speech_s)
        if self._prefill_done_at is not None and self.audio_s > 0:
            pace.prefill_s_per_audio_s = (self._prefill_done_at - self._started) / self.audio_s
        if self._last_step_at is not None and self._prefill_done_at is not None and self._steps > 1:
            pace.step_s = (self._last_step_at - self._prefill_done_at) / self._steps


@dataclass
class RunProgress:
    """A run's progress callbacks (processed seconds; stages) and what the run has learned of its pace.

    A batch's progress runs from where the last report left off to the end of its last chunk.
    """

    callback: Callable[[float, float], None] | None  # (processed seconds, total seconds)
    total_samples: int
    stage: StageProgress | None = None
    aligned: bool = False  # whether batches go through the aligner after the engine
    pace: RunPace = field(default_factory=RunPace)
    processed_sample: int = 0

    def of(self, stage: Stage) -> ShareProgress | None:
        """The progress callback of one pass: its share done, reported as `stage`."""
        report = self.stage
        if report is None:
            return None
        return lambda share: report(stage, share)

    def at(self, processed_sample: int) -> None:
        self.processed_sample = processed_sample
        if self.callback is not None:
            self.callback(processed_sample / SAMPLE_RATE, self.total_samples / SAMPLE_RATE)

    def batch(self, end_sample: int, audio_s: float, speech_s: list[float], budgets: list[int]) -> BatchProgress | None:
        """The engine's progress callback for a batch that ends at `end_sample` and sends `audio_s` to the model."""
        callback = self.callback
        if callback is None and self.stage is None:
            return None
        start, total_s = self.processed_sample, self.total_samples / SAMPLE_RATE

        def report(share: float) -> None:
            if callback is not None:
                callback((start + share * (end_sample - start)) / SAMPLE_RATE, total_s)

        align_share = 0.0
        if self.aligned:
            align_share = FIRST_ALIGN_SHARE if self.pace.align_share is None else self.pace.align_share
        word_times = self.of(Stage.WORD_TIMES)
        return BatchProgress(self.pace, audio_s, max(speech_s), max(budgets), report, align_share, word_times)
