"""The audio encoder run one row of the batch at a time, each row cut to its own audio, in pieces of 8 s.

Why: transformers' `Qwen3ASREncoder` cuts the whole batch's features into 1 s windows and runs its three
convolutions over all of them at once, the padding windows of the shorter rows included, before it keeps only
the valid positions for its layers. For a batch of 8 chunks of about 30 s on the CPU, the first convolution's
output and its GELU held about 1.2 GB at once: the peak of a whole 5-minute run (3.31 GB against 1.95 GB at
rest). One row at a time holds an eighth of that, and the padding windows are never computed. A long row is
encoded in pieces of one attention window (8 s), so what the convolutions hold at once no longer grows with
the chunk: with a batch's cache kept from the batch before, a batch of 8 rows of 24 s peaked at 4.63 GB in
float32 when each row was encoded whole, 4.46 GB in pieces (the decoder's prefill is now the peak).

The result is the same: the windows and the encoder's attention never cross rows or pieces (its layers see
the valid positions packed one after the other, each attention window on its own), so the pieces' outputs,
concatenated in order, are the batch's. Only the order of floating-point sums in a matrix product may differ
(tests compare the logits). Installed once at load, on the speech model and on the aligner (each has an
encoder of this class).
"""

from __future__ import annotations

import torch
from transformers.modeling_outputs import BaseModelOutputWithPooling
from transformers.models.qwen3_asr.modeling_qwen3_asr import Qwen3ASREncoder


def audio_encoder(model: torch.nn.Module) -> Qwen3ASREncoder:
    """The model's audio encoder (the speech model and the aligner each have one)."""
    return next(module for module in model.modules() if isinstance(module, Qwen3ASREncoder))


def encode_rows_apart(model: torch.nn.Module) -> None:
    """Make the model's audio encoder run row by row, each row cut to its own windows (see the module's text)."""
    encoder = audio_encoder(model)
    whole = encoder.forward

    def forward(
        input_features: torch.Tensor, input_features_mask: torch.Tensor, **kwargs
    ) -> BaseModelOutputWithPooling:
        pieces = [
            whole(features[None, :, start:end], mask[None, start:end], **kwargs).last_hidden_state
            for features, mask in zip(input_features, input_features_mask, strict=True)
            for start, end in _row_pieces(encoder, mask)
        ]
        return BaseModelOutputWithPooling(last_hidden_state=torch.cat(pieces))

    encoder.forward = forward


def encoder_passes(encoder: Qwen3ASREncoder, input_features_mask: torch.Tensor) -> int:
    """How many times the row-apart encoder runs transformers' forward for a batch (each runs every layer once)."""
    return sum(len(_row_pieces(encoder, mask)) for mask in input_features_mask)


def _row_pieces(encoder: Qwen3ASREncoder, mask: torch.Tensor) -> list[tuple[int, int]]:
    """The mel-frame spans a row is encoded in: its own windows, in pieces of one attention window each.

    The pieces end where the encoder's attention windows do (`n_window_infer` frames, 8 s), so no attention
    crosses a cut and each piece's output is that stretch of the row's. Why: the first convolution's output and
    its GELU grow with the audio encoded at once, about 0.3 GB for a 24 s row in float32; a piece holds a third.
    """
    window = encoder.n_window * 2  # mel frames in one of the convolutions' windows
    valid = int(mask.sum())
    if not bool(mask[:valid].all()):  # not right-padded after all: keep the row whole
        return [(0, mask.shape[-1])]
    frames = -(-valid // window) * window
    span = encoder.n_window_infer
    return [(start, min(start + span, frames)) for start in range(0, frames, span)]
