"""Our static-cache decode loop against transformers' `generate`, token for token, on the tiny checkpoint.

Both run the real model in float32 on the CPU, where they must agree exactly. The random weights never
produce an end-of-text token by themselves, so the tests that need rows to end early name a token the
model does produce as end-of-text, for both sides alike.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoProcessor, Qwen3ASRForConditionalGeneration
from transformers.modeling_layers import GradientCheckpointingLayer

import asr
from asr.decode import SYNC_EVERY, KeptCache, StepGraphs, _pad_rows, greedy_decode
from asr.encoder_rows import audio_encoder
from asr.engine import QwenEngine
from testbed.speech import SENTENCES, speak


@pytest.fixture(scope="module")
def model_and_processor(tiny_model_dir):
    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    model = Qwen3ASRForConditionalGeneration.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    return model, processor


def spoken(texts: tuple[str, ...]) -> list[np.ndarray]:
    """espeak-ng speech; on the GPU machine, which has no espeak-ng, the same sentences from the file that
    `bench/gpu_check.sh prepare` voiced here (it names the file in ASR_TEST_VOICED)."""
    cached = os.environ.get("ASR_TEST_VOICED")
    if not cached:
        return [speak(text) for text in texts]
    from testbed.voiced import voiced_sentences

    voiced = voiced_sentences(Path(cached))
    return [voiced[text] for text in texts]


@pytest.fixture(scope="module")
def clips() -> list[np.ndarray]:
    """Eight clips of different lengths, so that a batch's prompts are left-padded by different amounts."""
    spoken_clips = spoken(SENTENCES[:4])
    return [*spoken_clips, *(clip[: len(clip) // 2] for clip in spoken_clips)]


def _inputs(processor, clips, language, context):
    return processor.apply_transcription_request(audio=list(clips), language=language, prompt=context or None)


def _generate(model, inputs, budgets):
    out = model.generate(**inputs, max_new_tokens=max(budgets), do_sample=False)
    return out[:, inputs["input_ids"].shape[1] :]


def _rows(tokens: torch.Tensor, budgets, eos_ids) -> list[list[int]]:
    """Each row cut to its own budget and just after its first end-of-text token."""
    rows = []
    for row, budget in zip(tokens.tolist(), budgets, strict=True):
        row = row[:budget]
        ends = [i for i, token in enumerate(row) if token in eos_ids]
        rows.append(row[: ends[0] + 1] if ends else row)
    return rows


def _loop(model, inputs, budgets, eos_ids, stop=None):
    pad = model.generation_config.pad_token_id
    return greedy_decode(model, inputs, budgets, eos_ids=eos_ids, pad_id=pad, stop=stop)


@pytest.mark.parametrize(
    ("batch", "language", "context"),
    [
        (1, "English", ""),
        (1, None, ""),
        (3, "English", "Stella, Tuesday, budget"),
        (3, None, ""),
        (8, None, "Stella, Tuesday, budget"),
        (8, "German", ""),
    ],
)
def test_loop_gives_generates_tokens(model_and_processor, clips, batch, language, context):
    model, processor = model_and_processor
    budgets = [5 + 7 * (i % 4) for i in range(batch)]  # ragged: 5, 12, 19, 26, ...
    inputs = _inputs(processor, clips[:batch], language, context)
    eos_ids = set(model.generation_config.eos_token_id)
    with torch.inference_mode():
        reference = _rows(_generate(model, inputs, budgets), budgets, eos_ids)
        ours = _loop(model, inputs, budgets, eos_ids)
    assert _rows(ours, budgets, eos_ids) == reference
    assert [len(row) for row in reference] == budgets  # random weights never end by themselves
    assert ours.shape[1] == max(budgets)
    for row, budget in zip(ours.tolist(), budgets, strict=True):  # after its budget a row holds padding
        assert set(row[budget:]) <= {model.generation_config.pad_token_id}


def test_rows_stop_at_their_own_end_of_text(model_and_processor, clips, monkeypatch):
    model, processor = model_and_processor
    budgets = [30, 30, 30]
    inputs = _inputs(processor, clips[:3], "English", "")
    with torch.inference_mode():
        free_run = _generate(model, inputs, budgets)
    # A token that row 1 produces and row 0 never does becomes end-of-text for both sides.
    row_0, row_1 = free_run[0].tolist(), free_run[1].tolist()
    (token, *_) = [token for token in row_1 if token not in row_0]
    eos_ids = {*model.generation_config.eos_token_id, token}
    monkeypatch.setattr(model.generation_config, "eos_token_id", sorted(eos_ids))
    with torch.inference_mode():
        reference = _rows(_generate(model, inputs, budgets), budgets, eos_ids)
        ours = _loop(model, inputs, budgets, eos_ids)
    assert _rows(ours, budgets, eos_ids) == reference
    assert len(reference[1]) < len(reference[0]) == 30


def test_loop_ends_when_every_row_has_ended(model_and_processor, clips, monkeypatch):
    model, processor = model_and_processor
    inputs = _inputs(processor, clips[:1], "English", "")
    with torch.inference_mode():
        first = int(_generate(model, inputs, [1])[0, 0])
        ours = _loop(model, inputs, [200], {first})
    assert ours[0, 0] == first
    assert ours.shape[1] == 1  # seen at step 0, the first look at the host: no further steps run


class _SetOnLook(threading.Event):
    """A real Event that becomes set at the n-th time someone looks at it: a cancel pressed mid-way."""

    def __init__(self, looks: int) -> None:
        super().__init__()
        self._looks = looks

    def is_set(self) -> bool:
        self._looks -= 1
        if self._looks <= 0:
            self.set()
        return super().is_set()


def test_cancel_mid_way_keeps_generates_tokens_so_far(model_and_processor, clips):
    model, processor = model_and_processor
    budgets = [40, 25, 40]
    inputs = _inputs(processor, clips[:3], None, "")
    eos_ids = set(model.generation_config.eos_token_id)
    prefill_looks = len(_layers(model))  # the prefill looks before each layer (`_stoppable_prefill`)
    stop = _SetOnLook(prefill_looks + 11)  # looked at every step, not only every SYNC_EVERY: step 10's look sets it
    with torch.inference_mode():
        ours = _loop(model, inputs, budgets, eos_ids, stop=stop)
        full = _rows(_generate(model, inputs, budgets), budgets, eos_ids)
    steps = 11
    assert steps % SYNC_EVERY != 1  # a stop seen between the loop's looks at the device
    assert stop.is_set() and ours.shape[1] == steps
    assert _rows(ours, budgets, eos_ids) == [row[:steps] for row in full]


def _layers(model) -> list[torch.nn.Module]:
    return [module for module in model.modules() if isinstance(module, GradientCheckpointingLayer)]


def test_a_stop_during_the_prefill_ends_it_before_the_next_layer(model_and_processor, clips):
    """A live draft gives way to its utterance's final within a layer of its prefill, not after the whole pass;
    the kept cache it left half written then serves the next batch with generate's tokens."""
    model, processor = model_and_processor
    eos_ids = set(model.generation_config.eos_token_id)
    pad = model.generation_config.pad_token_id
    in_encoder = set(audio_encoder(model).modules())
    layers = _layers(model)
    first_decoder_layer = next(layer for layer in layers if layer not in in_encoder)
    stop, ran = threading.Event(), []
    handles = [layer.register_forward_hook(lambda *_: ran.append(1)) for layer in layers]
    handles.append(first_decoder_layer.register_forward_hook(lambda *_: stop.set()))
    inputs = _inputs(processor, clips[:3], None, "")
    budgets = [12, 5, 20]
    kept = KeptCache()
    try:
        with torch.inference_mode():
            stopped = greedy_decode(model, inputs, budgets, eos_ids=eos_ids, pad_id=pad, stop=stop, kept_cache=kept)
    finally:
        for handle in handles:
            handle.remove()
    assert stopped.shape == (3, 0)
    assert len(ran) == len(in_encoder & set(layers)) + 1  # the encoder's layers and the decoder's first
    with torch.inference_mode():
        ours = greedy_decode(model, inputs, budgets, eos_ids=eos_ids, pad_id=pad, kept_cache=kept)
        reference = _rows(_generate(model, inputs, budgets), budgets, eos_ids)
    assert _rows(ours, budgets, eos_ids) == reference


def test_a_kept_cache_serves_the_next_batch_of_its_shape_with_the_same_tokens(model_and_processor, clips):
    """The CPU keeps one static cache from batch to batch (asr/decode.py's `KeptCache`): a batch decoded in the
    cache that a longer batch filled gives generate's tokens; a batch of another size gets a cache of its own."""
    model, processor = model_and_processor
    eos_ids = set(model.generation_config.eos_token_id)
    pad = model.generation_config.pad_token_id
    kept = KeptCache()
    longer = _inputs(processor, clips[:3], None, "")
    shorter = _inputs(processor, clips[4:7], "English", "")  # halves of the clips: shorter prompts
    budgets = [12, 5, 20]
    assert shorter["input_ids"].shape[1] < longer["input_ids"].shape[1]
    with torch.inference_mode():
        greedy_decode(model, longer, [30, 30, 30], eos_ids=eos_ids, pad_id=pad, kept_cache=kept)
        filled = kept._cache
        ours = greedy_decode(model, shorter, budgets, eos_ids=eos_ids, pad_id=pad, kept_cache=kept)
        assert kept._cache is filled
        reference = _rows(_generate(model, shorter, budgets), budgets, eos_ids)
        greedy_decode(
            model, _inputs(processor, clips[:2], None, ""), [5, 5], eos_ids=eos_ids, pad_id=pad, kept_cache=kept
        )
    assert _rows(ours, budgets, eos_ids) == reference
    assert kept._cache is not filled and kept._rows == 2


def test_engine_uses_the_loop_and_generate_alike(tiny_model_dir, clips):
    """Through the engine's own path: the loop (the CPU's default) and generate give the same texts."""
    loop = QwenEngine.load(str(tiny_model_dir), device="cpu", dtype="float32")
    reference = QwenEngine.load(str(tiny_model_dir), device="cpu", dtype="float32", decoder="generate")
    assert (loop._decoder, reference._decoder) == ("loop", "generate")
    budgets = [6, 20, 13]
    for engine_ in (loop, reference):
        assert engine_.default_batch_size == 8
    ours = loop.transcribe_chunks(clips[:3], language=None, context="", max_new_tokens=budgets)
    theirs = reference.transcribe_chunks(clips[:3], language=None, context="", max_new_tokens=budgets)
    assert ours == theirs
    assert [r.num_tokens for r in ours] == budgets


def test_unknown_decoder_or_graphs_without_the_loop_are_refused(tiny_model_dir):
    with pytest.raises(asr.OptionsError, match="Unknown decoder 'beam'; use one of auto, generate, loop"):
        QwenEngine.load(str(tiny_model_dir), device="cpu", decoder="beam")
    with pytest.raises(asr.OptionsError, match='use them with decoder="loop"'):
        QwenEngine.load(str(tiny_model_dir), device="cpu", cuda_graphs=True)


def test_rows_that_fill_a_graph_bucket_change_no_other_row(model_and_processor, clips):
    """A CUDA graph's batch size is fixed, so a batch of 3 runs as 4 with its last row copied (asr/decode.py)."""
    model, processor = model_and_processor
    budgets = [9, 14, 5]
    inputs = _inputs(processor, clips[:3], None, "")
    eos_ids = set(model.generation_config.eos_token_id)
    padded, padded_budgets = _pad_rows(inputs, budgets, StepGraphs.bucket(3))
    assert padded["input_features"].shape[0] == 4 and padded_budgets == [9, 14, 5, 5]
    with torch.inference_mode():
        ours = _loop(model, padded, padded_budgets, eos_ids)
    assert torch.equal(ours[:3], _loop(model, inputs, budgets, eos_ids))


def test_graph_buckets():
    assert [StepGraphs.bucket(n) for n in (1, 2, 3, 5, 8, 9, 33, 64, 65)] == [1, 2, 4, 8, 8, 16, 64, 64, 65]


@pytest.mark.cuda
@pytest.mark.parametrize("graphs", [False, True])
def test_loop_gives_generates_tokens_on_cuda(tiny_model_dir, clips, graphs):
    """On a GPU in float32: the loop, with and without CUDA graphs, equals generate for ragged batches."""
    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    model = Qwen3ASRForConditionalGeneration.from_pretrained(tiny_model_dir, dtype=torch.float32).to("cuda").eval()
    eos_ids = set(model.generation_config.eos_token_id)
    step_graphs = StepGraphs() if graphs else None
    for batch in (1, 3, 8):
        budgets = [5 + 7 * (i % 4) for i in range(batch)]
        inputs = _inputs(processor, clips[:batch], None, "Stella").to("cuda")
        with torch.inference_mode():
            reference = _rows(_generate(model, inputs, budgets), budgets, eos_ids)
            pad = model.generation_config.pad_token_id
            ours = greedy_decode(model, inputs, budgets, eos_ids=eos_ids, pad_id=pad, graphs=step_graphs)
        assert _rows(ours, budgets, eos_ids) == reference


def test_a_kept_cache_grows_when_a_batch_outlives_its_first_size_with_the_same_tokens(model_and_processor, clips):
    """A kept CPU cache starts at half the longest budget (`_first_cache_steps`); rows that run on past it (the
    random weights never end by themselves) grow it mid-decode, and still give generate's tokens; the kept
    cache keeps its grown size for the batch after."""
    model, processor = model_and_processor
    eos_ids = set(model.generation_config.eos_token_id)
    pad = model.generation_config.pad_token_id
    kept = KeptCache()
    inputs = _inputs(processor, clips[:3], None, "")
    prompt = inputs["input_ids"].shape[1]
    budgets = [40, 90, 150]
    with torch.inference_mode():
        first = kept.take(model, 3, prompt + 75).layers[0].max_cache_len  # what the decode takes: half of 150
        ours = greedy_decode(model, inputs, budgets, eos_ids=eos_ids, pad_id=pad, kept_cache=kept)
        reference = _rows(_generate(model, inputs, budgets), budgets, eos_ids)
    assert kept._cache is not None
    assert first < prompt + 150 <= kept._cache.layers[0].max_cache_len
    assert _rows(ours, budgets, eos_ids) == reference and [len(row) for row in reference] == budgets


def _decode_counting_passes(model, inputs, budgets, eos_ids, **kwargs) -> tuple[torch.Tensor, int]:
    """The loop's tokens, and how many forward passes it made (the prefill and each step)."""
    passes = 0

    def count(*_: object) -> None:
        nonlocal passes
        passes += 1

    handle = model.register_forward_pre_hook(count)
    try:
        pad = model.generation_config.pad_token_id
        tokens = greedy_decode(model, inputs, budgets, eos_ids=eos_ids, pad_id=pad, **kwargs)
    finally:
        handle.remove()
    return tokens, passes


@pytest.mark.parametrize("kept", [False, True])
def test_a_proposal_gives_the_same_tokens_in_fewer_steps_whether_it_holds_or_not(model_and_processor, clips, kept):
    """A live draft's tokens proposed to its final (`proposal`): the tokens are generate's whatever the proposal
    says, and each proposed token that holds saves a step, for one checking pass when the first holds. A proposal
    right for 12 tokens and then wrong leaves 8 rejected positions in the cache, which the steps after must
    neither see nor be confused by."""
    model, processor = model_and_processor
    eos_ids = set(model.generation_config.eos_token_id)
    inputs = _inputs(processor, clips[:1], "English", "")
    budget = 30
    with torch.inference_mode():
        reference = _rows(_generate(model, inputs, [budget]), [budget], eos_ids)[0]
    assert len(reference) == budget
    vocabulary = model.config.text_config.vocab_size

    def wrong(place: int) -> int:
        return (reference[place] + 1) % vocabulary

    cases = {  # proposal: the proposed tokens that hold
        tuple(reference): budget - 1,  # the last place is always the model's own
        tuple(reference[:12]) + tuple(wrong(i) for i in range(12, 20)): 12,
        tuple(reference[:1]) + tuple(wrong(i) for i in range(1, 10)): 1,
        tuple(wrong(i) for i in range(10)): 0,
        tuple(reference[:5]) + tuple(sorted(eos_ids))[:1] + tuple(reference[6:]): 5,  # ends at end-of-text
    }
    cache = KeptCache() if kept else None
    with torch.inference_mode():
        if cache is not None:  # filled by a longer batch first: what it left must not matter either
            greedy_decode(
                model, _inputs(processor, clips[:1], None, ""), [60], eos_ids=eos_ids, pad_id=0, kept_cache=cache
            )
        _, plain_passes = _decode_counting_passes(model, inputs, [budget], eos_ids, kept_cache=cache)
        assert plain_passes == budget  # the prefill writes the first token, each step one more
        for proposal, holding in cases.items():
            ours, passes = _decode_counting_passes(
                model, inputs, [budget], eos_ids, kept_cache=cache, proposal=proposal
            )
            assert _rows(ours, [budget], eos_ids)[0] == reference, proposal
            checking_pass = 1 if holding else 0  # no check when not even the first token holds
            assert passes == budget - holding + checking_pass, proposal


def test_a_proposal_is_left_out_of_a_batch(model_and_processor, clips):
    """A proposal belongs to one row: given for a batch it is not used, and the batch's tokens are generate's."""
    model, processor = model_and_processor
    eos_ids = set(model.generation_config.eos_token_id)
    inputs = _inputs(processor, clips[:2], "English", "")
    budgets = [10, 10]
    with torch.inference_mode():
        reference = _rows(_generate(model, inputs, budgets), budgets, eos_ids)
        ours, passes = _decode_counting_passes(model, inputs, budgets, eos_ids, proposal=reference[0])
    assert _rows(ours, budgets, eos_ids) == reference
    assert passes == 10
