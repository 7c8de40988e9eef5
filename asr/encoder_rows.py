"""The audio encoder run one row of the batch at a time, each row cut to its own audio.

Why: transformers' `Qwen3ASREncoder` cuts the whole batch's features into 1 s windows and runs its three
convolutions over all of them at once, the padding windows of the shorter rows included, before it keeps only
the valid positions for its layers. For a batch of 8 chunks of about 30 s on the CPU, the first convolution's
output and its GELU held about 1.2 GB at once: the peak of a whole 5-minute run (3.31 GB against 1.95 GB at
rest). One row at a time holds an eighth of that, and the padding windows are never computed.

The result is the same: the windows and the encoder's attention never cross rows (its layers see the rows'
valid positions packed one after the other, row by row), so the rows' outputs, concatenated in order, are the
batch's. Only the order of floating-point sums in a matrix product may differ (tests compare the logits).
Installed once at load, on the speech model and on the aligner (each has an encoder of this class).
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
    window = encoder.n_window * 2  # mel frames in one of the encoder's windows

    def forward(
        input_features: torch.Tensor, input_features_mask: torch.Tensor, **kwargs
    ) -> BaseModelOutputWithPooling:
        rows = []
        for features, mask in zip(input_features, input_features_mask, strict=True):
            valid = int(mask.sum())
            frames = -(-valid // window) * window
            if not bool(mask[:valid].all()):  # not right-padded after all: keep the row whole
                frames = mask.shape[-1]
            output = whole(features[None, :, :frames], mask[None, :frames], **kwargs)
            rows.append(output.last_hidden_state)
        return BaseModelOutputWithPooling(last_hidden_state=torch.cat(rows))

    encoder.forward = forward
