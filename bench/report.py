"""The benchmark's tables: per input the best round of each implementation and their ratios."""

from __future__ import annotations

from dataclasses import dataclass

from bench.implementations import DECODER_IMPLS, GENERATE_IMPL, IMPLS, LOOP_IMPL
from bench.measurement import RunResult


@dataclass
class InputRow:
    """One input: the best round of each implementation, their ratio, and every round."""

    audio_s: float
    speech_s: float
    speedup: float  # reference wall / our wall (best rounds): our throughput / the reference's
    speedup_per_round: list[float]
    ours: RunResult
    reference: RunResult
    runs: list[RunResult]


def summarize(runs: list[RunResult]) -> InputRow:
    by_impl = {impl: sorted((r for r in runs if r.impl == impl), key=lambda r: r.round) for impl in IMPLS}
    ours = min(by_impl["ours"], key=lambda r: r.wall_s)
    reference = min(by_impl["reference"], key=lambda r: r.wall_s)
    per_round = [ref.wall_s / our.wall_s for our, ref in zip(by_impl["ours"], by_impl["reference"], strict=False)]
    return InputRow(ours.audio_s, ours.speech_s, reference.wall_s / ours.wall_s, per_round, ours, reference, runs)


def format_duration(seconds: float) -> str:
    return f"{seconds:.3g} s" if seconds < 60 else f"{seconds / 60:.3g} min"


HEADER = (
    "| input | impl | wall s | RTF | x real time | first text s | tokens (asked) | tok/s "
    "| encoder / prefill / decode / other s | ms per decode step (rows) | CPU s | peak RSS GB (at start; stage) "
    "| load s | load avg |"
)


def _run_line(run: RunResult) -> str:
    steps = ", ".join(f"{ms:.0f} ({rows})" for rows, ms in run.step_ms.items())
    impl = run.impl if run.impl == "reference" else f"{run.impl}, batch {run.batch_size}"
    return (
        f"| {format_duration(run.audio_s)} ({run.speech_s:.0f} s speech) | {impl} | {run.wall_s:.1f} "
        f"| {run.rtf:.3f} | {1 / run.rtf:.2f} | {run.first_text_s:.1f} | {run.tokens} ({run.budget_tokens}) "
        f"| {run.tokens_per_s:.2f} | {run.encoder_s:.1f} / {run.prefill_s:.1f} / {run.decode_s:.1f} / "
        f"{run.other_s:.1f} | {steps} | {run.cpu_s:.0f} "
        f"| {run.peak_rss_mb / 1024:.2f} ({run.rss_after_load_mb / 1024:.2f}; {run.peak_stage}) | {run.load_s:.1f} "
        f"| {run.load_avg[0]:.1f}-{run.load_avg[1]:.1f} |"
    )


def table(rows: list[InputRow]) -> str:
    """Markdown: per input, the best round of ours and of the reference, then their ratio."""
    lines = [HEADER, "|" + "---|" * (HEADER.count("|") - 1)]
    for row in rows:
        ours, ref = row.ours, row.reference
        rounds = ", ".join(f"{s:.2f}" for s in row.speedup_per_round)
        lines += [_run_line(ours), _run_line(ref)]
        lines.append(
            f"| {format_duration(row.audio_s)} | **ours/ref** | {ours.wall_s / ref.wall_s:.2f} | | "
            f"**speedup {row.speedup:.2f}x** (rounds: {rounds}) | {ours.first_text_s / ref.first_text_s:.2f} "
            f"| {ours.tokens / ref.tokens:.2f} | {ours.tokens_per_s / ref.tokens_per_s:.2f} | "
            f"{_ratio(ours.encoder_s, ref.encoder_s)} / {_ratio(ours.prefill_s, ref.prefill_s)} / "
            f"{_ratio(ours.decode_s, ref.decode_s)} / {_ratio(ours.other_s, ref.other_s)} | "
            f"| {ours.cpu_s / ref.cpu_s:.2f} | {ours.peak_rss_mb / ref.peak_rss_mb:.2f} "
            f"| {ours.load_s / ref.load_s:.2f} | |"
        )
    return "\n".join(lines)


def runs_table(runs: list[RunResult]) -> str:
    """Markdown: every run, when only one implementation was measured (e.g. a batch-size sweep)."""
    return "\n".join([HEADER, "|" + "---|" * (HEADER.count("|") - 1), *map(_run_line, runs)])


def _best_rounds(runs: list[RunResult], impls: tuple[str, ...]) -> list[tuple[float, dict[str, RunResult]]]:
    """Per input length, in order: the fastest round of each of `impls`."""
    return [
        (audio_s, {impl: min((r for r in runs if r.audio_s == audio_s and r.impl == impl), key=lambda r: r.wall_s)
                   for impl in impls})
        for audio_s in sorted({run.audio_s for run in runs})
    ]  # fmt: skip


def decoder_ratios(runs: list[RunResult]) -> str:
    """Our loop / generate, per input: wall time (best rounds) and the median one-token step by batch rows."""
    lines = ["| input | wall loop / generate | step ms loop / generate (rows) |", "|---|---|---|"]
    for audio_s, best in _best_rounds(runs, DECODER_IMPLS):
        loop, generate = best[LOOP_IMPL], best[GENERATE_IMPL]
        shared = [rows for rows in loop.step_ms if rows in generate.step_ms]
        steps = ", ".join(
            f"{loop.step_ms[n]:.0f} / {generate.step_ms[n]:.0f} = {loop.step_ms[n] / generate.step_ms[n]:.2f} ({n})"
            for n in shared
        )
        lines.append(f"| {format_duration(audio_s)} | {loop.wall_s / generate.wall_s:.2f} | {steps} |")
    return "\n".join(lines)


def feature_cost(runs: list[RunResult], impls: tuple[str, str], feature: str) -> str:
    """With a feature (`impls[1]`) / without (`impls[0]`), per input: wall time, first text, peak memory."""
    lines = [
        f"| input | wall with / without {feature} | first text with / without | peak RSS with / without |",
        "|---|---|---|---|",
    ]
    for audio_s, best in _best_rounds(runs, impls):
        added, plain = best[impls[1]], best[impls[0]]
        lines.append(
            f"| {format_duration(audio_s)} | {added.wall_s:.1f} / {plain.wall_s:.1f} s "
            f"= {added.wall_s / plain.wall_s:.2f} "
            f"| {added.first_text_s:.1f} / {plain.first_text_s:.1f} s "
            f"| {added.peak_rss_mb / 1024:.2f} / {plain.peak_rss_mb / 1024:.2f} GB |"
        )
    aligned = [(audio_s, best[impls[1]]) for audio_s, best in _best_rounds(runs, impls) if best[impls[1]].aligner_split]
    if aligned:
        lines += [
            "",
            "| input | aligner passes | aligner encoder / prefill / processor s | speech model encoder + prefill s "
            "| aligner / speech model |",
            "|---|---|---|---|---|",
        ]
        for audio_s, run in aligned:
            split = run.aligner_split or {}
            model_s = run.encoder_s + run.prefill_s
            lines.append(
                f"| {format_duration(audio_s)} | {split['passes']:.0f} in {split['pass_s']:.1f} s "
                f"| {split['encoder_s']:.1f} / {split['prefill_s']:.1f} / {split['processor_s']:.1f} "
                f"| {model_s:.1f} | {_ratio(split['pass_s'], model_s)} |"
            )
    return "\n".join(lines)


def first_text_table(runs: list[RunResult]) -> str:
    """Markdown: where the time to the first text went, per run (ours: the first chunk's VAD and generate)."""
    lines = [
        "| input | impl | round | first text s | before the model / encoder / prefill / decode (steps) / other s |",
        "|---|---|---|---|---|",
    ]
    for run in runs:
        split = run.first_text_split
        lines.append(
            f"| {format_duration(run.audio_s)} | {run.impl} | {run.round} | {run.first_text_s:.2f} "
            f"| {split['before_model_s']:.2f} / {split['encoder_s']:.2f} / {split['prefill_s']:.2f} / "
            f"{split['decode_s']:.2f} ({split['steps']:.0f}) / {split['other_s']:.2f} |"
        )
    return "\n".join(lines)


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b > 0 else "-"
