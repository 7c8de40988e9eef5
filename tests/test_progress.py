"""Progress that moves: reports inside a batch (prefill layers, decode steps) and an estimate that falls steadily.

The real engine on the tiny checkpoint, with both decoders (our loop and transformers' generate): the tiny model
never says end-of-text, so each batch runs to its longest budget and its steps can be counted.
"""

from __future__ import annotations

import itertools

import pytest

import asr
from asr.jobs import JobSnapshot, JobStatus
from asr.progress import BatchProgress, RunPace
from asr.results import ChunkText
from testbed.speech import SENTENCES, speech_with_pauses


class _RecordingEngine:
    """The real engine; notes every progress call the engine makes, and the processed seconds reported meanwhile."""

    def __init__(self, engine, reports: list[float]) -> None:
        self.engine, self.reports = engine, reports
        self.name, self.default_batch_size, self.device = engine.name, engine.default_batch_size, engine.device
        self.batches: list[dict] = []

    def transcribe_chunks(self, chunks, *, progress=None, **kwargs):
        batch = {"rows": len(chunks), "budget": max(kwargs["max_new_tokens"]), "calls": [], "reports": []}
        self.batches.append(batch)

        def noted(prefill: float, steps: int) -> None:
            batch["calls"].append((prefill, steps))
            before = len(self.reports)
            progress(prefill, steps)
            batch["reports"] += self.reports[before:]

        return self.engine.transcribe_chunks(chunks, progress=noted if progress else None, **kwargs)

    def fall_back_to_cpu(self):
        return None


@pytest.fixture(scope="module")
def four_sentences():
    return speech_with_pauses(SENTENCES[:4], (3.0, 3.0, 3.0))[0]  # the first chunk, then one batch of three


@pytest.mark.parametrize("decoder", ["loop", "generate"])
def test_progress_moves_inside_a_batch_with_its_prefill_and_steps(tiny_model_dir, four_sentences, decoder):
    engine = asr.QwenEngine.load(str(tiny_model_dir), device="cpu", decoder=decoder)
    reports: list[float] = []
    recording = _RecordingEngine(engine, reports)
    segments, info = asr.transcribe(four_sentences, engine=recording, progress=lambda done, total: reports.append(done))
    list(segments)
    first, batch = recording.batches
    assert batch["rows"] == 3
    calls = batch["calls"]
    prefill = [share for share, steps in calls if steps == 0]
    steps = [steps for _, steps in calls if steps > 0]
    layers = len(prefill)  # of the audio encoder and the decoder: the tiny model has two of each
    assert layers >= 4 and prefill == [done / layers for done in range(1, layers + 1)]  # layer by layer, once
    assert steps == list(range(1, batch["budget"] + 1))  # every step, up to the longest budget
    # The processed seconds move on through the batch, from the first chunk's end towards the batch's end.
    inside = batch["reports"]
    assert len(inside) >= batch["budget"] // 2
    assert inside == sorted(inside) and len(set(inside)) == len(inside)
    first_end, batch_end = max(first["reports"]), reports[-1]
    assert first_end < inside[0] and inside[-1] <= batch_end == info.duration_s
    assert reports == sorted(reports)


def test_a_batch_expects_the_steps_that_earlier_chunks_needed():
    """Real speech ends long before its budget: once a run has seen 3 tokens per second of speech, a row of 10 s
    is expected to take about 3 x 10 x 1.25 steps, not its budget of 136."""
    pace = RunPace()
    assert pace.expected_steps(10.0, 136) == 136  # nothing learned yet: the budget
    shares: list[float] = []
    first = BatchProgress(pace, audio_s=4.0, longest_speech_s=4.0, longest_budget=64, report=shares.append)
    first(1.0, 0)
    for step in range(1, 13):
        first(1.0, step)
    first.learn([ChunkText("text", "English", True, num_tokens=12)], [4.0])
    assert pace.tokens == 12 and pace.speech_s == 4.0
    assert pace.expected_steps(10.0, 136) == 39
    assert pace.prefill_s_per_audio_s is not None and pace.step_s is not None
    assert shares == sorted(shares) and 0 < shares[-1] < 1


def test_the_share_never_goes_back_when_a_row_runs_longer_than_expected():
    pace = RunPace(prefill_s_per_audio_s=0.01, step_s=0.1, tokens=30, speech_s=10.0)
    shares: list[float] = []
    batch = BatchProgress(pace, audio_s=20.0, longest_speech_s=10.0, longest_budget=136, report=shares.append)
    for step in range(0, 137):
        batch(1.0, step)
    assert shares == sorted(shares) and len(set(shares)) == len(shares)
    assert shares[-1] < 1.0  # the batch's end is reported by the pipeline, when the engine returns


def test_the_estimate_falls_steadily_while_the_pace_is_steady():
    """Reports every 1.5 s at 2x real time, polled every 0.25 s: the estimate never grows between or at reports."""
    estimates = []
    for tick in range(1, 240):
        now = tick * 0.25
        reported = (now // 1.5) * 1.5
        snapshot = JobSnapshot(
            JobStatus.RUNNING, processed_s=2.0 * reported, total_s=120.0, elapsed_s=now, reported_s=reported
        )
        if snapshot.remaining_s is not None:
            estimates.append(snapshot.remaining_s)
    assert len(estimates) > 200
    assert all(later <= earlier + 1e-9 for earlier, later in itertools.pairwise(estimates))
    assert estimates[0] == pytest.approx((120 - 3) / 2)  # at the first report: 3 s done at 2x, 117 s to go
