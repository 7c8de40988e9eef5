"""The soak (testbed/soak.py) in short: many transcriptions in one process leak no memory, descriptors, threads
or temp folders. `python -m testbed.soak --runs 500` is the full one of the hardening issue."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np
import pytest

from asr import tempfiles
from testbed.soak import MAX_GROWTH_MB, SCHEDULE, Clips, make_clips, soak

SHORT_RUNS = 80  # after the warm-up (61 runs): about 15 to 40 s of runs on two busy cores
FULL_RUNS = 500  # what MAX_GROWTH_MB is for
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Clips:
    return make_clips(tmp_path_factory.mktemp("soak-clips"))


@pytest.mark.slow
def test_short_soak_leaks_nothing(tiny_model_dir) -> None:
    """The script itself, 80 runs, on one malloc arena (MALLOC_ARENA_MAX=1), RSS growth under 4 MB.

    With glibc's default of an arena per thread, each new job thread may get an arena that keeps a few MB of free
    pages after its biggest run: RSS climbs 4 to 20 MB in steps over the first hundred runs, then stays flat. Fine
    for 50 MB over 500 runs, too noisy for a short run. On one arena RSS stayed within 0.5 MB over 80 runs after the
    warm-up. The limit is half of the short run's share of the 500-run limit because a leak's first MB come out of
    free space the allocator already holds: a leak at the issue's rate (0.1 MB a run) grew RSS by 4.2 and 5.5 MB.
    """
    limit_mb = MAX_GROWTH_MB * SHORT_RUNS / FULL_RUNS / 2
    command = [sys.executable, "-m", "testbed.soak", "--runs", str(SHORT_RUNS), "--max-growth-mb", str(limit_mb)]
    result = subprocess.run(
        [*command, "--model", str(tiny_model_dir)],
        cwd=ROOT,
        env={**os.environ, "MALLOC_ARENA_MAX": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    print(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert result.stdout.splitlines()[-1] == "PASS" and "failures: 0" in result.stdout


@pytest.mark.slow
def test_soak_sees_every_kind_of_leak(engine, clips: Clips) -> None:
    """A soak that cannot see a leak would pass anything: leak each thing on purpose and expect it reported."""
    runs = len(SCHEDULE)  # one of each kind
    leak_mb = 3 * MAX_GROWTH_MB / runs  # three times the limit in all
    files, kept, stop = [], [], threading.Event()
    threads: list[threading.Thread] = []

    def leak(index: int) -> None:
        files.append(open(os.devnull, "rb"))  # noqa: SIM115 (left open on purpose)
        tempfile.mkdtemp(prefix=tempfiles.PREFIX)  # lands in the soak's own temp root, which it removes at the end
        threads.append(threading.Thread(target=stop.wait, name=f"leaked-{index}", daemon=True))
        threads[-1].start()
        kept.append(np.ones(round(leak_mb * 2**20 / 8)))  # float64, written: resident

    not_audio = dataclasses.replace(clips, bad={"wav": clips.good["wav"]})  # a "bad" input that decodes fine
    try:
        report = soak(engine, runs, not_audio, warm_up=False, after_run=leak)
    finally:
        for file in files:
            file.close()
        stop.set()
        for thread in threads:
            thread.join()
    problems = "\n".join(report.problems())
    # Less than all of it shows: the engine's malloc_trim hands back slack the baseline still held (in one CI run
    # 55 of 100 MB showed), so three times the limit is leaked, and what matters is that the soak reports it.
    assert report.growth_mb > MAX_GROWTH_MB and "RSS grew" in problems
    assert report.fds_end - report.fds_start == runs and report.new_fds == [os.devnull] * runs
    assert "threads left running: ['leaked-0', 'leaked-1'" in problems and "more OS thread(s)" in problems
    assert len(report.leftover_dirs) == runs and "temporary folders left" in problems
    assert not any(map(os.path.exists, report.leftover_dirs))  # the soak removed its temp root
    assert "run failed" in problems and "no AudioDecodeError" in problems
