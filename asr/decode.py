"""Greedy decoding with a preallocated static KV cache: our own loop in place of `generate`'s.

`generate` spends most of a decode step on its own bookkeeping (logits processors, stopping criteria,
a cache that grows by concatenation, a host sync every step): 53-65 ms a step on an H200 whatever the
batch size, where the weights alone would allow well under a millisecond. This loop does only what
greedy transcription needs: one prefill through the model's forward into a `StaticCache` sized for the
whole batch, then one-token steps whose argmax stays on the device, with a look at the host (all rows
done?) only every `SYNC_EVERY` steps; `stop` is a host-side flag, read every step. On CUDA the one-token
step can be captured once per batch-size bucket in a CUDA graph and replayed. A one-row decode can be given
the tokens it probably begins with (a live draft's), checked in one pass instead of a step each.

It is a module of its own because it is the one place that knows how `generate` prepares the model's
inputs (position ids from the attention mask, the audio merged only at prefill) and must keep matching
it; `engine.py` keeps loading, device choice and the lock. Like `engine.py` it imports torch and
transformers, and only `engine.py` imports it. `generate` stays the reference (tests compare the two
token for token) and the fallback (the repetition-penalty retry).
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import takewhile
from typing import Protocol

import torch
from transformers import StaticCache
from transformers.modeling_layers import GradientCheckpointingLayer

from .encoder_rows import audio_encoder, encoder_passes
from .progress import EngineProgress

SYNC_EVERY = 8  # steps between looks at the device's "every row done?"
GRAPH_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)
_CACHE_LENGTH_STEP = 128  # graph caches are sized in steps of this, so a slightly longer batch rarely recaptures
_KEPT_CACHE_LENGTH_STEP = 32  # a kept CPU cache: in smaller steps, since each step's positions cost memory


def greedy_decode(
    model: torch.nn.Module,
    inputs: dict[str, torch.Tensor],
    budgets: Sequence[int],
    *,
    eos_ids: Collection[int],
    pad_id: int,
    stop: threading.Event | None = None,
    graphs: StepGraphs | None = None,
    kept_cache: KeptCache | None = None,
    progress: EngineProgress | None = None,
    proposal: Sequence[int] = (),
) -> torch.Tensor:
    """Generate greedily for a left-padded batch; return the new tokens, shape (batch, steps run), on the CPU.

    Row r stops at its first end-of-text token (kept) or after `budgets[r]` tokens; after that its
    places hold `pad_id`, as in `generate`'s output. The loop ends when every row has stopped (seen at
    the next look at the host) or at the first step after `stop` is set (a live draft gives way to a final
    within a step); `stop` set during the prefill ends it before its next layer, with no tokens.
    `progress` hears of the prefill's layers (`prefill_progress`) and of every step; the step count is
    the host's own, so reporting it costs no look at the device. Without graphs, `kept_cache` lends the cache
    of the batch before when it fits.

    `proposal` (a batch of one row, without graphs): the tokens the row is expected to begin with, e.g. a live
    draft's of the same utterance. When the prefill's token is the proposal's first, one pass checks the rest
    (`_EagerStep.verify`), the proposed tokens that the model itself would have written are kept, and the steps
    go on after them: fewer sequential steps when the proposal holds, one pass more when only its start does,
    nothing more when not even its first token does. The prefill is the same as without a proposal, and so is
    every token in float32. In bfloat16 the checking pass rounds a little differently from single steps, so
    where two tokens are all but tied the other may win, as it can for a chunk in a batch.
    """
    rows = inputs["input_ids"].shape[0]
    if graphs is not None:
        inputs, budgets = _pad_rows(inputs, budgets, StepGraphs.bucket(rows))
    input_ids, mask = inputs["input_ids"], inputs["attention_mask"]
    batch, prompt_length = input_ids.shape
    longest = max(budgets)
    device = input_ids.device
    # An end-of-text token ends a proposal: what follows it would never be written. The last place is the model's.
    proposed = list(takewhile(lambda token: token not in eos_ids, proposal)) if rows == 1 and graphs is None else []
    proposed = proposed[: longest - 1]
    # As generate: positions count only real tokens, so a left-padded row starts at 0 like an unpadded one.
    positions = (mask.long().cumsum(-1) - 1).masked_fill(mask == 0, 0)
    step: _Step
    if graphs is not None:
        step = graphs.prepare(model, batch, prompt_length + longest)
    elif kept_cache is not None:
        first_steps = max(_first_cache_steps(longest), len(proposed) + 1)
        step = _EagerStep(model, kept_cache.take(model, batch, prompt_length + first_steps))
    else:
        step = _EagerStep(model, StaticCache(config=model.config, max_cache_len=prompt_length + longest))
    try:
        with prefill_progress(model, progress), _stoppable_prefill(model, stop):
            logits = model(
                **inputs, position_ids=positions, past_key_values=step.cache, use_cache=True, logits_to_keep=1
            ).logits
    except _PrefillStopped:
        return input_ids.new_full((rows, 0), pad_id).cpu()
    next_token = logits[:, -1].argmax(-1)
    del logits
    step.start(mask, positions[:, -1:] + 1)
    held = 0
    if proposed and isinstance(step, _EagerStep) and int(next_token[0]) == proposed[0]:
        held, next_token = step.verify(proposed)

    eos = torch.tensor(sorted(eos_ids), dtype=torch.long, device=device)
    budget = torch.tensor(list(budgets), device=device)
    tokens = torch.full((batch, longest), pad_id, dtype=torch.long, device=device)
    tokens[:, :held] = torch.tensor(proposed[:held], dtype=torch.long, device=device)
    done = torch.zeros(batch, dtype=torch.bool, device=device)
    steps_run = longest
    if held and progress is not None:
        progress(1.0, held)
    for index in range(held, longest):
        token = torch.where(done, pad_id, next_token)
        tokens[:, index] = token
        done |= torch.isin(token, eos) | (budget <= index + 1)
        if progress is not None:
            progress(1.0, index + 1)
        if index + 1 == longest:
            break
        if (stop is not None and stop.is_set()) or (index % SYNC_EVERY == 0 and bool(done.all())):
            steps_run = index + 1
            break
        step.make_room(prompt_length + index + 1, prompt_length + longest)
        next_token = step(token)
    return tokens[:rows, :steps_run].cpu()


def _matching_start(predicted: Sequence[int], proposed: Sequence[int]) -> int:
    """How many proposed tokens, from the first, are the ones the model predicts in their places."""
    pairs = enumerate(zip(predicted, proposed, strict=True))
    return next((place for place, (ours, theirs) in pairs if ours != theirs), len(proposed))


def _forget_last(cache: StaticCache, count: int) -> None:
    """Drop the last `count` positions a static cache holds (rejected proposed tokens): the next step writes
    over them, and the attention masks what lies past the cache's length (`StaticLayer.cumulative_length`,
    which a `StaticCache` has no `crop` to lower)."""
    if count:
        for layer in cache.layers:
            layer.cumulative_length.sub_(count)


def _first_cache_steps(longest: int) -> int:
    """The decode positions a kept CPU cache holds at first: half the longest budget, grown if a row needs more.

    Why: a budget allows 12 tokens a second of speech (+16), real speech needs 3-5, and every position costs
    memory in all rows (229 KB in float32 for the 0.6B model): for 8 rows of 24 s, the half not held is about
    0.28 GB of the batch's peak, which sits beside the prefill's activations. A batch that needs more grows the
    cache once (`_EagerStep.make_room`), and the kept cache keeps that size for the batches after.
    """
    return min(longest, max(_KEPT_CACHE_LENGTH_STEP, -(-longest // 2)))


class _PrefillStopped(Exception):
    """`stop` was set while the prefill ran (raised from a layer's hook, caught in `greedy_decode`)."""


@contextmanager
def _stoppable_prefill(model: torch.nn.Module, stop: threading.Event | None) -> Iterator[None]:
    """Let `stop` end the prefill before any of the model's layers (the audio encoder's and the decoder's).

    Why: the prefill is one forward pass, up to a second for a live draft on two CPU cores. A draft that began
    just as a pause did ran its whole prefill before giving way, and the utterance's final waited for it: in
    `bench/live.py` on an AVX2 host, half the finals started 0.6-1.5 s after their audio had all been heard.
    A layer takes milliseconds. The cache it leaves half written is emptied before its next use.
    """
    if stop is None:
        yield
        return

    def check(*_: object) -> None:
        if stop.is_set():
            raise _PrefillStopped

    layers = [module for module in model.modules() if isinstance(module, GradientCheckpointingLayer)]
    handles = [layer.register_forward_pre_hook(check) for layer in layers]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def prefill_progress(model: torch.nn.Module, progress: EngineProgress | None) -> Iterator[None]:
    """Report the share of the prefill done as it goes: the audio encoder's convolutions and layers, the decoder's.

    The prefill is one forward pass, seconds long on a CPU for a batch of long chunks; its layers are where
    it can be seen to move. The audio encoder runs one row at a time, in pieces of 8 s (`encoder_rows`), so each
    piece's three convolutions and its layers are reports of their own, and the number of pieces is known when
    the encoder is called. Each report counts alike. Only the first pass through the layers counts: in `generate` the
    decoder's layers run again for every step, and those steps are reported as steps. The aligner's one
    forward pass is reported the same way (`aligner.QwenAligner.align`).
    """
    if progress is None:
        yield
        return
    encoder = audio_encoder(model)
    encoder_parts = [
        module for module in encoder.modules() if isinstance(module, GradientCheckpointingLayer | torch.nn.Conv2d)
    ]
    in_encoder = set(encoder.modules())
    decoder_layers = [
        module
        for module in model.modules()
        if isinstance(module, GradientCheckpointingLayer) and module not in in_encoder
    ]
    done, total = 0, len(decoder_layers)

    def passes_known(_module: object, _args: object, kwargs: dict[str, torch.Tensor]) -> None:
        nonlocal total
        if done == 0:
            total = encoder_passes(encoder, kwargs["input_features_mask"]) * len(encoder_parts) + len(decoder_layers)

    def tick(*_: object) -> None:
        nonlocal done
        if done < total:
            done += 1
            progress(done / total, 0)

    handles = [encoder.register_forward_pre_hook(passes_known, with_kwargs=True)]
    handles += [module.register_forward_hook(tick) for module in [*encoder_parts, *decoder_layers]]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _round_up(length: int, step: int) -> int:
    """`length` rounded up to a multiple of `step` (a kept cache's or a graph's positions)."""
    return -(-length // step) * step


def _pad_rows(
    inputs: dict[str, torch.Tensor], budgets: Sequence[int], rows: int
) -> tuple[dict[str, torch.Tensor], list[int]]:
    """Fill a batch up to `rows` with copies of its last row (a graph's batch size is fixed)."""
    extra = rows - len(budgets)
    padded = {name: torch.cat([value, value[-1:].expand(extra, *value.shape[1:])]) for name, value in inputs.items()}
    return padded, [*budgets, *[budgets[-1]] * extra]


class _Step(Protocol):
    """One-token decode steps over a prefilled cache: eager forward calls, or a CUDA graph's replays."""

    @property
    def cache(self) -> StaticCache: ...

    def start(self, prompt_mask: torch.Tensor, next_position: torch.Tensor) -> None: ...

    def make_room(self, positions: int, most: int) -> None: ...

    def __call__(self, token: torch.Tensor) -> torch.Tensor: ...


class KeptCache:
    """One static cache kept from batch to batch (the CPU's eager steps), emptied in place for the next.

    Why: a batch of 8's cache is about 0.55 GB, and allocating it and faulting its pages in took 0.26-0.36 s on
    the 2-core CPU, once per batch; emptying a kept one took 0.03 s. A 30-minute file has 11 batches of 8, and
    live dictation decodes one row after another. Only one cache is kept, and it is let go before a cache of
    another shape is made, so the peak is that of one cache, as before; it is sized in steps of
    `_KEPT_CACHE_LENGTH_STEP` positions, so a batch a few tokens longer still fits. Masked and future positions
    never reach the attention, so what an earlier batch left there cannot change a result; the reset is kept
    anyway, so no stale value can ever be read.
    """

    def __init__(self) -> None:
        self._cache: StaticCache | None = None
        self._rows = 0

    def take(self, model: torch.nn.Module, rows: int, length: int) -> StaticCache:
        """A cache for `rows` rows of at least `length` positions: the kept one, emptied, when it fits."""
        cache = self._cache
        if cache is not None and self._rows == rows and cache.layers[0].max_cache_len >= length:
            cache.reset()
            return cache
        self.release()  # a StaticCache fills its tensors at the prefill: by then nothing holds the old one
        length = _round_up(length, _KEPT_CACHE_LENGTH_STEP)
        self._cache, self._rows = StaticCache(config=model.config, max_cache_len=length), rows
        return self._cache

    def release(self) -> None:
        """Let the kept cache go (out of memory: the smaller retry needs the room)."""
        self._cache, self._rows = None, 0


class _EagerStep:
    """One-token steps through the model's forward (CPU, MPS, or CUDA without graphs)."""

    def __init__(self, model: torch.nn.Module, cache: StaticCache) -> None:
        self._model = model
        self._cache = cache

    @property
    def cache(self) -> StaticCache:
        return self._cache

    def start(self, prompt_mask: torch.Tensor, next_position: torch.Tensor) -> None:
        """Take the batch's padding mask (extended to the cache's length) and its first decode position."""
        batch, prompt_length = prompt_mask.shape
        padding = prompt_mask.new_ones(batch, self._cache.layers[0].max_cache_len - prompt_length)
        self._mask = torch.cat([prompt_mask, padding], dim=1).bool()  # bool: what the mask code wants each step
        self._position = next_position

    def make_room(self, positions: int, most: int) -> None:
        """Grow the cache to `most` positions when the next step needs more than `positions - 1` (see
        `_first_cache_steps`): layer by layer, so the copy costs one layer's tensors beside the cache."""
        length = self._cache.layers[0].max_cache_len
        if positions <= length:
            return
        most = _round_up(most, _KEPT_CACHE_LENGTH_STEP)
        for layer in self._cache.layers:
            for name in ("keys", "values"):
                old = getattr(layer, name)
                grown = old.new_zeros((*old.shape[:2], most, old.shape[3]))
                grown[:, :, :length] = old
                setattr(layer, name, grown)
                del old
            layer.max_cache_len = most
        self._mask = torch.cat([self._mask, self._mask.new_ones(self._mask.shape[0], most - length)], dim=1)

    def verify(self, proposed: Sequence[int]) -> tuple[int, torch.Tensor]:
        """Run a one-row proposal, whose first token is the next one, through in one pass from the next position;
        keep the leading tokens the model predicts itself: return how many, and the model's token after them."""
        position = self._position + torch.arange(len(proposed), device=self._position.device)
        logits = self._model(
            input_ids=torch.tensor([list(proposed)], device=self._position.device),
            position_ids=position,
            attention_mask=self._mask,
            past_key_values=self.cache,
            use_cache=True,
        ).logits
        predicted = logits[0].argmax(-1)  # the token after each proposed one
        held = 1 + _matching_start(predicted[:-1].tolist(), proposed[1:])
        _forget_last(self._cache, len(proposed) - held)
        self._position = self._position + held
        return held, predicted[held - 1 : held]

    def __call__(self, token: torch.Tensor) -> torch.Tensor:
        logits = self._model(
            input_ids=token[:, None],
            position_ids=self._position,
            attention_mask=self._mask,
            past_key_values=self.cache,
            use_cache=True,
        ).logits
        self._position = self._position + 1
        return logits[:, -1].argmax(-1)


@dataclass
class _Graph:
    """One captured one-token step and the fixed buffers it reads and writes."""

    cache: StaticCache
    graph: torch.cuda.CUDAGraph
    token: torch.Tensor  # (bucket, 1) input of the step
    position: torch.Tensor  # (bucket, 1)
    mask: torch.Tensor  # (bucket, cache length) padding mask
    next_token: torch.Tensor  # (bucket,) output of the step


class StepGraphs:
    """CUDA graphs of the one-token step, one per batch-size bucket, kept for reuse.

    A graph replays fixed kernels on fixed memory, so the cache and the step's inputs live in buffers that
    belong to the graph; a batch smaller than its bucket is padded with copies of its last row, and the
    cache is reset in place before each batch. A batch that needs a longer cache than its bucket's graph
    has replaces that graph (one cache per bucket stays in memory). Capturing costs a warm-up step.
    """

    def __init__(self) -> None:
        self._graphs: dict[int, _Graph] = {}
        self._current: _Graph | None = None

    @staticmethod
    def bucket(batch: int) -> int:
        """The smallest graph batch size that holds `batch` rows."""
        return next((size for size in GRAPH_BATCH_BUCKETS if size >= batch), batch)

    def prepare(self, model: torch.nn.Module, batch: int, length: int) -> StepGraphs:
        """Pick (capturing it when needed) the graph for a batch of a bucket's size; its cache is emptied."""
        graph = self._graphs.get(batch)
        if graph is None or graph.mask.shape[1] < length:
            self._graphs.pop(batch, None)
            del graph
            self._graphs[batch] = _capture(model, batch, _round_up(length, _CACHE_LENGTH_STEP))
        self._current = self._graphs[batch]
        self._current.cache.reset()
        return self

    @property
    def _prepared(self) -> _Graph:
        if self._current is None:
            raise RuntimeError("StepGraphs.prepare() must be called before the graphs step")
        return self._current

    @property
    def cache(self) -> StaticCache:
        return self._prepared.cache

    def start(self, prompt_mask: torch.Tensor, next_position: torch.Tensor) -> None:
        """Copy the batch's padding mask and first decode position into the graph's buffers (the graph's
        mask already spans its cache's length)."""
        current = self._prepared
        current.mask.fill_(True)
        current.mask[:, : prompt_mask.shape[1]] = prompt_mask.bool()
        current.position.copy_(next_position)

    def make_room(self, positions: int, most: int) -> None:
        """Nothing to do: a graph's cache already holds the batch's longest budget (`prepare`)."""

    def __call__(self, token: torch.Tensor) -> torch.Tensor:
        current = self._prepared
        current.token.copy_(token[:, None])
        current.graph.replay()
        current.position.add_(1)
        return current.next_token.clone()


def _capture(model: torch.nn.Module, bucket: int, length: int) -> _Graph:
    """Warm up and capture the one-token step for `bucket` rows and a cache of `length` positions."""
    device = model.device
    cache = StaticCache(config=model.config, max_cache_len=length)
    token = torch.zeros(bucket, 1, dtype=torch.long, device=device)
    position = torch.zeros(bucket, 1, dtype=torch.long, device=device)
    mask = torch.ones(bucket, length, dtype=torch.bool, device=device)
    next_token = torch.zeros(bucket, dtype=torch.long, device=device)

    def step() -> None:
        logits = model(
            input_ids=token, position_ids=position, attention_mask=mask, past_key_values=cache, use_cache=True
        ).logits
        next_token.copy_(logits[:, -1].argmax(-1))

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        step()  # allocates the cache and selects kernels outside the capture
    torch.cuda.current_stream().wait_stream(side)
    cache.reset()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()
    cache.reset()
    return _Graph(cache, graph, token, position, mask, next_token)
