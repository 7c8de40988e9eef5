"""Privacy with the network taken away: the CLI, the library and the app (server plus a real browser) transcribe
inside a network namespace that has only loopback, with the model already on disk.

Each run starts under ``unshare --net --pid --fork --kill-child``: a fresh network namespace whose only interface is
``lo`` (brought up), and a PID namespace so that every process of the run (server, Chromium) dies with it. Before the
command, a probe in the same namespaces checks that ``lo`` is the only interface, that connecting to 1.1.1.1 fails
with ENETUNREACH and that `asr.netwatch` counts that attempt: if unshare did nothing, the tests fail.

Every Python process of a run gets an audit hook (PEP 578) from a ``sitecustomize.py`` on PYTHONPATH, so commands run
unchanged (the server exactly as the launcher starts it). It logs each ``socket.connect``, ``socket.sendto``,
``socket.getaddrinfo`` and ``socket.bind`` with its process id. The probe's own attempt shows the hook was live; no
other process may have reached for an address off this machine. Chromium is no Python process: the namespace alone
keeps it in.

Needs root for the namespaces (CI runs as root); skipped otherwise. The app test runs this file as a script inside
the namespace: ``python tests/test_netns.py FOLDER MODEL_DIR AUDIO`` serves the app, transcribes AUDIO in Chromium
and prints what the page showed as JSON.
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect, sync_playwright

import asr
from asr.netwatch import _leaves_machine
from testbed.app_server import SCRUBBED_ENV, serve_app
from testbed.browser import (
    EXPECT_TIMEOUT_MS,
    add_file,
    assert_no_traceback,
    expect_result,
    launch_chromium,
    open_app_page,
)
from testbed.browser import transcribe as click_transcribe

ROOT = Path(__file__).resolve().parents[1]
RUN_TIMEOUT_S = 300  # a whole run on 2 busy cores: torch import, model load, transcription (and the browser)
NAMESPACES = ["unshare", "--net", "--pid", "--fork", "--kill-child", "--"]
OUTSIDE = ("1.1.1.1", 53)  # any internet address: the probe must fail to reach it
REACHING_OUT = ("socket.connect", "socket.sendto", "socket.getaddrinfo")  # logged besides these: socket.bind

# Written as sitecustomize.py into a folder on PYTHONPATH: Python imports it at start-up, before the command runs.
_RECORDER = '''\
"""From tests/test_netns.py: log every socket connect, send-to, name lookup and bind of this process (audit hook)."""

import json
import os
import sys
import threading

_log = open(os.environ["NETNS_SOCKET_LOG"], "a", buffering=1, encoding="utf-8")
_lock = threading.Lock()


def _audit(event, args):
    if event in ("socket.connect", "socket.sendto", "socket.bind"):
        address = args[1]
    elif event == "socket.getaddrinfo":
        address = args[:2]  # host, port
    else:
        return
    line = json.dumps({"pid": os.getpid(), "event": event, "address": address}, default=repr)
    with _lock:
        _log.write(line + "\\n")


sys.addaudithook(_audit)
'''

# Runs in the namespace before the command: is this really a loopback-only network?
_PROBE = textwrap.dedent(
    f"""
    import errno, json, os, socket
    from asr import netwatch

    netwatch.start_watching()
    try:
        socket.create_connection({OUTSIDE!r}, timeout=5).close()
        outcome = "connected"
    except OSError as error:
        outcome = errno.errorcode.get(error.errno, repr(error))
    print(json.dumps({{
        "pid": os.getpid(),
        "interfaces": [name for _, name in socket.if_nameindex()],
        "connect": outcome,
        "netwatch": netwatch.outside_connections(),
    }}))
    """
)

# Inside the namespaces: bring loopback up, probe, then run the command (sh stays the namespace's first process).
_IN_NAMESPACE = 'ip link set lo up && "$NETNS_PYTHON" -c "$NETNS_PROBE" > "$NETNS_PROBE_FILE" && "$@"'

# The Python API as the README shows it, with the app's connection counter (asr.netwatch) watching from the start.
_LIBRARY_RUN = textwrap.dedent(
    """
    import json, sys
    from asr import netwatch

    netwatch.start_watching()
    import asr

    engine = asr.QwenEngine.load(sys.argv[1])
    transcript = asr.transcribe_all(sys.argv[2], engine=engine)
    print(json.dumps({"txt": asr.WRITERS["txt"](transcript), "outside": netwatch.outside_connections()}))
    """
)

# The API server as the README starts it, asked by the real openai client; prints the text, the server's pid and URL.
_SERVER_RUN = textwrap.dedent(
    """
    import json, os, re, subprocess, sys
    import openai

    command = [sys.executable, "-m", "asr", "serve", "--port", "0", "--model", sys.argv[1]]
    server = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    try:
        for line in server.stderr:
            found = re.search(r"at (http://\\S+)/v1 ", line)
            if found:
                break
        url = found.group(1)
        api = openai.OpenAI(base_url=url + "/v1", api_key="local", max_retries=0, timeout=300)
        with open(sys.argv[2], "rb") as audio:
            text = api.audio.transcriptions.create(model="whisper-1", file=audio).text
        print(json.dumps({"text": text, "server_pid": server.pid, "url": url}))
    finally:
        server.terminate()
        server.wait(60)
    """
)


@dataclass
class Isolated:
    """One command's run in its own loopback-only namespace."""

    result: subprocess.CompletedProcess[str]
    probe: dict[str, Any]
    sockets: list[dict[str, Any]]  # what the audit hooks logged, from every Python process of the run

    def json_output(self) -> dict[str, Any]:
        """The last line of the command's stdout, where the scripts here print their report."""
        assert self.result.returncode == 0, f"exit code {self.result.returncode}\n{self.result.stderr[-6000:]}"
        return json.loads(self.result.stdout.strip().splitlines()[-1])

    def of_command(self) -> list[dict[str, Any]]:
        """Socket events of the command's processes (the probe's left out)."""
        return [event for event in self.sockets if event["pid"] != self.probe["pid"]]

    def assert_isolated(self) -> None:
        """The namespace had only loopback, the hooks were live, and the command tried no address off the machine."""
        assert self.probe["interfaces"] == ["lo"], self.probe
        assert self.probe["connect"] == "ENETUNREACH", self.probe
        assert self.probe["netwatch"] == 1, self.probe  # netwatch counts an attempt even when it fails
        probe_connects = [e["address"] for e in self.sockets if e["pid"] == self.probe["pid"]]
        assert list(OUTSIDE) in probe_connects, self.sockets  # the recorder saw the probe's attempt
        outside = [e for e in self.of_command() if e["event"] in REACHING_OUT and _leaves_machine(tuple(e["address"]))]
        assert outside == [], f"connections off the machine were tried: {outside}"


@functools.cache
def _namespaces_unavailable() -> str | None:
    """Why this machine cannot make the namespaces (None when it can)."""
    if os.geteuid() != 0:
        return "network namespaces need root here (unshare --net); CI runs as root"
    missing = [tool for tool in ("unshare", "ip") if shutil.which(tool) is None]
    if missing:
        return f"{' and '.join(missing)} not installed (util-linux, iproute2)"
    trial = subprocess.run([*NAMESPACES, "ip", "link", "set", "lo", "up"], capture_output=True, text=True, timeout=30)
    if trial.returncode != 0:
        return f"unshare --net --pid failed here: {trial.stderr.strip()}"
    return None


def run_isolated(command: list[str], folder: Path, timeout_s: float = RUN_TIMEOUT_S) -> Isolated:
    """Run `command` from the project folder in new network and PID namespaces, after the probe, with the hooks."""
    recorder = folder / "recorder"
    recorder.mkdir(parents=True)
    (recorder / "sitecustomize.py").write_text(_RECORDER, encoding="utf-8")
    socket_log, probe_file = folder / "sockets.jsonl", folder / "probe.json"
    env = {key: value for key, value in os.environ.items() if key not in SCRUBBED_ENV}
    env.update(
        PYTHONPATH=os.pathsep.join(str(path) for path in (recorder, ROOT, ROOT / "tests")),
        NETNS_SOCKET_LOG=str(socket_log),
        NETNS_PYTHON=sys.executable,
        NETNS_PROBE=_PROBE,
        NETNS_PROBE_FILE=str(probe_file),
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HOME=str(folder / "hf_home"),  # an empty hub cache: the model comes from its folder only
    )
    process = subprocess.Popen(
        [*NAMESPACES, "sh", "-c", _IN_NAMESPACE, "netns", *command],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()  # --kill-child: the namespace's first process dies, and the kernel ends every other one in it
        stdout, stderr = process.communicate()
        pytest.fail(f"{command[:4]} did not finish within {timeout_s} s\n{stdout[-3000:]}\n{stderr[-6000:]}")
    result = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    assert probe_file.exists() and probe_file.stat().st_size, f"the probe did not run:\n{stderr}"
    sockets = [json.loads(line) for line in socket_log.read_text(encoding="utf-8").splitlines()]
    return Isolated(result, json.loads(probe_file.read_text(encoding="utf-8")), sockets)


@pytest.fixture
def isolated(tmp_path: Path) -> Callable[[list[str]], Isolated]:
    """Factory: ``isolated(command)`` is `run_isolated` in a folder of its own under tmp_path (skips without root)."""
    reason = _namespaces_unavailable()
    if reason:
        pytest.skip(reason)
    runs = itertools.count()
    return lambda command: run_isolated(command, tmp_path / f"run-{next(runs)}")


@pytest.fixture(scope="module")
def meeting_mp3(interview_mp3: bytes, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 15 s of espeak-ng speech in three sentences, as an MP3 file."""
    path = tmp_path_factory.mktemp("netns-audio") / "meeting.mp3"
    path.write_bytes(interview_mp3)
    return path


@pytest.fixture(scope="module")
def expected_txt(engine, meeting_mp3: Path) -> str:
    """The plain text of `meeting_mp3` transcribed here, outside any namespace, by the same tiny checkpoint."""
    txt = asr.WRITERS["txt"](asr.transcribe_all(meeting_mp3, engine=engine))
    assert isinstance(txt, str) and txt.strip(), "the tiny checkpoint gave no text: nothing to compare"
    return txt


@pytest.mark.slow
def test_cli_transcribes_with_loopback_only(isolated, tmp_path, tiny_model_dir, meeting_mp3, expected_txt):
    out = tmp_path / "out"
    command = ["transcribe", str(meeting_mp3), "--model", str(tiny_model_dir), "--format", "all", "--output-dir"]
    run = isolated([sys.executable, "-m", "asr", *command, str(out)])
    assert run.result.returncode == 0, run.result.stderr[-6000:]
    run.assert_isolated()
    assert (out / "meeting.txt").read_bytes().decode() == expected_txt  # bytes: the text may hold a \r
    srt = (out / "meeting.srt").read_text(encoding="utf-8")
    assert srt.startswith("1\n00:00:0") and " --> 00:00:" in srt, srt
    assert json.loads((out / "meeting.json").read_text(encoding="utf-8"))["segments"]
    assert (out / "meeting.vtt").read_text(encoding="utf-8").startswith("WEBVTT\n")


@pytest.mark.slow
def test_batch_on_a_local_ray_cluster_with_loopback_only(isolated, tmp_path, tiny_model_dir, meeting_mp3, expected_txt):
    """Ray's own servers are C++ and not audited; the namespace keeps them in, and its Python workers are audited."""
    out = tmp_path / "out"
    command = ["batch", str(meeting_mp3), "--ray", "local", "--model", str(tiny_model_dir), "--device", "cpu"]
    run = isolated([sys.executable, "-m", "asr", *command, "--output-dir", str(out)])
    assert run.result.returncode == 0, run.result.stderr[-6000:]
    run.assert_isolated()
    assert (out / "meeting.txt").read_bytes().decode() == expected_txt
    assert len({e["pid"] for e in run.of_command()}) > 1  # the hook saw the workers' processes too, not only the driver


@pytest.mark.slow
def test_library_load_and_transcribe_open_no_outside_connection(isolated, tiny_model_dir, meeting_mp3, expected_txt):
    run = isolated([sys.executable, "-c", _LIBRARY_RUN, str(tiny_model_dir), str(meeting_mp3)])
    report = run.json_output()
    run.assert_isolated()
    assert report == {"txt": expected_txt, "outside": 0}


@pytest.mark.slow
def test_api_server_answers_the_openai_client_with_loopback_only(isolated, tiny_model_dir, meeting_mp3, expected_txt):
    run = isolated([sys.executable, "-c", _SERVER_RUN, str(tiny_model_dir), str(meeting_mp3)])
    report = run.json_output()
    run.assert_isolated()
    assert report["text"] + "\n" == expected_txt
    binds = [e["address"] for e in run.of_command() if e["event"] == "socket.bind" and e["pid"] == report["server_pid"]]
    assert binds == [["127.0.0.1", 0]], binds  # loopback only, by default; --port 0: the kernel picks the port
    assert urlsplit(report["url"]).hostname == "127.0.0.1" and urlsplit(report["url"]).port


@pytest.mark.slow
def test_app_serves_and_transcribes_in_chromium_with_loopback_only(
    isolated, tmp_path, tiny_model_dir, meeting_mp3, expected_txt
):
    run = isolated([sys.executable, __file__, str(tmp_path / "app"), str(tiny_model_dir), str(meeting_mp3)])
    report = run.json_output()
    run.assert_isolated()
    assert report["txt"] == expected_txt  # the TXT download
    assert report["copy_block"].strip() == expected_txt.strip()
    assert "Network use since start: none" in report["sidebar"], report["sidebar"]  # the server's own netwatch
    # The hook was live in the server process too: it saw the server bind its page's address.
    binds = [(e["pid"], e["address"]) for e in run.of_command() if e["event"] == "socket.bind"]
    server_address = ["127.0.0.1", urlsplit(report["url"]).port]
    assert any(pid != report["pid"] and address == server_address for pid, address in binds), binds


# -- inside the namespace: the app test's browser side --------------------------------------------------------------


def drive_app(folder: Path, model_dir: Path, audio: Path) -> dict[str, Any]:
    """Serve the app as the launcher does, transcribe `audio` through Chromium's file chooser, report the page."""
    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    with (
        serve_app(folder, QWEN3_ASR_MODEL=str(model_dir), HF_HOME=str(folder / "hf_home")) as server,
        sync_playwright() as playwright,
    ):
        browser = launch_chromium(playwright)
        try:
            page = open_app_page(browser, server)
            add_file(page, audio.name, "audio/mpeg", audio.read_bytes())
            click_transcribe(page)
            expect_result(page, audio.name)
            with page.expect_download() as download:
                page.get_by_role("button", name="TXT").click()
            report = {
                "pid": os.getpid(),
                "url": server.url,
                "txt": Path(download.value.path()).read_bytes().decode(),
                "copy_block": page.get_by_test_id("stCode").inner_text(),
                "sidebar": page.get_by_test_id("stSidebar").inner_text(),
            }
            assert_no_traceback(page)
        finally:
            browser.close()
    return report


if __name__ == "__main__":
    print(json.dumps(drive_app(*(Path(arg) for arg in sys.argv[1:4]))))
