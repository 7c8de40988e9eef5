"""A live final's decode with and without its last draft proposed (full-size 0.6B, random weights).

    .venv/bin/python -m bench.live_final --json bench/results-live-final-cpu.json

A final checks the last draft's tokens in one pass after its prefill and decodes only what follows the ones that hold
(asr/decode.py's `proposal`). How many hold depends on the real weights: the same speech heard one second
shorter mostly gives the same words. Random weights cannot say, so each utterance (a sentence of
bench/inputs.py's conversation with the VAD's 0.2 s padding, 4 tokens a second as in bench/live.py) is decoded
four ways, alternating, in the same run:

- *plain*: no proposal (what finals did before);
- *random draft*: the tokens a draft of the utterance without its last second gives with these random weights
  (the proposal's cost when little of it holds);
- *draft that holds*: the final's own tokens but the last second's, i.e. a draft that heard all but the last
  second and wrote the same words for it (the gain when the real weights agree with themselves);
- *no proposal needed*: the final's own tokens in full (the floor: the prefill and the checking pass, no step).

Every variant's tokens are compared with the plain decode's (in bfloat16 a checked token can round differently at
a near tie; the run lists any that differ). Times are medians over the rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from asr.audio import SAMPLE_RATE
from bench.checkpoints import checkpoint_folder, write_checkpoint
from bench.inputs import build_speech
from bench.live import common_start
from bench.run import BENCH_DIR

PAD_S = 0.2  # the VAD's padding on both sides of an utterance
DRAFT_BEHIND_S = 1.0  # how much less than the final the last draft heard
TOKENS_PER_S = 4.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--utterances", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cache-dir", type=Path, default=BENCH_DIR / ".cache")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)

    import asr

    folder = checkpoint_folder(args.cache_dir)
    if not folder.is_dir():
        print(f"Writing the full-size random checkpoint to {folder} (once) ...", flush=True)
        write_checkpoint(folder)
    engine = asr.QwenEngine.load(str(folder), device="cpu")
    speech = build_speech(90.0)
    pad = round(PAD_S * SAMPLE_RATE)
    utterances = [speech.samples[max(0, s - pad) : e + pad] for s, e in speech.spans[: args.utterances]]
    print(
        f"{len(utterances)} utterances on {engine.info.device} ({engine.info.dtype}); "
        f"load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )

    def decode(wave: np.ndarray, proposal: tuple[int, ...] = ()) -> tuple[float, tuple[int, ...]]:
        budget = 1 + round(TOKENS_PER_S * len(wave) / SAMPLE_RATE)
        began = time.perf_counter()
        (result,) = engine.transcribe_chunks(
            [wave], language="English", context="", max_new_tokens=[budget], proposal=proposal
        )
        return time.perf_counter() - began, result.tokens

    rows: list[dict] = []
    differing: list[str] = []  # variants whose tokens are not the plain decode's
    for number, wave in enumerate(utterances):
        _, own = decode(wave)
        _, drafted = decode(wave[: len(wave) - round(DRAFT_BEHIND_S * SAMPLE_RATE)])
        proposals = {
            "plain": (),
            "random draft": drafted,
            "draft that holds": own[: len(own) - round(TOKENS_PER_S * DRAFT_BEHIND_S)],
            "no proposal needed": own,
        }
        times: dict[str, list[float]] = {name: [] for name in proposals}
        for _ in range(args.rounds):
            for name, proposal in proposals.items():
                took, tokens = decode(wave, proposal)
                if tokens != own:  # bfloat16 only, at a near tie (asr/decode.py's `greedy_decode`)
                    differing.append(f"utterance {number}, {name}: from token {common_start(tokens, own)}")
                times[name].append(took)
        medians = {name: float(np.median(values)) for name, values in times.items()}
        held = common_start(drafted, own)
        rows.append(
            {"audio_s": len(wave) / SAMPLE_RATE, "tokens": len(own), "random_draft_held": held, "median_s": medians}
        )
        shown = ", ".join(f"{name} {value:.2f} s ({value / medians['plain']:.2f}x)" for name, value in medians.items())
        print(
            f"  {len(wave) / SAMPLE_RATE:.1f} s, {len(own)} tokens: {shown}; the random draft held {held}", flush=True
        )
    summary = {
        name: float(np.median([row["median_s"][name] / row["median_s"]["plain"] for row in rows]))
        for name in rows[0]["median_s"]
    }
    print("median time against plain: " + ", ".join(f"{name} {value:.2f}x" for name, value in summary.items()))
    print(f"tokens other than the plain decode's: {differing or 'none'}")
    if args.json:
        results = {"utterances": rows, "time_against_plain": summary, "differing": differing}
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
