"""The full-size random checkpoints (speech model and forced aligner), written once under `bench/.cache/`."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from bench.inputs import SEED
from bench.model_config import FULL_SIZE_0_6B

CHECKPOINT_VERSION = 1  # bump to rebuild the cached checkpoint after a change to how it is written


def checkpoint_folder(cache_dir: Path, seed: int = SEED) -> Path:
    key = json.dumps({"config": FULL_SIZE_0_6B, "seed": seed, "version": CHECKPOINT_VERSION}, sort_keys=True)
    return cache_dir / f"qwen3-asr-0.6b-random-seed{seed}-{hashlib.sha256(key.encode()).hexdigest()[:10]}"


def aligner_folder(cache_dir: Path, seed: int = SEED) -> Path:
    key = json.dumps({"config": FULL_SIZE_0_6B, "seed": seed, "version": CHECKPOINT_VERSION}, sort_keys=True)
    return cache_dir / f"qwen3-forcedaligner-0.6b-random-seed{seed}-{hashlib.sha256(key.encode()).hexdigest()[:10]}"


def write_aligner(folder: Path, seed: int = SEED) -> None:
    """A random forced aligner of the speech model's full size, with a 5000-class head (80 ms steps), as
    Qwen3-ForcedAligner-0.6B has. Its own config is not stored here; its checkpoint (1.84 GB) is about the
    speech model's (1.88 GB), so the same architecture stands in for it."""
    import torch
    from transformers import AutoProcessor, Qwen3ASRConfig, Qwen3ASRForTokenClassification

    from testbed.tiny_model import write_tiny_aligner

    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=folder.name + ".tmp-", dir=folder.parent))
    try:
        with tempfile.TemporaryDirectory() as tiny:
            processor = AutoProcessor.from_pretrained(write_tiny_aligner(Path(tiny)), local_files_only=True)
        config = Qwen3ASRConfig(
            **FULL_SIZE_0_6B,
            audio_token_id=processor.audio_token_id,
            timestamp_token_id=processor.tokenizer.convert_tokens_to_ids("<timestamp>"),
            num_labels=5000,
            architectures=["Qwen3ASRForTokenClassification"],
        )
        torch.manual_seed(seed)
        Qwen3ASRForTokenClassification(config).eval().to(torch.bfloat16).save_pretrained(staging)
        processor.save_pretrained(staging)
        staging.chmod(0o755)
        os.replace(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_checkpoint(folder: Path, seed: int = SEED) -> None:
    """Write the random full-size checkpoint into `folder` (atomically: a temporary folder, then a rename)."""
    import torch
    from transformers import AutoProcessor, GenerationConfig, Qwen3ASRConfig, Qwen3ASRForConditionalGeneration

    from testbed.tiny_model import write_tiny_checkpoint

    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=folder.name + ".tmp-", dir=folder.parent))
    try:
        with tempfile.TemporaryDirectory() as tiny:
            processor = AutoProcessor.from_pretrained(write_tiny_checkpoint(Path(tiny)), local_files_only=True)
        tokenizer = processor.tokenizer
        endoftext, im_end = tokenizer.convert_tokens_to_ids(["<|endoftext|>", "<|im_end|>"])
        config = Qwen3ASRConfig(
            **FULL_SIZE_0_6B,
            audio_token_id=processor.audio_token_id,
            pad_token_id=im_end,
            eos_token_id=[endoftext, im_end],
        )
        torch.manual_seed(seed)
        model = Qwen3ASRForConditionalGeneration(config).eval().to(torch.bfloat16)
        # No EOS: every request generates exactly its max_new_tokens, whatever the random weights say.
        model.generation_config = GenerationConfig(
            eos_token_id=None, pad_token_id=im_end, do_sample=False, max_new_tokens=512
        )
        model.save_pretrained(staging)
        processor.save_pretrained(staging)
        (staging / "bench_checkpoint.json").write_text(json.dumps({"seed": seed, "version": CHECKPOINT_VERSION}))
        staging.chmod(0o755)
        try:
            os.replace(staging, folder)
        except OSError:
            if not folder.is_dir():  # else another run wrote it meanwhile: same seed, same checkpoint
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
