"""The int8 variants of `bench/cpu_int8.py`: each loaded from the checkpoint and quantised its own way."""

from __future__ import annotations

import contextlib
import ctypes
import gc
import time
import warnings
from pathlib import Path
from typing import Any

warnings.filterwarnings("ignore", message=r"(?s)torch\.ao\.quantization is deprecated")
warnings.filterwarnings("ignore", message=r"torch\.quantize_per_tensor, torch\.quantize_per_channel")

DEFAULT_VARIANTS = ("fp32", "bf16", "int8", "int8-lm")
ALL_VARIANTS = (*DEFAULT_VARIANTS, "int8-pc", "ao-int8wo", "ao-int8dyn")


def torchao_available() -> bool:
    try:
        import torchao.quantization  # noqa: F401
    except ImportError:
        return False
    return True


def load_variant(folder: Path, variant: str) -> tuple[Any, float, float]:
    """(model, load seconds, quantise seconds) for one variant."""
    import torch
    from transformers import Qwen3ASRForConditionalGeneration

    dtype = torch.bfloat16 if variant in ("bf16", "int8-lm", "ao-int8wo") else torch.float32
    started = time.perf_counter()
    model = Qwen3ASRForConditionalGeneration.from_pretrained(folder, local_files_only=True, dtype=dtype).eval()
    loaded = time.perf_counter()
    if variant in ("int8", "int8-pc"):
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

        spec = {torch.nn.Linear} if variant == "int8" else {torch.nn.Linear: per_channel_dynamic_qconfig}
        # inplace: the float32 copy is this freshly loaded model; its Linear weights are freed as replaced.
        model = quantize_dynamic(model, spec, dtype=torch.qint8, inplace=True)
    elif variant == "int8-lm":
        quantize_text_decoder(model)
    elif variant.startswith("ao-"):
        from torchao.quantization import Int8DynamicActivationInt8WeightConfig, Int8WeightOnlyConfig, quantize_

        quantize_(model, Int8WeightOnlyConfig() if variant == "ao-int8wo" else Int8DynamicActivationInt8WeightConfig())
    else:
        return model, loaded - started, 0.0
    release_freed_memory()
    return model, loaded - started, time.perf_counter() - loaded


def quantize_text_decoder(model: Any) -> None:
    """Per-channel int8 dynamic Linear layers in the text decoder and LM head; the audio encoder stays bf16.

    One decoder layer at a time goes to fp32 and is quantised, so the whole fp32 decoder never exists at
    once. The embeddings (tied to the LM head) and the final norm become fp32: the decoder's activations
    must be fp32 for the quantised Linear layers. `transformers` casts the audio embeddings to the text
    embeddings' dtype, and `model.dtype` (the first parameter's, the audio encoder's) stays bf16, so the
    input features are cast to bf16 as before.
    """
    import torch
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    decoder = model.model.language_model
    for layer in decoder.layers:
        quantize_dynamic(layer.float(), {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8, inplace=True)
        release_freed_memory()  # else glibc keeps each layer's freed fp32 weights: +60 MB a layer
    decoder.float()  # embeddings (= the LM head's weight), final norm, rotary buffers
    quantize_dynamic(model, {"lm_head": per_channel_dynamic_qconfig}, dtype=torch.qint8, inplace=True)


def release_freed_memory() -> None:
    """Give the freed fp32 weights back to the OS: glibc keeps freed blocks under 32 MB in its heap."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to do
        ctypes.CDLL("libc.so.6").malloc_trim(0)
