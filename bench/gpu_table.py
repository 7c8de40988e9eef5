"""The one table of bench/gpu_check.sh, from the files its stages wrote into one folder.

python bench/gpu_table.py OUT_DIR
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def _load(folder: Path, name: str) -> Any:
    """A --json file's content (None when the stage did not run)."""
    path = folder / name
    return json.loads(path.read_text()) if path.is_file() else None


def _runs(payload: list | None) -> list[dict]:
    """Every run of a bench/run.py --json file, whether it holds rows (ours vs reference) or plain runs."""
    runs: list[dict] = []
    for item in payload or []:
        runs += item.get("runs", [item])
    return runs


def _cell(run: dict | None) -> str:
    if run is None:
        return "-"
    peak_gpu = f", GPU {run['peak_gpu_mb'] / 1024:.1f} GB" if run.get("peak_gpu_mb") else ""
    return (
        f"{run['wall_s']:.1f} s (RTF {run['wall_s'] / run['audio_s']:.4f}, first text {run['first_text_s']:.2f} s, "
        f"batch {run['batch_size']}, RSS {run['peak_rss_mb'] / 1024:.2f} GB{peak_gpu})"
    )


def _best(runs: list[dict], impl: str, audio_s: float) -> dict | None:
    """The fastest run of `impl` on this input, or None."""
    matching = [run for run in runs if run["impl"] == impl and run["audio_s"] == audio_s]
    return min(matching, key=lambda run: run["wall_s"], default=None)


def table(folder: Path) -> str:
    lines = [
        "| measure | reference | ours, generate (default) | ours, loop | ours, loop + CUDA graphs |",
        "|---|---|---|---|---|",
    ]
    steps = (_load(folder, "steps.json") or {}).get("step_ms", {})
    for batch in steps.get("generate", {}):
        cells = [steps.get(name, {}).get(batch) for name in ("generate", "loop", "loop+graphs")]
        times = " | ".join(f"{c:.2f} ms" if c else "-" for c in cells)
        lines.append(f"| decode step, batch {batch} | | {times} |")
    plain = _runs(_load(folder, "reference.json")) + _runs(_load(folder, "long.json"))
    graphs = _runs(_load(folder, "graphs.json"))
    for audio_s in sorted({run["audio_s"] for run in plain + graphs}):
        cells = [_best(plain, impl, audio_s) for impl in ("reference", "ours", "ours-loop")]
        cells.append(_best(graphs, "ours-loop", audio_s))
        lines.append(f"| {audio_s / 60:g} min of audio | " + " | ".join(map(_cell, cells)) + " |")
    pytest = folder / "pytest.txt"
    if pytest.is_file():
        summary = [line for line in pytest.read_text().splitlines() if line.strip()][-1:]
        lines.append(f"| pytest -m cuda | | | {summary[0] if summary else 'no output'} | |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(Path(sys.argv[1])))
