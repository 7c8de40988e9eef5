"""Where the models run and how much memory they may use: device and dtype choice, placement checks,
batch size from free memory, and handing freed memory back; shared by the engine and the aligner.
"""

from __future__ import annotations

import ctypes
import sys

import torch
from transformers import PreTrainedModel

from .errors import ModelLoadError, OptionsError

DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


def resolve_device(device: str) -> str:
    """Pick the device for "auto"; check that an explicit one exists."""
    if device not in DEVICES:
        raise OptionsError(f"Unknown device {device!r}; use one of {', '.join(DEVICES)}.")
    cuda, mps = torch.cuda.is_available(), torch.backends.mps.is_available()
    if device == "auto":
        return "cuda" if cuda else "mps" if mps else "cpu"
    if (device == "cuda" and not cuda) or (device == "mps" and not mps):
        raise OptionsError(f"Device {device!r} was asked for but is not available here; use 'auto' or 'cpu'.")
    return device


def cpu_has_fast_bfloat16() -> bool:
    """Whether oneDNN has native bfloat16 kernels on this CPU (AVX-512 or AMX).

    Without them (AVX2-only CPUs: many laptops and AMD EPYC cloud machines) bfloat16 is emulated, and the
    audio encoder ran 7x slower than in float32 (docs/performance.md).
    """
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a torch built without oneDNN
        return False


def resolve_dtype(dtype: str, device: str) -> torch.dtype:
    """bf16 on CUDA where supported (else fp16), fp16 on Apple MPS; on CPU bf16 where the CPU computes it
    natively, else fp32.

    On a CPU with AVX-512, bf16 decoded the full-size 0.6B model 1.78x faster than fp32 with the same greedy
    output on our golden clip; on an AVX2-only CPU it was several times slower (docs/performance.md).
    """
    if dtype != "auto":
        if dtype not in DTYPES:
            raise OptionsError(f"Unknown dtype {dtype!r}; use auto or one of {', '.join(DTYPES)}.")
        return DTYPES[dtype]
    if device == "cuda":
        # Cards without native bf16 (T4, V100) emulate it slowly; fp16 runs natively there.
        return torch.bfloat16 if torch.cuda.is_bf16_supported(including_emulation=False) else torch.float16
    if device == "mps":
        return torch.float16
    return torch.bfloat16 if cpu_has_fast_bfloat16() else torch.float32


def check_placement(device_map: dict[str, int | str] | None, model: str) -> None:
    """Refuse a model that `device_map="auto"` split between the GPU and the CPU or disk.

    Such a model runs far slower than on the CPU alone (every step copies the offloaded weights), and
    `fall_back_to_cpu` cannot move it, so the user is told what went where and what to do instead.
    """
    places: dict[str, list[str]] = {}
    for module, place in (device_map or {}).items():
        places.setdefault(str(place), []).append(module or "the whole model")
    offloaded = sorted(set(places) & {"cpu", "disk"})
    if not offloaded:
        return
    where = "; ".join(f"{len(names)} part(s) on {place} ({', '.join(names[:3])}...)" for place, names in places.items())
    raise ModelLoadError(
        f"The GPU has no room for all of {model}: {where}. A model split with the {' and '.join(offloaded)} "
        "runs slower than the CPU alone. Close other programs that use the GPU, choose the 0.6B model, "
        "or use --device cpu."
    )


_CPU_BATCH_SIZE = 8  # on CPU a step for 8 rows costs little more than for 1; 8 was 14% faster than 4 (bench/run.py)
_MAX_GPU_BATCH_SIZE = 64
_ROW_TOKENS = 640  # KV positions a row may use: a 24 s chunk's prompt (~340) and its token budget, rounded up


def default_batch_size(device: str, free_bytes: int, kv_bytes_per_token: int) -> int:
    """Chunks per batch: 8 on the CPU and MPS; on CUDA as many as half the free memory holds, up to 64.

    Decoding is memory-bound, so a GPU step for 64 rows costs about what a step for one does. Each row
    needs its KV cache (`_ROW_TOKENS` positions) and as much again for activations; half the free memory
    leaves room for the audio encoder and other programs. A power of two, so CUDA graphs' buckets fit.
    """
    if not device.startswith("cuda"):
        return _CPU_BATCH_SIZE
    rows = free_bytes // 2 // (2 * _ROW_TOKENS * kv_bytes_per_token)
    size = 1
    while size * 2 <= min(rows, _MAX_GPU_BATCH_SIZE):
        size *= 2
    return size


def kv_bytes_per_token(model: PreTrainedModel) -> int:
    """Bytes of keys and values that one token adds to the cache, over all layers."""
    text = model.config.get_text_config(decoder=True)
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
    return 2 * text.num_hidden_layers * text.num_key_value_heads * head_dim * model.dtype.itemsize


def _find_malloc_trim():
    """glibc's malloc_trim, or None (macOS, Windows, musl)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


_MALLOC_TRIM = _find_malloc_trim()


def return_freed_memory() -> None:
    """Hand memory freed by a batch back to the system (glibc only; elsewhere nothing to do).

    A batch allocates and frees hundreds of MB in tensors of ever-changing sizes (a KV cache that grows every
    step), and glibc keeps freed pieces in its arenas: on the 30-minute benchmark input the peak resident
    memory while transcribing was 3.86 GB without this and 3.47 GB with it, at the same speed.
    """
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)
