"""Speech spans -> windows -> embeddings -> labels -> speaker turns, from the audio alone (no text).

Windows of `WINDOW_S` every `HOP_S` cover each VAD span. A shorter span is one window of its own, so
"Okay." between two long turns gets its own vote; its frames are repeated to the full window length, so
every window has one shape and they all run as a few batches (on the CPU a new input shape costs as much
as a batch). Each 10 ms frame of speech takes the label of the
window whose centre is nearest, and runs of one label are the turns.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..audio import SAMPLE_RATE
from ..errors import TranscriptionCancelled
from ..options import SpeakerOptions
from ..progress import ShareProgress, part_of
from ..results import SpeakerTurn, SpeechSpan
from .clustering import cluster_speakers
from .embedding import FRAME_SHIFT_S, SpeakerEmbedder, fbank

WINDOW_S = 1.5
HOP_S = 0.75
MIN_WINDOW_S = 0.3  # shorter spans are too little voice to embed; they join the nearest window's speaker
_WINDOW_FRAMES = round(WINDOW_S / FRAME_SHIFT_S)
_HOP_FRAMES = round(HOP_S / FRAME_SHIFT_S)
_MIN_FRAMES = round(MIN_WINDOW_S / FRAME_SHIFT_S)
# The parts' shares of the work, as they took time on 38 s of two voices (a loaded 2-core machine: 0.2 s, 25 s and
# 0.35 s): the features, then the embeddings; the clustering takes the rest.
_FEATURES_SHARE = 0.02
_EMBEDDINGS_SHARE = 0.96
_EMBED_WINDOWS = 64  # windows per call of the embedder: a cancel is seen between two


@dataclass(frozen=True)
class _Window:
    start_frame: int  # on the whole file's 10 ms grid
    stop_frame: int

    @property
    def centre(self) -> float:
        return (self.start_frame + self.stop_frame) / 2


def _windows(span_frames: tuple[int, int]) -> list[_Window]:
    start, stop = span_frames
    if stop - start <= _WINDOW_FRAMES:
        return [_Window(start, stop)] if stop - start >= _MIN_FRAMES else []
    starts = list(range(start, stop - _WINDOW_FRAMES + 1, _HOP_FRAMES))
    if starts[-1] + _WINDOW_FRAMES < stop:
        starts.append(stop - _WINDOW_FRAMES)  # the last window ends with the span
    return [_Window(s, s + _WINDOW_FRAMES) for s in starts]


def _frames(span: SpeechSpan) -> tuple[int, int]:
    samples_per_frame = FRAME_SHIFT_S * SAMPLE_RATE
    return round(span.start_sample / samples_per_frame), round(span.end_sample / samples_per_frame)


def find_speaker_turns(
    samples: np.ndarray,
    spans: Sequence[SpeechSpan],
    options: SpeakerOptions,
    embedder: SpeakerEmbedder,
    *,
    cancel: threading.Event | None = None,
    progress: ShareProgress | None = None,
) -> tuple[SpeakerTurn, ...]:
    """Who speaks when: turns on the original timeline, speakers "S1", "S2", ... by first appearance.

    `progress` hears the share of the work done after each span's features and each batch of embeddings, and 1
    at the end.
    """
    if not spans:
        if progress is not None:
            progress(1.0)
        return ()
    windows: list[_Window] = []
    features: list[np.ndarray] = []
    for done, span in enumerate(spans):
        _check(cancel)
        if progress is not None:
            progress(_FEATURES_SHARE * done / len(spans))
        start, stop = _frames(span)
        found = _windows((start, stop))
        if not found:
            continue
        # 25 ms frames every 10 ms: frame i covers samples [160 i, 160 i + 400)
        feats = fbank(samples[span.start_sample : span.end_sample])
        for window in found:
            part = feats[window.start_frame - start : window.stop_frame - start]
            if len(part) >= _MIN_FRAMES:
                windows.append(window)
                normalised = part - part.mean(axis=0)
                features.append(np.resize(normalised, (_WINDOW_FRAMES, normalised.shape[1])))
    labels = np.zeros(0, np.int64)
    if features:
        labels = cluster_speakers(_embed(embedder, features, cancel, progress), options)
    if progress is not None:
        progress(1.0)
    if len(labels) == 0:  # only very short bursts: one speaker
        return tuple(_merge_runs([(*_frames(span), 0) for span in spans]))
    centres = np.array([w.centre for w in windows])
    runs: list[tuple[int, int, int]] = []
    for span in spans:
        start, stop = _frames(span)
        frames = np.arange(start, stop) + 0.5
        nearest = labels[np.abs(frames[:, None] - centres[None, :]).argmin(axis=1)]
        changes = np.flatnonzero(np.diff(nearest)) + 1
        for first, end in zip([0, *changes], [*changes, len(frames)], strict=True):
            runs.append((start + first, start + end, int(nearest[first])))
    return tuple(_merge_runs(runs))


def _check(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise TranscriptionCancelled("Transcription cancelled while finding speakers.")


def _embed(
    embedder: SpeakerEmbedder,
    features: list[np.ndarray],
    cancel: threading.Event | None,
    progress: ShareProgress | None,
) -> np.ndarray:
    """The windows' embeddings, `_EMBED_WINDOWS` at a time (a cancel is seen between), progress told throughout."""
    parts = []
    for start in range(0, len(features), _EMBED_WINDOWS):
        _check(cancel)
        end = min(len(features), start + _EMBED_WINDOWS)
        low, high = (_FEATURES_SHARE + _EMBEDDINGS_SHARE * done / len(features) for done in (start, end))
        parts.append(embedder.embed(features[start:end], part_of(progress, low, high)))
    return np.concatenate(parts)


def _merge_runs(runs: list[tuple[int, int, int]]) -> list[SpeakerTurn]:
    """Turns from (start frame, stop frame, label) runs in time order; a speaker's adjacent runs join."""
    merged: list[list[int]] = []
    for start, stop, label in runs:
        if merged and merged[-1][2] == label and start - merged[-1][1] <= 0:
            merged[-1][1] = stop
        else:
            merged.append([start, stop, label])
    order = {label: number for number, label in enumerate(dict.fromkeys(run[2] for run in merged), start=1)}
    return [
        SpeakerTurn(round(start * FRAME_SHIFT_S, 2), round(stop * FRAME_SHIFT_S, 2), f"S{order[label]}")
        for start, stop, label in merged
    ]
