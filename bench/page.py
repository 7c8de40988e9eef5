"""The page's own speed: Chromium against the app on the full-size random checkpoint, against the CLI on the same file.

    .venv/bin/python -m bench.page                                   # ~57 s of espeak-ng speech: about 5 min on 2 cores
    .venv/bin/python -m bench.page --json bench/results-page-cpu.json
    .venv/bin/python -m bench.page --py-spy out/                     # and a py-spy profile of the server per scenario

In one run, on one file (about 57 s of espeak-ng sentences with pauses, a WAV built like bench/run.py's inputs):

- cli: `python -m asr transcribe FILE --model <checkpoint>` in a fresh process, wall time from start to exit
  (torch import and model load included, as a user waits for them), and the same minus the model load the CLI logs;
- alone: the app served as the launcher serves it (`launchers.start.server_command`), one headless Debian Chromium
  tab with the file uploaded; the time from the click on Transcribe to the result's heading on the page (the model
  is loaded before: the page loads it when it opens);
- queued: two tabs with the file, the second clicks Transcribe as soon as the first one's run has started; the
  first tab's click-to-result while the second waits its turn (the goal), and the second's (its wait included);
- progress: in each tab that ran, every change of the progress line's text with its time (a MutationObserver in the
  page), and the longest gap between two changes of its "Processed m:ss" part (m:ss.s while slower than real
  time) from the first one to the result.
  The estimate ("about m:ss left") counts down between updates, so the whole line changes every second; the gap
  that matters is the one between real progress reports.

The CLI runs before and after the page scenarios (`--one-cli-run`: before only); ratios are against the mean of
the CLI runs (the machine is shared, so drift shows as a difference between them). Goals (issue 15): alone
<= 1.10x the CLI, the first tab with a second one queued <= 1.25x, and "Processed" changing at least every 2 s.

The checkpoint is bench/run.py's full-size Qwen3-ASR-0.6B with random weights and no end-of-text, so every chunk
decodes its whole token budget (the page and the CLI use the same default options, hence the same tokens).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import soundfile as sf
from playwright.sync_api import Browser, Page, ViewportSize, expect, sync_playwright

from asr.audio import SAMPLE_RATE
from bench.checkpoints import checkpoint_folder
from bench.inputs import build_speech
from testbed.app_server import CHROMIUM, CHROMIUM_ARGS, ROOT, AppServer, serve_app

BENCH_DIR = ROOT / "bench"
VIEWPORT: ViewportSize = {"width": 1400, "height": 900}

AUDIO_S = 57.0
FILE_NAME = "speech.wav"
QUEUE_MESSAGE = "Waiting for"  # the start of the queued tab's message
GOALS = {"alone": 1.10, "queued": 1.25, "progress_gap_s": 2.0}
RESULT_TIMEOUT_MS = 15 * 60_000
LOAD_TIMEOUT_MS = 5 * 60_000  # the first page of the server imports torch and loads the full-size model
_LOADED = re.compile(r"Loaded .* in (\d+(?:\.\d+)?) s")
_PROCESSED = re.compile(r"Processed (\d+:\d\d(?::\d\d)?(?:\.\d)?) /")
# Every change of the progress bar's text with the page's clock (ms), and every alert text, from the page's start.
_PROGRESS_SCRIPT = """
window.__progressLog = [];
window.__alerts = [];
new MutationObserver(() => {
  const bar = document.querySelector('[data-testid="stProgress"]');
  const text = bar ? bar.innerText.trim() : '';
  const log = window.__progressLog;
  if (text && (log.length === 0 || log[log.length - 1][1] !== text)) log.push([performance.now(), text]);
  for (const alert of document.querySelectorAll('[data-testid="stAlert"]')) {
    const said = alert.innerText.trim();
    if (said && !window.__alerts.includes(said)) window.__alerts.push(said);
  }
}).observe(document, {childList: true, subtree: true, characterData: true});
"""


@dataclass(frozen=True)
class Progress:
    """How a tab's progress line moved: its changes, and the longest gaps between them."""

    changes: int  # of the whole line
    processed_changes: int  # of its "Processed m:ss" part
    max_gap_s: float  # between two changes of the whole line
    max_processed_gap_s: float  # between two changes of "Processed m:ss", and from the last one to the result
    texts: list[tuple[float, str]] = field(repr=False)  # (seconds since the click, text)


@dataclass(frozen=True)
class TabRun:
    click_to_result_s: float
    progress: Progress
    saw_queue_message: bool  # the tab said that it waits for another transcription


@dataclass
class Report:
    audio_s: float
    cli_wall_s: list[float]
    cli_load_s: list[float]
    tabs: dict[str, TabRun]  # "alone", "queued-first", "queued-second": the scenarios that ran
    load_avg: list[float]
    post_script_gc: str
    threads: int | None  # torch threads of the CLI and the server; None: torch's default
    ratios: dict[str, float] = field(default_factory=dict)  # a tab's click-to-result / the CLI's mean wall time

    def compute(self) -> None:
        cli = statistics.mean(self.cli_wall_s)
        cli_work = statistics.mean(w - load for w, load in zip(self.cli_wall_s, self.cli_load_s, strict=True))
        for name, tab in self.tabs.items():
            self.ratios[name] = tab.click_to_result_s / cli
            self.ratios[f"{name}-vs-cli-without-load"] = tab.click_to_result_s / cli_work


def progress_of(log: list[list], clicked_ms: float, result_s: float) -> Progress:
    texts = [((at - clicked_ms) / 1000, text) for at, text in log if at >= clicked_ms]
    times = [at for at, _ in texts]
    processed: list[tuple[float, str]] = []
    for at, text in texts:
        match = _PROCESSED.search(text)
        if match and (not processed or processed[-1][1] != match[1]):
            processed.append((at, match[1]))
    processed_times = [at for at, _ in processed]
    return Progress(
        changes=len(texts),
        processed_changes=len(processed),
        max_gap_s=_max_gap([*times, result_s]),
        max_processed_gap_s=_max_gap([*processed_times, result_s]) if processed_times else result_s,
        texts=texts,
    )


def _max_gap(times: list[float]) -> float:
    return max((b - a for a, b in itertools.pairwise(times)), default=0.0)


def run_cli(audio: Path, checkpoint: Path, out: Path, threads: int | None) -> tuple[float, float]:
    """Wall time of the CLI on `audio`, and the model load time it logs."""
    command = [sys.executable, "-m", "asr", "transcribe", str(audio), "--model", str(checkpoint)]
    command += ["--output-dir", str(out), "-v"]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=_env(threads), capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"the CLI failed ({done.returncode}):\n{done.stderr[-3000:]}")
    loaded = _LOADED.search(done.stderr)
    load_s = float(loaded[1]) if loaded else 0.0
    print(f"cli: {wall:.1f} s (model load {load_s:.1f} s)", file=sys.stderr, flush=True)
    return wall, load_s


def _env(threads: int | None = None) -> dict[str, str]:
    """The CLI's and the server's environment; `threads` sets torch's intra-op threads (OMP_NUM_THREADS)."""
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        **({"OMP_NUM_THREADS": str(threads)} if threads else {}),
    }


def _server_env(checkpoint: Path, folder: Path, threads: int | None) -> dict[str, str]:
    threads_env = {"OMP_NUM_THREADS": str(threads)} if threads else {}
    return {"QWEN3_ASR_MODEL": str(checkpoint), "HF_HOME": str(folder / "hf"), **threads_env}


def open_tab(browser: Browser, server: AppServer, audio: Path) -> Page:
    """A fresh browser context (its own session) with the file uploaded and its player drawn."""
    context = browser.new_context(viewport=VIEWPORT)
    context.add_init_script(_PROGRESS_SCRIPT)
    page = context.new_page()
    page.goto(server.url)
    expect(page.get_by_test_id("stFileUploader")).to_be_visible(timeout=LOAD_TIMEOUT_MS)  # the model is loaded
    page.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(audio)
    expect(page.get_by_test_id("stAudio")).to_be_visible()
    _settle(page)
    return page


def _settle(page: Page) -> None:
    app = page.get_by_test_id("stApp")
    expect(app).to_have_attribute("data-test-script-state", "notRunning")
    expect(page.get_by_role("button", name="Transcribe", exact=True)).to_be_enabled()


def click_transcribe(page: Page) -> float:
    """Click Transcribe; returns the page's clock (ms) at the click."""
    clicked_ms = page.evaluate("performance.now()")
    page.get_by_role("button", name="Transcribe", exact=True).click()
    return clicked_ms


def wait_for_result(page: Page, clicked_ms: float) -> float:
    """Seconds from the click to the result's heading, by the page's clock."""
    heading = page.get_by_role("heading", name=FILE_NAME, exact=True)
    heading.wait_for(timeout=RESULT_TIMEOUT_MS)
    return (page.evaluate("performance.now()") - clicked_ms) / 1000


def tab_run(page: Page, clicked_ms: float, result_s: float) -> TabRun:
    log = page.evaluate("window.__progressLog")
    queued = any(QUEUE_MESSAGE in text for text in page.evaluate("window.__alerts"))
    return TabRun(result_s, progress_of(log, clicked_ms, result_s), queued)


@contextlib.contextmanager
def py_spy(pid: int, out: Path | None, name: str) -> Iterator[None]:
    """Record where the server's threads hold the GIL while the block runs (py-spy's collapsed stacks)."""
    if out is None:
        yield
        return
    out.mkdir(parents=True, exist_ok=True)
    py_spy = Path(sys.executable).parent / "py-spy"
    command = [str(py_spy), "record", "--pid", str(pid), "--threads", "--gil", "--rate", "50"]
    command += ["--format", "raw", "--output", str(out / f"{name}.txt")]
    recorder = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        recorder.send_signal(signal.SIGINT)
        recorder.wait(timeout=60)


def run_alone(browser: Browser, server: AppServer, audio: Path, profile: Path | None) -> TabRun:
    page = open_tab(browser, server, audio)
    with py_spy(server.process.pid, profile, "alone"):
        clicked = click_transcribe(page)
        alone = tab_run(page, clicked, wait_for_result(page, clicked))
    page.context.close()
    print(f"page alone: {alone.click_to_result_s:.1f} s", file=sys.stderr, flush=True)
    return alone


def run_queued(browser: Browser, server: AppServer, audio: Path, profile: Path | None) -> tuple[TabRun, TabRun]:
    first, second = open_tab(browser, server, audio), open_tab(browser, server, audio)
    with py_spy(server.process.pid, profile, "queued"):
        first_clicked = click_transcribe(first)
        expect(first.get_by_role("button", name="Cancel")).to_be_visible()
        second_clicked = click_transcribe(second)
        first_s = wait_for_result(first, first_clicked)
        second_s = wait_for_result(second, second_clicked)
    queued = tab_run(first, first_clicked, first_s), tab_run(second, second_clicked, second_s)
    for page in (first, second):
        page.context.close()
    print(f"page queued: first {first_s:.1f} s, second {second_s:.1f} s", file=sys.stderr, flush=True)
    return queued


def post_script_gc_setting() -> str:
    """What the app server is started with, so a result says which setting it measured."""
    from launchers import start

    command = start.server_command(Path(sys.executable), 0)
    return command[command.index("--runner.postScriptGC") + 1] if "--runner.postScriptGC" in command else "default"


def summary(report: Report) -> str:
    lines = [
        f"File {report.audio_s:.0f} s; CLI wall {', '.join(f'{w:.1f}' for w in report.cli_wall_s)} s "
        f"(model load {', '.join(f'{s:.1f}' for s in report.cli_load_s)} s)",
    ]
    for name, goal in (("alone", GOALS["alone"]), ("queued-first", GOALS["queued"]), ("queued-second", None)):
        tab = report.tabs.get(name)
        if tab is None:
            continue
        verdict = "" if goal is None else f"; goal <= {goal}x: {'met' if report.ratios[name] <= goal else 'missed'}"
        gap_goal = GOALS["progress_gap_s"]
        lines.append(
            f"{name}: {tab.click_to_result_s:.1f} s = {report.ratios[name]:.2f}x the CLI "
            f"({report.ratios[f'{name}-vs-cli-without-load']:.2f}x its time without the load){verdict}; "
            f"'Processed' changed {tab.progress.processed_changes} times, longest gap "
            f"{tab.progress.max_processed_gap_s:.1f} s (goal <= {gap_goal} s: "
            f"{'met' if tab.progress.max_processed_gap_s <= gap_goal else 'missed'})"
            + (f"; queue message shown: {tab.saw_queue_message}" if name == "queued-second" else "")
        )
    lines.append(
        f"Load average 1 min {report.load_avg[0]:.1f} at the end ({os.cpu_count()} CPUs); "
        f"runner.postScriptGC: {report.post_script_gc}; torch threads: {report.threads or 'default'}"
    )
    return "\n".join(lines)


def report(args: argparse.Namespace, cli: list[tuple[float, float]], tabs: dict[str, TabRun]) -> Report:
    """The report of what ran so far, written to `--json` too."""
    done = Report(
        audio_s=args.audio_s,
        cli_wall_s=[wall for wall, _ in cli],
        cli_load_s=[load for _, load in cli],
        tabs=dict(tabs),
        load_avg=list(os.getloadavg()),
        post_script_gc=post_script_gc_setting(),
        threads=args.threads,
    )
    done.compute()
    if args.json:
        args.json.write_text(json.dumps(asdict(done), indent=2))
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--audio-s", type=float, default=AUDIO_S, help="length of the test file in seconds")
    parser.add_argument("--scenarios", default="alone,queued", help="comma-separated: alone, queued")
    parser.add_argument("--json", type=Path, help="write the report (every progress text included) here")
    parser.add_argument("--py-spy", type=Path, help="folder for py-spy profiles of the server (GIL holders)")
    parser.add_argument("--cache-dir", type=Path, default=BENCH_DIR / ".cache")
    parser.add_argument("--one-cli-run", action="store_true", help="the CLI before the page only, not after it too")
    parser.add_argument("--threads", type=int, help="torch threads for the CLI and the server (default: torch's)")
    args = parser.parse_args(argv)
    expect.set_options(timeout=LOAD_TIMEOUT_MS)  # a busy machine: a script run can take tens of seconds
    scenarios = set(args.scenarios.split(","))
    checkpoint = checkpoint_folder(args.cache_dir)
    if not checkpoint.is_dir():
        print(f"Writing the full-size random checkpoint to {checkpoint} (once) ...", file=sys.stderr, flush=True)
        build = [sys.executable, "-m", "bench.run", "--worker", "build", "--checkpoint", str(checkpoint)]
        subprocess.run(build, cwd=ROOT, env=_env(), check=True, capture_output=True)
    tabs: dict[str, TabRun] = {}
    with tempfile.TemporaryDirectory(prefix="page-bench-") as temp:
        folder = Path(temp)
        audio = folder / FILE_NAME
        sf.write(audio, build_speech(args.audio_s).samples, SAMPLE_RATE, subtype="PCM_16")
        cli = [run_cli(audio, checkpoint, folder, args.threads)]
        with (
            serve_app(folder / "server", **_server_env(checkpoint, folder, args.threads)) as server,
            sync_playwright() as playwright,
        ):
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=list(CHROMIUM_ARGS))
            try:
                if "alone" in scenarios:
                    tabs["alone"] = run_alone(browser, server, audio, args.py_spy)
                    report(args, cli, tabs)  # kept if a later scenario fails or is stopped
                if "queued" in scenarios:
                    tabs["queued-first"], tabs["queued-second"] = run_queued(browser, server, audio, args.py_spy)
            finally:
                browser.close()
        if not args.one_cli_run:
            cli.append(run_cli(audio, checkpoint, folder, args.threads))
    print(summary(report(args, cli, tabs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
