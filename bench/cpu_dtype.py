"""CPU bfloat16 vs float32 on the full-size Qwen3-ASR-0.6B architecture (random weights).

    .venv/bin/python -m bench.cpu_dtype [--seconds 10] [--tokens 40] [--rounds 3]

Speed does not depend on weight values once the number of generated tokens is fixed, so the model
is randomly initialised and made to generate exactly --tokens tokens (min_new_tokens = max). The two
precisions run alternately (A B A B) so machine drift hits both; the best round of each is reported,
with the ratio. The prompt comes from the tiny checkpoint's processor (same feature extractor, same
prompt shape), with the audio token id set to match.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from transformers import AutoProcessor, Qwen3ASRConfig, Qwen3ASRForConditionalGeneration

from bench.model_config import FULL_SIZE_0_6B
from testbed.speech import SENTENCES, speak
from testbed.tiny_model import write_tiny_checkpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--tokens", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        processor = AutoProcessor.from_pretrained(write_tiny_checkpoint(Path(folder)))
    config = Qwen3ASRConfig(**FULL_SIZE_0_6B, audio_token_id=processor.audio_token_id)
    torch.manual_seed(0)
    models = {"float32": Qwen3ASRForConditionalGeneration(config).eval()}
    models["bfloat16"] = Qwen3ASRForConditionalGeneration(config).eval()
    models["bfloat16"].load_state_dict(models["float32"].state_dict())
    models["bfloat16"].to(torch.bfloat16)

    audio = np.concatenate([speak(s) for s in SENTENCES])[: int(args.seconds * 16_000)]
    inputs = processor.apply_transcription_request(audio=[audio], language="English")
    times: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(args.rounds):
        for name, model in models.items():
            batch = inputs.to(dtype=model.dtype)
            started = time.perf_counter()
            with torch.inference_mode():
                model.generate(**batch, max_new_tokens=args.tokens, min_new_tokens=args.tokens, do_sample=False)
            times[name].append(time.perf_counter() - started)
            print(f"{name}: {times[name][-1]:.2f} s", flush=True)
    best = {name: min(values) for name, values in times.items()}
    print(f"| dtype | best of {args.rounds} (s) |\n|---|---|")
    for name, seconds in best.items():
        print(f"| {name} | {seconds:.2f} |")
    ratio = best["float32"] / best["bfloat16"]
    print(f"bfloat16 is {ratio:.2f}x as fast as float32 ({torch.get_num_threads()} threads)")


if __name__ == "__main__":
    main()
