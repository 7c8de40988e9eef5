"""The models' weights laid out for oneDNN on an x86 CPU, in float32 and bfloat16: the linear layers prepacked,
the audio encoder's convolutions channels-last.

Why the linear layers: a decode step multiplies each weight by a handful of rows (one per chunk in the batch).
- In float32, MKL's product is slow at that size on AMD CPUs: on a 2-core AVX2 EPYC the decoder's 3072x1024
  MLP weight took 3.3 ms for 5 rows through MKL and 0.34 ms through oneDNN with the weight prepacked
  (`python -m bench.cpu_gemm`; docs/performance.md). oneDNN picks its kernels by the CPU's features, not its
  vendor.
- In bfloat16, `nn.Linear` already goes through oneDNN, but reorders the weight into oneDNN's layout on every
  call: on a 2-core AVX-512 EPYC the 1024x3072 weight took 0.20 ms for one row that way and 0.074 ms
  prepacked, with the same result bit for bit.

A layer whose weight is shared with another module (the LM head tied to the token embeddings) keeps its
plain weight, which oneDNN also takes, so tying costs no second copy of the vocabulary matrix. The results
differ from MKL's only by float32 rounding (about 1e-6 relative).

Why the convolutions: oneDNN computes a convolution in channels-last layout, so with PyTorch's default layout
every call reorders its input and its output. The audio encoder's three convolutions run over every second of
audio; on a 2-core AVX-512 Xeon they took 260 ms for 24 s of audio in bfloat16 and 135 ms channels-last, bit
for bit the same (float32: 525 against 450 ms, differing by float32 rounding).
"""

from __future__ import annotations

import itertools
import platform

import torch
from torch import nn

from .device import cpu_has_fast_bfloat16


def _onednn_is_the_better_path() -> bool:
    """On an x86 CPU, where MKL is torch's float32 BLAS; on ARM the BLAS torch uses (Accelerate, OpenBLAS) has no
    such weakness."""
    return platform.machine().lower() in ("x86_64", "amd64") and torch.backends.mkldnn.is_available()


class OneDNNLinear(nn.Module):
    """`nn.Linear`'s forward through `torch.ops.mkldnn._linear_pointwise` (the op inductor's CPU path uses)."""

    def __init__(self, linear: nn.Linear, *, keep_plain_weight: bool) -> None:
        super().__init__()
        self.in_features = linear.in_features
        self.out_features = linear.out_features
        self.bias = linear.bias
        if keep_plain_weight:
            self.weight: torch.Tensor | None = linear.weight  # shared: stays a parameter of both modules
            self._packed: torch.Tensor | None = None
        else:
            self.weight = None
            # An opaque oneDNN tensor: not a parameter, so `state_dict` and `.to()` never meet it.
            self._packed = torch.ops.mkldnn._reorder_linear_weight(linear.weight.detach(), None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self._packed if self._packed is not None else self.weight
        return torch.ops.mkldnn._linear_pointwise(x, weight, self.bias, "none", [], "")

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, packed={self._packed is not None}"


def _packed_dtypes() -> tuple[torch.dtype, ...]:
    """bfloat16 only where oneDNN has native kernels for it: on an AVX2-only CPU prepacking a bfloat16 weight
    raises (it needs AVX-512 or AVX-NE-CONVERT), and such a layer stays an `nn.Linear`."""
    return (torch.float32, torch.bfloat16) if cpu_has_fast_bfloat16() else (torch.float32,)


def use_onednn_layouts(model: nn.Module) -> None:
    """Lay the model's weights out for oneDNN where it is the better path (see the module's text): the engine
    and the aligner call this after loading and after a move to the CPU; layers on a GPU are left as they are."""
    use_onednn_linears(model)
    use_channels_last_convolutions(model)


def use_channels_last_convolutions(model: nn.Module) -> int:
    """Store every 2-D convolution's weight of `model` channels-last on an x86 CPU, in the dtypes whose linear
    layers are prepacked too; returns how many. Its outputs follow the weight's layout, so the next convolution
    takes them as they are; what reads them afterwards sees the same values in either layout."""
    if not _onednn_is_the_better_path():
        return 0
    dtypes = _packed_dtypes()
    convolutions = [
        module
        for module in model.modules()
        if isinstance(module, nn.Conv2d) and module.weight.dtype in dtypes and module.weight.device.type == "cpu"
    ]
    for convolution in convolutions:
        convolution.to(memory_format=torch.channels_last)
    return len(convolutions)


def use_onednn_linears(model: nn.Module) -> int:
    """Replace every float32 `nn.Linear` of `model` on an x86 CPU with a `OneDNNLinear`, and every bfloat16 one
    where the CPU computes bfloat16 natively; returns how many.

    Nothing changes elsewhere (0): a model on a GPU, in float16, or on ARM. After this the model stays on the
    CPU: moving it would leave the packed weights behind.
    """
    if not _onednn_is_the_better_path():
        return 0
    packed_dtypes = _packed_dtypes()
    linear_weights = {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear)}
    shared = {
        id(p)
        for module in model.modules()
        if not isinstance(module, nn.Linear)
        for p in module.parameters(recurse=False)
        if id(p) in linear_weights
    }
    replacements = [
        (parent, name, child)
        for parent in model.modules()
        for name, child in parent.named_children()
        if isinstance(child, nn.Linear) and child.weight.dtype in packed_dtypes and child.weight.device.type == "cpu"
    ]
    for parent, name, child in replacements:
        setattr(parent, name, OneDNNLinear(child, keep_plain_weight=id(child.weight) in shared))
    if replacements:
        _copy_out_of_the_checkpoint_file(model)
    return len(replacements)


def _copy_out_of_the_checkpoint_file(model: nn.Module) -> None:
    """Give every tensor left its own memory.

    A bfloat16 checkpoint loads as views of its memory-mapped file. The packed copies replace the linear weights,
    but the tensors left (embeddings, norms, convolutions) keep the whole mapping alive, and the pages read at
    load stay resident: Qwen3-ASR-0.6B took 3.20 GB after load (1.68 GB of them file pages) instead of 1.98 GB.
    """
    with torch.no_grad():
        for tensor in itertools.chain(model.parameters(), model.buffers()):
            tensor.data = tensor.data.clone()
