"""The oneDNN layouts: linear layers with the same products as `nn.Linear`, shared weights kept shared; the audio
encoder's convolutions channels-last with the same outputs; and the engine and the aligner use both."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest
import torch
from torch import nn
from transformers import Qwen3ASRForConditionalGeneration

from asr.cpu_layout import OneDNNLinear, use_channels_last_convolutions, use_onednn_linears
from asr.device import cpu_has_fast_bfloat16
from asr.encoder_rows import audio_encoder

X86 = platform.machine().lower() in ("x86_64", "amd64")
needs_x86 = pytest.mark.skipif(not X86, reason="the oneDNN swap is only made on x86 CPUs")
needs_native_bfloat16 = pytest.mark.skipif(
    not (X86 and cpu_has_fast_bfloat16()),
    reason="bfloat16 layers are prepacked only where oneDNN computes bfloat16 natively (AVX-512 or AVX-NE-CONVERT)",
)


class _TiedHead(nn.Module):
    """A vocabulary embedding and an output head sharing one matrix, as Qwen3-ASR-0.6B's are."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(50, 16)
        self.mlp = nn.Sequential(nn.Linear(16, 32), nn.GELU(), nn.Linear(32, 16, bias=False))
        self.head = nn.Linear(16, 50, bias=False)
        self.head.weight = self.embed.weight

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.mlp(self.embed(tokens)))


def test_only_float32_layers_and_natively_computed_bfloat16_ones_on_an_x86_cpu_are_replaced():
    """On an AVX2-only CPU prepacking a bfloat16 weight raises, so bfloat16 layers stay as they are there."""
    assert use_onednn_linears(_TiedHead().eval()) == (3 if X86 else 0)
    bfloat16 = _TiedHead().to(torch.bfloat16)
    assert use_onednn_linears(bfloat16) == (3 if X86 and cpu_has_fast_bfloat16() else 0)
    with torch.inference_mode():
        assert bfloat16(torch.tensor([[1, 2]])).shape == (1, 2, 50)  # runs either way
    assert use_onednn_linears(_TiedHead().to(torch.float16)) == 0
    assert use_onednn_linears(_TiedHead().to("meta")) == 0
    kept = _TiedHead().to(torch.float16)
    use_onednn_linears(kept)
    assert isinstance(kept.head, nn.Linear)


@needs_x86
def test_no_tensor_is_left_in_the_memory_it_was_loaded_into():
    """A checkpoint loads as views of its memory-mapped file: a tensor left there keeps the whole file's pages in
    memory beside the packed copies, so every tensor that stays is copied (and the tie kept)."""
    model = _TiedHead()
    loaded = {t.data_ptr() for t in model.parameters()}
    use_onednn_linears(model)
    kept = list(model.parameters())
    assert kept and not loaded & {t.data_ptr() for t in kept}
    assert model.head.weight is model.embed.weight


@needs_native_bfloat16
def test_bfloat16_products_equal_nn_linear():
    """bfloat16 `nn.Linear` is oneDNN too, reordering its weight on each call: prepacked, the sums are the same."""
    torch.manual_seed(0)
    model = _TiedHead().to(torch.bfloat16).eval()
    tokens = torch.randint(0, 50, (3, 7))
    with torch.inference_mode():
        expected = model(tokens)
    assert use_onednn_linears(model) == 3
    assert model.mlp[0].weight is None and model.head.weight is model.embed.weight
    with torch.inference_mode():
        got = model(tokens)
    assert got.dtype == torch.bfloat16
    torch.testing.assert_close(got, expected, rtol=2e-2, atol=2e-2)
    assert not torch.equal(got, torch.zeros_like(got))


@needs_x86
def test_products_equal_nn_linear_up_to_float32_rounding_and_the_tie_stays():
    torch.manual_seed(0)
    model = _TiedHead().eval()
    tokens = torch.randint(0, 50, (3, 7))
    with torch.inference_mode():
        expected = model(tokens)
    assert use_onednn_linears(model) == 3
    assert not any(isinstance(m, nn.Linear) for m in model.modules())
    assert model.head.weight is model.embed.weight  # no second copy of the vocabulary matrix
    assert model.mlp[0].weight is None  # its weight now lives only in oneDNN's packed form
    with torch.inference_mode():
        got = model(tokens)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert not torch.equal(got, torch.zeros_like(got))


@needs_x86
def test_the_tiny_checkpoints_logits_match_after_the_swap(tiny_model_dir):
    model = Qwen3ASRForConditionalGeneration.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    tokens = torch.randint(0, model.config.text_config.vocab_size, (2, 9), generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        expected = model(input_ids=tokens).logits
        use_onednn_linears(model)
        got = model(input_ids=tokens).logits
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


@needs_x86
def test_the_engine_on_a_float32_cpu_runs_every_linear_through_onednn(tiny_model_dir):
    import asr

    engine = asr.QwenEngine.load(str(tiny_model_dir), device="cpu", dtype="float32")
    modules = list(engine._model.modules())
    assert not any(isinstance(m, nn.Linear) for m in modules)
    assert sum(isinstance(m, OneDNNLinear) for m in modules) > 10


def _encoder_and_features(model_dir, dtype: torch.dtype):
    """The tiny checkpoint's audio encoder and features of 3 s of noise (3 of its convolutions' windows)."""
    model = Qwen3ASRForConditionalGeneration.from_pretrained(model_dir, dtype=dtype).eval()
    encoder = audio_encoder(model)
    features = torch.randn(1, encoder.config.num_mel_bins, 300, generator=torch.Generator().manual_seed(2))
    return model, encoder, features.to(dtype), torch.ones(1, 300, dtype=torch.long)


@needs_x86
@pytest.mark.parametrize(
    "dtype",
    [torch.float32, pytest.param(torch.bfloat16, marks=needs_native_bfloat16)],
)
def test_channels_last_convolutions_give_the_encoder_the_same_output(tiny_model_dir, dtype):
    """The same output up to float32 rounding; in bfloat16 bit for bit."""
    model, encoder, features, mask = _encoder_and_features(tiny_model_dir, dtype)
    with torch.inference_mode():
        expected = encoder(features, mask).last_hidden_state
        assert use_channels_last_convolutions(model) == 3
        assert encoder.conv2d2.weight.is_contiguous(memory_format=torch.channels_last)
        assert not encoder.conv2d2.weight.is_contiguous()
        got = encoder(features, mask).last_hidden_state
    if dtype == torch.bfloat16:
        assert torch.equal(got, expected)
    else:
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert got.abs().sum() > 0


def test_convolutions_keep_their_layout_off_the_onednn_path():
    """float16 (and anything on ARM or a GPU) keeps PyTorch's default layout."""
    half = nn.Sequential(nn.Conv2d(2, 4, 3)).to(torch.float16)
    assert use_channels_last_convolutions(half) == 0
    assert half[0].weight.is_contiguous()
    assert use_channels_last_convolutions(nn.Sequential(nn.Conv2d(1, 4, 3))) == (1 if X86 else 0)


@needs_x86
def test_the_engine_and_the_aligner_lay_out_their_convolutions_channels_last(tiny_model_dir, tiny_aligner_dir):
    import asr
    from asr.aligner import QwenAligner

    engine = asr.QwenEngine.load(str(tiny_model_dir), device="cpu", dtype="float32")
    aligner = QwenAligner.load(str(tiny_aligner_dir), device="cpu", dtype="float32")
    for model in (engine._model, aligner._model):
        weights = [m.weight for m in model.modules() if isinstance(m, nn.Conv2d)]
        assert len(weights) == 3
        assert all(w.is_contiguous(memory_format=torch.channels_last) for w in weights)


_KERNEL_CACHES = ("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "LRU_CACHE_CAPACITY")


def _caches_after_import_asr(**preset: str) -> list[str]:
    """The two kernel caches' capacities that a fresh process sees once it has imported asr."""
    env = {name: value for name, value in os.environ.items() if name not in _KERNEL_CACHES} | preset
    code = f"import os, asr; print(*(os.environ.get(n, 'unset') for n in {_KERNEL_CACHES!r}))"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_importing_asr_bounds_onednn_s_kernel_caches_and_keeps_a_value_the_user_set() -> None:
    """Unbounded, they kept a kernel per chunk length and a 30-minute file's memory grew batch by batch."""
    assert _caches_after_import_asr() == ["64", "64"]
    assert _caches_after_import_asr(LRU_CACHE_CAPACITY="8") == ["64", "8"]
