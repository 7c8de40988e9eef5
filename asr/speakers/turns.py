"""Speech spans -> windows -> embeddings -> labels -> speaker turns, from the audio alone (no text).

Windows of `WINDOW_S` every `HOP_S` cover each VAD span. A shorter span is one window of its own, so
"Okay." between two long turns gets its own vote. The model sees each span once (a `Region`) and embeds
its windows from that (embedding.py). Each 10 ms frame of speech takes the label of the window whose
centre is nearest, and runs of one label are the turns.
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
from .embedding import FRAME_SHIFT_S, Region, SpeakerEmbedder, fbank

WINDOW_S = 1.5
HOP_S = 0.75
_FEATURES_SHARE = 0.1  # of the pass's progress: fbank over the spans; the embeddings take most of the rest
_EMBEDDINGS_SHARE = 0.88
MIN_WINDOW_S = 0.3  # shorter spans are too little voice to embed; they join the nearest window's speaker
_WINDOW_FRAMES = round(WINDOW_S / FRAME_SHIFT_S)
_HOP_FRAMES = round(HOP_S / FRAME_SHIFT_S)
_MIN_FRAMES = round(MIN_WINDOW_S / FRAME_SHIFT_S)


@dataclass(frozen=True)
class _Window:
    start_frame: int  # on the whole file's 10 ms grid
    stop_frame: int

    @property
    def centre(self) -> float:
        return (self.start_frame + self.stop_frame) / 2


def _windows(span_frames: tuple[int, int]) -> list[_Window]:
    """Windows over a span, about `HOP_S` apart (0.5-1 s), spread evenly from its start to its end.

    Evenly, because a last window pushed back to end with the span could be a near copy of the one before
    it: two votes for one stretch of audio, enough with one more to pass the small-cluster guard as a
    "speaker" (the benchmark's one voice was split like that, clustering.py).
    """
    start, stop = span_frames
    if stop - start <= _WINDOW_FRAMES:
        return [_Window(start, stop)] if stop - start >= _MIN_FRAMES else []
    spare = stop - start - _WINDOW_FRAMES
    count = round(spare / _HOP_FRAMES) + 1
    starts = (
        [start + spare // 2] if count == 1 else np.linspace(start, start + spare, count).round().astype(int).tolist()
    )
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

    `progress` hears the share of the work done after each span's features and each region's embeddings, and 1
    at the end.
    """
    windows: list[_Window] = []
    regions: list[Region] = []
    for done, span in enumerate(spans):
        _check(cancel)
        if progress is not None:
            progress(_FEATURES_SHARE * done / len(spans))
        start, stop = _frames(span)
        found = _windows((start, stop))
        if not found:
            continue
        # 25 ms frames every 10 ms: frame i covers samples [160 i, 160 i + 400), so a span has a frame or
        # two fewer than its 10 ms grid, and a window's end is cut to the frames there are
        feats = fbank(samples[span.start_sample : span.end_sample])
        cut = [(w, (w.start_frame - start, min(w.stop_frame - start, len(feats)))) for w in found]
        usable = [(w, frames) for w, frames in cut if frames[1] - frames[0] >= _MIN_FRAMES]
        if usable:
            windows += [w for w, _ in usable]
            regions.append(Region(feats, tuple(frames for _, frames in usable)))
    if not spans:
        if progress is not None:
            progress(1.0)
        return ()
    labels = (
        cluster_speakers(_embed(embedder, regions, cancel, progress), options) if regions else np.zeros(0, np.int64)
    )
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
    regions: list[Region],
    cancel: threading.Event | None,
    progress: ShareProgress | None,
) -> np.ndarray:
    """The windows' embeddings, a region at a time (a cancel is seen between two), progress told by windows."""
    total = sum(len(region.windows) for region in regions)
    report = part_of(progress, _FEATURES_SHARE, _FEATURES_SHARE + _EMBEDDINGS_SHARE)
    parts, done = [], 0
    for region in regions:
        _check(cancel)
        parts.append(embedder.embed([region]))
        done += len(region.windows)
        if report is not None:
            report(done / total)
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
