"""The decoder under fuzzing (testbed/fuzz_decoder.py): the regression cases, and a bounded pass of the fuzzer."""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import asr
from testbed.fuzz_decoder import REGRESSIONS, check_one_input

ROOT = Path(__file__).resolve().parents[1]
RUNS = 1500  # about a minute on two idle cores; the seed fixes the mutations, so every run tries the same inputs


@pytest.mark.parametrize("name", sorted(REGRESSIONS))
def test_each_regression_case_is_refused_in_one_line(name: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # only our own temporary folders are counted
    data = REGRESSIONS[name]()
    check_one_input(data)
    for read in (asr.decode_audio, asr.read_source_info, asr.overview):
        with pytest.raises(asr.AudioDecodeError, match=r"has a damaged header: it gives a sample rate of [\d,]+ Hz"):
            read(data)


@pytest.mark.slow
def test_a_bounded_fuzz_pass_breaks_no_promise(tmp_path: Path) -> None:
    """libFuzzer exits non-zero, with the input that broke a promise, at the first failed check."""
    command = [sys.executable, "-m", "testbed.fuzz_decoder", f"-runs={RUNS}", "-seed=1", "-timeout=60"]
    command += ["-rss_limit_mb=3072", f"-artifact_prefix={tmp_path}/", str(tmp_path / "corpus")]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stderr[-6000:]
    ran = re.search(r"^Done (\d+) runs", done.stderr, re.MULTILINE)
    assert ran is not None and int(ran.group(1)) >= RUNS  # libFuzzer may count the empty seed input as one more
    assert not list(tmp_path.glob("crash-*")) and not list(tmp_path.glob("timeout-*"))
