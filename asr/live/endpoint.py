"""Utterances in a live stream: where speech starts, and where a pause (or the length cap) ends it.

Fed one Silero probability per 32 ms window, in order, and nothing else: no audio, no model, so the
rules are tested on their own. They follow Silero's own streaming rules (`VADIterator`): a window at
or above the threshold is speech, a pause starts with a window below the threshold minus 0.15, and a
pause long enough ends the utterance, padded on both sides so word edges are kept. Two rules are ours:
an utterance that reaches the cap is cut at its least speech-like window in its second half (the rest
starts the next utterance, so no sample is lost or heard twice), and an utterance with less speech than
the minimum is dropped as a click or a breath.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_NEG_THRESHOLD_GAP = 0.15  # Silero's hysteresis: a pause starts below threshold - 0.15


@dataclass(frozen=True)
class Utterance:
    """A stretch of the stream to transcribe as one, in samples since the start."""

    start_sample: int
    end_sample: int


@dataclass(frozen=True)
class EndpointRules:
    """All in samples (see `LiveOptions` for the values in seconds and why)."""

    window: int
    threshold: float
    end_silence: int
    pad: int
    min_speech: int
    max_utterance: int


class Endpointer:
    """Turns window probabilities into finished `Utterance`s; `open_start` is where the current one began."""

    def __init__(self, rules: EndpointRules) -> None:
        self._rules = rules
        self._windows = 0  # windows seen so far
        self._floor = 0  # the end of the last utterance: the next one never reaches before it
        self.open_start: int | None = None
        self._pause_start: int | None = None
        self._speech_end = 0  # end of the last speech window of the open utterance
        self._speech = 0  # samples of speech windows in the open utterance
        self._probs: list[float] = []  # of the open utterance's windows, to find where to cut at the cap
        self._first_window = 0  # the index of the window `_probs` starts with

    def push(self, probs: np.ndarray) -> list[Utterance]:
        """Utterances that the windows with these probabilities finished, in order."""
        done = []
        for prob in probs.tolist():
            window_end = (self._windows + 1) * self._rules.window
            self._windows += 1
            utterance = self._step(float(prob), window_end)
            if utterance is not None:
                done.append(utterance)
        return done

    @property
    def pausing(self) -> bool:
        """Whether the open utterance is in a pause (which may end it)."""
        return self._pause_start is not None

    @property
    def ending(self) -> Utterance | None:
        """The utterance that the pause under way ends if it lasts, once the pause has lasted its padding.

        Its audio is all heard then, so its final can be decoded while the rest of the pause is awaited. None
        without such a pause, or when the utterance would be dropped (too little speech).
        """
        if self.open_start is None or self._pause_start is None:
            return None
        end = self._pause_start + self._rules.pad
        heard = self._windows * self._rules.window
        if heard < end or end <= self.open_start or self._speech < self._rules.min_speech:
            return None
        return Utterance(self.open_start, end)

    def flush(self, stream_end: int) -> Utterance | None:
        """The utterance still open when the stream ends (Stop) at sample `stream_end` (a window may be partial)."""
        if self.open_start is None:
            return None
        end = min(stream_end, self._speech_end + self._rules.pad)
        return self._close(end)

    def _step(self, prob: float, window_end: int) -> Utterance | None:
        rules = self._rules
        if self.open_start is None:
            if prob < rules.threshold:
                return None
            self.open_start = max(self._floor, window_end - rules.window - rules.pad)
            self._pause_start, self._speech, self._probs = None, 0, []
            self._first_window = self._windows - 1
        self._probs.append(prob)
        if prob >= rules.threshold:
            self._pause_start, self._speech_end = None, window_end
            self._speech += rules.window
        elif prob < rules.threshold - _NEG_THRESHOLD_GAP and self._pause_start is None:
            self._pause_start = window_end - rules.window
        if self._pause_start is not None and window_end - self._pause_start >= rules.end_silence:
            return self._close(min(window_end, self._pause_start + rules.pad))
        if window_end - self.open_start >= rules.max_utterance:
            return self._cut(window_end)
        return None

    def _cut(self, window_end: int) -> Utterance | None:
        """Cut an utterance at the cap in its least speech-like window of the second half; the rest goes on."""
        rules = self._rules
        half = len(self._probs) // 2
        quietest = half + int(np.argmin(self._probs[half:]))
        cut = (self._first_window + quietest + 1) * rules.window
        kept = self._probs[quietest + 1 :]
        utterance = self._close(cut)
        if kept:  # the speech after the cut starts the next utterance at once
            self.open_start, self._probs, self._first_window = cut, kept, self._first_window + quietest + 1
            self._speech = rules.window * sum(p >= rules.threshold for p in kept)
            self._pause_start = None
        return utterance

    def _close(self, end: int) -> Utterance | None:
        start, speech = self.open_start, self._speech
        assert start is not None
        self.open_start, self._floor = None, end
        if speech < self._rules.min_speech or end <= start:
            return None
        return Utterance(start, end)
