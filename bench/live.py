"""Live dictation delays on the full-size Qwen3-ASR-0.6B (random weights), a conversation fed in real time.

    .venv/bin/python -m bench.live                      # 10 minutes of conversation, fed at its own pace
    .venv/bin/python -m bench.live --minutes 3 --json bench/results-live-cpu.json

The input is bench/inputs.py's synthetic conversation (espeak-ng sentences, random 0.3-2 s pauses,
seeded), fed to `asr.live.LiveSession` 100 ms at a time, each piece when it would have been heard (a
microphone's pace). The checkpoint is bench/checkpoints.py's (EOS disabled): every decode writes
``tokens_per_s x seconds`` tokens, 4 a second of audio as in bench/run.py, about what real speech gives.
Random weights write no text the test tokenizer can show, so `WordedEngine` gives each text as many
placeholder words as it has tokens (the decode's cost untouched), and the delays are timed from the events'
audio positions:

- draft delay: for every 0.5 s of ground-truth speech, from the moment it was spoken to the first draft (or
  final) whose audio reaches it;
- final delay: from the end of an utterance's last spoken sentence (ground truth; at a cut by the length cap,
  the cut) to its final;
- drift: the same delays in the first and in the last minute;
- dropped audio: fed seconds minus the seconds the session holds; lag: how far feeding fell behind the clock.

Every decode takes the model's turn and the machine is shared: on a busy machine the numbers are upper bounds.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from asr.audio import SAMPLE_RATE
from bench.checkpoints import checkpoint_folder, write_checkpoint
from bench.inputs import build_speech
from bench.run import BENCH_DIR

PIECE_S = 0.1
WORD_STEP_S = 0.5  # one "word" to wait for every half second of speech


def _percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None, "n": 0}
    return {"p50": float(np.percentile(values, 50)), "p95": float(np.percentile(values, 95)), "n": len(values)}


def draft_delays(events, spans: tuple[tuple[int, int], ...]) -> list[tuple[float, float]]:
    """(spoken at, delay) for a point every WORD_STEP_S of speech: the first event whose audio reaches it."""
    shown = sorted(events, key=lambda e: e.at_s)
    delays = []
    for start, end in spans:
        for spoken_s in np.arange(start / SAMPLE_RATE + WORD_STEP_S, end / SAMPLE_RATE, WORD_STEP_S):
            first = next((e for e in shown if e.audio_start_s <= spoken_s <= e.audio_end_s), None)
            if first is not None:
                delays.append((float(spoken_s), first.at_s - float(spoken_s)))
    return delays


def final_delays(finals, spans: tuple[tuple[int, int], ...]) -> list[tuple[float, float]]:
    """(utterance end, delay) per final: from its last spoken sample (ground truth) or its cut, to the final."""
    delays = []
    for final in finals:
        ends = [
            e / SAMPLE_RATE
            for s, e in spans
            if s / SAMPLE_RATE < final.audio_end_s and e / SAMPLE_RATE > final.audio_start_s
        ]
        if ends:
            spoken_end = min(max(ends), final.audio_end_s)
            delays.append((spoken_end, final.at_s - spoken_end))
    return delays


def common_start(ours: Sequence[int], theirs: Sequence[int]) -> int:
    """How many tokens, from the first, two decodes share (a proposal and what the decode wrote)."""
    return next((i for i, (a, b) in enumerate(zip(ours, theirs, strict=False)) if a != b), min(len(ours), len(theirs)))


class WordedEngine:
    """The engine, with each text replaced by as many distinct words as it has tokens: random weights write
    nothing the test tokenizer can show, and a live session shows nothing for an empty text. The decode itself
    (its cost) is untouched."""

    def __init__(self, engine) -> None:
        self._engine = engine
        self.name, self.default_batch_size, self.device = engine.name, engine.default_batch_size, engine.device
        self.proposed: list[tuple[int, int]] = []  # per decode given a draft's tokens: how many, how many held

    def transcribe_chunks(self, chunks, **kwargs):
        results = self._engine.transcribe_chunks(chunks, **kwargs)
        proposal = kwargs.get("proposal", ())
        if proposal:
            self.proposed.append((len(proposal), common_start(proposal, results[0].tokens)))
        words = [" ".join(f"w{i}" for i in range(max(1, r.num_tokens))) for r in results]
        return [dataclasses.replace(r, text=text) for r, text in zip(results, words, strict=True)]

    def fall_back_to_cpu(self):
        return self._engine.fall_back_to_cpu()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--voiced", type=Path, help="spoken sentences cache (.npz), as bench/run.py --voiced")
    parser.add_argument("--cache-dir", type=Path, default=BENCH_DIR / ".cache")
    parser.add_argument("--json", type=Path, help="write the events and the summary here")
    args = parser.parse_args(argv)

    import torch

    import asr
    from asr.live import LiveEventType, LiveOptions, LiveSession

    if args.threads:
        torch.set_num_threads(args.threads)
    folder = checkpoint_folder(args.cache_dir)
    if not folder.is_dir():
        print(f"Writing the full-size random checkpoint to {folder} (once) ...", flush=True)
        write_checkpoint(folder)
    speech = build_speech(args.minutes * 60, voiced_path=args.voiced)
    engine = WordedEngine(asr.QwenEngine.load(str(folder), device=args.device))
    decode = asr.DecodeOptions(language="English", tokens_per_s=4.0, min_new_tokens_budget=1)
    session = LiveSession(engine, options=LiveOptions(transcribe=asr.TranscribeOptions(decode=decode)))
    step = round(PIECE_S * SAMPLE_RATE)
    load = os.getloadavg()[0]
    print(
        f"{args.minutes:g} min fed in real time to {engine.name} on {args.device}; load average {load:.1f}", flush=True
    )
    began = time.monotonic()
    lag_s = 0.0
    for index, start in enumerate(range(0, len(speech.samples), step)):
        due = began + (index + 1) * PIECE_S  # a microphone hands over a piece once it has been heard
        time.sleep(max(0.0, due - time.monotonic()))
        session.feed(speech.samples[start : start + step])
        lag_s = max(lag_s, time.monotonic() - due)
        if index % round(60 / PIECE_S) == 0 and index:
            print(f"  {index * PIECE_S / 60:.0f} min: {len(session.events)} events", flush=True)
    held_s = session.duration_s
    transcript = session.finish()
    events = session.events
    finals = [e for e in events if e.type is LiveEventType.FINAL]
    drafts = draft_delays(events, speech.spans)
    final = final_delays(finals, speech.spans)
    last_minute = max(0.0, args.minutes * 60 - 60)

    def window(pairs: list[tuple[float, float]], first: bool) -> dict[str, float | None]:
        return _percentiles([d for t, d in pairs if (t < 60) == first and (first or t >= last_minute)])

    summary = {
        "minutes": args.minutes,
        "device": args.device,
        "threads": torch.get_num_threads(),
        "load_average_at_start": load,
        "draft_delay_s": _percentiles([d for _, d in drafts]),
        "final_delay_s": _percentiles([d for _, d in final]),
        "first_minute": {"draft_delay_s": window(drafts, True), "final_delay_s": window(final, True)},
        "last_minute": {"draft_delay_s": window(drafts, False), "final_delay_s": window(final, False)},
        "drafts": sum(e.type is LiveEventType.DRAFT for e in events),
        "finals": len(finals),
        "segments": len(transcript.segments),
        "dropped_audio_s": round(len(speech.samples) / SAMPLE_RATE - held_s, 3),
        "max_feed_lag_s": round(lag_s, 3),
        # Decodes (finals and drafts) given a draft's tokens (asr/decode.py's `proposal`), and how many held: with
        # random weights a draft rarely writes its final's tokens, so this run shows the check's cost, not its gain
        # (bench/live_final.py times both).
        "decodes_given_a_draft": len(engine.proposed),
        "proposed_tokens_held": sum(held for _, held in engine.proposed),
        "proposed_tokens": sum(count for count, _ in engine.proposed),
    }
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "events": [e.as_dict() for e in events]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
