"""Diarization error rate on a 10 ms grid, with the usual forgiveness collar around true boundaries."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

STEP_S = 0.01


@dataclass(frozen=True)
class Score:
    der: float
    matched: dict[str, str]  # found speaker -> true speaker, one to one, for the least error


def der(
    truth: Sequence[tuple[float, float, str]], found: Sequence[tuple[float, float, str]], collar_s: float = 0.25
) -> Score:
    """(missed + false alarm + confusion) / true speech, the speakers matched one to one for the least error.

    Frames within `collar_s` of a true turn's start or end are not scored. No overlapping speech here.
    """
    end = max([e for _, e, _ in truth] + [e for _, e, _ in found]) + collar_s
    frames = int(np.ceil(end / STEP_S))
    true_ids = {name: i for i, name in enumerate(dict.fromkeys(s for _, _, s in truth))}
    found_ids = {name: i for i, name in enumerate(dict.fromkeys(s for _, _, s in found))}
    ref = np.full(frames, -1)
    hyp = np.full(frames, -1)
    scored = np.ones(frames, bool)
    for start, stop, speaker in truth:
        ref[round(start / STEP_S) : round(stop / STEP_S)] = true_ids[speaker]
        for edge in (start, stop):
            scored[max(0, round((edge - collar_s) / STEP_S)) : round((edge + collar_s) / STEP_S)] = False
    for start, stop, speaker in found:
        hyp[round(start / STEP_S) : round(stop / STEP_S)] = found_ids[speaker]
    ref, hyp = ref[scored], hyp[scored]
    counts = np.zeros((len(true_ids), max(1, len(found_ids))))
    both = (ref >= 0) & (hyp >= 0)
    np.add.at(counts, (ref[both], hyp[both]), 1)
    rows, cols = linear_sum_assignment(-counts)
    correct = counts[rows, cols].sum()
    by_id = {i: name for name, i in found_ids.items()}
    names = {i: name for name, i in true_ids.items()}
    matched = {by_id[c]: names[r] for r, c in zip(rows, cols, strict=True) if c in by_id}
    speech = np.sum(ref >= 0)
    missed = np.sum((ref >= 0) & (hyp < 0))
    false_alarm = np.sum((ref < 0) & (hyp >= 0))
    confusion = np.sum(both) - correct
    return Score(float((missed + false_alarm + confusion) / speech), matched)
