"""Progress that moves: reports inside a batch (prefill layers, decode steps, the aligner's layers), the passes
that transcribe nothing (speakers, the rest's speech scan) as stages, and an estimate that falls steadily.

The real engine on the tiny checkpoint, with both decoders (our loop and transformers' generate): the tiny model
never says end-of-text, so each batch runs to its longest budget and its steps can be counted. The real tiny
aligner, Silero VAD and CAM++ for the stages.
"""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest
from transformers.modeling_layers import GradientCheckpointingLayer

import asr
from asr.jobs import JobSnapshot, JobStatus
from asr.progress import BatchProgress, RunPace, RunProgress
from asr.results import ChunkText
from testbed.conversations import conversation
from testbed.speech import SENTENCES, speech_with_pauses

Event = tuple  # ("processed", seconds) or (stage, share), in the order they came


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
    first, batch, *retries = recording.batches
    # Random weights may loop on a chunk, which the guard decodes again on its own (a one-row call, reported
    # as done already): which chunk does depends on the dtype the CPU gets, so only their shape is checked.
    assert all(retry["rows"] == 1 and not retry["calls"] for retry in retries), retries
    assert batch["rows"] == 3
    calls = batch["calls"]
    prefill = [share for share, steps in calls if steps == 0]
    steps = [steps for _, steps in calls if steps > 0]
    parts = len(prefill)  # each row's three convolutions and encoder layers, then the decoder's layers
    assert parts >= 7 and prefill == [done / parts for done in range(1, parts + 1)]  # one by one, once
    assert steps == list(range(1, batch["budget"] + 1))  # every step, up to the longest budget
    # The processed seconds move on through the batch, from the first chunk's end towards the batch's end.
    inside = batch["reports"]
    assert len(inside) >= batch["budget"] // 2
    assert inside == sorted(inside) and len(set(inside)) == len(inside)
    first_end, batch_end = max(first["reports"]), reports[-1]
    assert first_end < inside[0] and inside[-1] <= batch_end == info.duration_s
    assert reports == sorted(reports)


def test_the_encoder_runs_row_by_row_with_the_batch_s_output_and_reports_each_row(tiny_model_dir):
    """Rows of 9, 5 and 2 s: the audio encoder run one row at a time, each cut to its own windows and in pieces of
    8 s, gives the logits of transformers' encoder over the whole padded batch; the padding windows are never
    computed; with progress on, each piece's three convolutions and its layers are reports, then the decoder's."""
    import torch

    from asr.decode import prefill_progress
    from asr.encoder_rows import audio_encoder

    engine = asr.QwenEngine.load(str(tiny_model_dir), device="cpu", dtype="float32")
    model = engine._model
    encoder = audio_encoder(model)
    speech = np.resize(speech_with_pauses(SENTENCES[:2], (1.0,))[0], 16 * 16000)
    waves = [speech[: 9 * 16000], speech[9 * 16000 : 14 * 16000], speech[14 * 16000 :]]
    inputs = engine._processor.apply_transcription_request(audio=waves, language=None, prompt=None)
    windows_seen: list[int] = []
    watch = encoder.conv2d1.register_forward_hook(lambda _m, args, _o: windows_seen.append(args[0].shape[0]))
    with torch.inference_mode():
        rows_apart = encoder.forward
        del encoder.forward  # transformers' own, for the reference
        expected = model(**inputs).logits
        encoder.forward = rows_apart
        got = model(**inputs).logits
        shares: list[float] = []
        with prefill_progress(model, lambda share, steps: shares.append(share)):
            reported = model(**inputs).logits
    watch.remove()
    window = encoder.n_window * 2
    mask = inputs["input_features_mask"]
    padded_windows = mask.shape[-1] // window
    own_windows = [-(-int(row.sum()) // window) for row in mask]
    assert own_windows[0] == 9 and encoder.n_window_infer == 8 * window  # the 9 s row: a piece of 8 s, one of 1 s
    pieces = [8, 1, *own_windows[1:]]
    assert windows_seen == [3 * padded_windows, *pieces, *pieces] and own_windows[2] < padded_windows
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    assert torch.equal(reported, got)
    layers = sum(isinstance(m, GradientCheckpointingLayer) for m in model.modules())
    decoder_layers = layers - len(encoder.layers)
    assert len(shares) == decoder_layers + 4 * (len(encoder.layers) + 3)  # each piece: three convolutions, its layers
    assert shares == [done / len(shares) for done in range(1, len(shares) + 1)]


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


def _recorders(events: list[Event]):
    """A run's two progress callbacks, writing one timeline."""
    return (
        lambda done, total: events.append(("processed", done)),
        lambda stage, share: events.append((stage, share)),
    )


def _passes(events: list[Event], stage: asr.Stage) -> list[list[int]]:
    """The positions in `events` of each pass of `stage`: from its 0 to its 1."""
    passes: list[list[int]] = []
    for index, event in enumerate(events):
        if event[0] is stage:
            if event[1] == 0.0:
                passes.append([])
            passes[-1].append(index)
    return passes


def _processed(events: list[Event]) -> list[float]:
    return [event[1] for event in events if event[0] == "processed"]


def test_the_speech_scan_of_the_rest_reports_its_share_between_the_first_words_and_the_rest(engine, four_sentences):
    events: list[Event] = []
    progress, stage = _recorders(events)
    segments, _ = asr.transcribe(four_sentences, engine=engine, progress=progress, stage=stage)
    assert _passes(events, asr.Stage.SPEECH) == []  # the first words are out; the rest is scanned as it is read
    list(segments)
    (scan,) = _passes(events, asr.Stage.SPEECH)
    shares = [events[index][1] for index in scan]
    assert shares[-1] == 1.0 and shares == sorted(shares) and len(set(shares)) >= 5  # it moves, and ends
    assert scan == list(range(scan[0], scan[-1] + 1))  # one pass, nothing else meanwhile
    before, after = _processed(events[: scan[0]]), _processed(events[scan[-1] + 1 :])
    assert before and after and max(before) <= min(after)  # after the first chunk, before the rest's batch


def test_the_word_times_pass_reports_its_layers_and_moves_the_processed_seconds(engine, aligner, four_sentences):
    events: list[Event] = []
    progress, stage = _recorders(events)
    options = asr.TranscribeOptions(decode=asr.DecodeOptions(language="English"))  # a language it can time
    segments, _ = asr.transcribe(
        four_sentences, engine=engine, options=options, aligner=aligner, progress=progress, stage=stage
    )
    transcript = list(segments)
    assert transcript and all(s.words and asr.SegmentFlag.APPROXIMATE_TIMES not in s.flags for s in transcript)
    passes = _passes(events, asr.Stage.WORD_TIMES)
    assert len(passes) == 2  # the first chunk, then the batch of three
    for positions in passes:
        shares = [events[index][1] for index in positions]
        assert shares[-1] == 1.0 and shares == sorted(shares)
        assert len(set(shares)) >= 4  # the tiny aligner's layers: two of its audio encoder, two of its decoder
        # Meanwhile the processed seconds move on through the batch's share kept for its word times.
        before = _processed(events[: positions[0]])
        inside = _processed(events[positions[0] : positions[-1] + 1])
        assert len(set(inside)) >= 3 and inside == sorted(inside) and max(before) < inside[0]
    assert _processed(events) == sorted(_processed(events))


@pytest.mark.slow
def test_finding_speakers_reports_its_share_before_the_first_words(engine):
    events: list[Event] = []
    progress, stage = _recorders(events)
    options = asr.TranscribeOptions(speakers=asr.SpeakerOptions())
    segments, info = asr.transcribe(
        conversation("short_two").samples, engine=engine, options=options, progress=progress, stage=stage
    )
    list(segments)
    assert info.speaker_turns
    (found,) = _passes(events, asr.Stage.SPEAKERS)
    shares = [events[index][1] for index in found]
    assert shares[-1] == 1.0 and shares == sorted(shares)
    assert len(set(shares)) >= 8  # the speech scan, each span's features, the embeddings
    assert set(_processed(events[: found[-1]])) == {0.0}  # nothing is transcribed before the speakers are known


def test_the_aligner_takes_the_batch_s_last_share_and_the_next_batch_keeps_what_it_cost():
    """Generation takes the batch to 1 - align_share, the aligner on to 1; its measured share of the batch's time
    is the next batch's (here 0.2 s each: about half)."""
    run = RunProgress(lambda done, total: None, 10 * asr.SAMPLE_RATE, aligned=True)
    shares: list[float] = []
    word_times: list[float] = []
    batch = BatchProgress(run.pace, 4.0, 4.0, 10, shares.append, align_share=0.3, word_times=word_times.append)
    for step in range(11):
        batch(1.0, step)
    time.sleep(0.2)
    assert 0 < shares[-1] < 0.7
    batch.learn([ChunkText("text", "English", True, num_tokens=10)], [4.0])
    for share in (0.0, 0.5):
        batch.aligning(share)
    time.sleep(0.2)
    batch.aligning(1.0)
    assert shares[-3:] == pytest.approx([0.7, 0.85, 1.0]) and word_times == [0.0, 0.5, 1.0]
    assert run.pace.align_share == pytest.approx(0.5, abs=0.25)
    following = run.batch(5 * asr.SAMPLE_RATE, 4.0, [4.0], [10])
    assert following is not None and following.align_share == run.pace.align_share
