"""The double-click launcher, run for real: ``launch-linux.sh`` → ``launchers/start.py`` → Streamlit.

The end-to-end test runs the launcher in a temporary copy of the project (``launchers/``, ``.streamlit/``,
``requirements.txt``, ``pyproject.toml``, ``asr/`` and a one-line placeholder ``app.py``) whose ``.venv`` is a
virtual environment of its own that sees the packages of the prepared one that runs these tests (a ``.pth`` file
names its site-packages), so the launcher's ``pip install -e .`` installs the copy there and leaves the prepared
environment's ``asr`` alone. A copy, because the launcher test must not depend on the state of the real
``app.py`` (the browser tests cover the page, started through the same :func:`start.server_command`), and
``streamlit run`` refuses to start without the file.

First-run setup is exercised honestly and stays fast: the test deletes the setup marker, so the first launch runs the
real steps (``pip install torch==…`` with pip's own configuration, ``QWEN3_ASR_TORCH_INDEX=`` empty, because
download.pytorch.org is unreachable here; then ``pip install -r requirements.txt``, then ``pip install -e .``). The
packages are already installed, so pip only confirms them (about 5 s), installs the project (about 15 s, a build of
its own), and the launcher writes the marker for the same ``requirements.txt`` the project
has. The second launch must skip pip and be up within seconds.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import threading
import time
import tomllib
import urllib.request
from pathlib import Path

import pytest

from launchers import start

REPO = Path(__file__).resolve().parent.parent
LAUNCHER = REPO / "launchers" / "launch-linux.sh"
PLACEHOLDER_APP = 'import streamlit as st\n\nst.title("Launcher test page")\n'
READY = re.compile(r"^Transcriber ready: (http://127\.0\.0\.1:(\d+)/)$", re.MULTILINE)
LISTEN = "0A"  # TCP state in /proc/net/tcp*


# --------------------------------------------------------------------------------------------------------------------
# Helpers: a launcher process with its output, and what /proc says about processes and sockets.


class RunningLauncher:
    """``launch-linux.sh`` in its own session (like a terminal window), its output collected line by line."""

    def __init__(self, root: Path, env: dict[str, str], cwd: Path) -> None:
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            [str(root / "launchers" / "launch-linux.sh")],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._text: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def output(self) -> str:
        """Everything the launcher printed so far."""
        while True:
            try:
                line = self._lines.get_nowait()
            except queue.Empty:
                return "".join(self._text)
            if line is not None:
                self._text.append(line)

    def wait_ready(self, timeout_s: float) -> tuple[str, int]:
        """The page URL and port from the launcher's ``Transcriber ready:`` line."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            match = READY.search(self.output())
            if match:
                return match.group(1), int(match.group(2))
            if self.process.poll() is not None:
                time.sleep(0.2)  # let the reader drain the last lines
                break
            time.sleep(0.1)
        raise AssertionError(f"the launcher printed no page URL within {timeout_s} s:\n{self.output()}")

    def wait_exit(self, timeout_s: float) -> int:
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the launcher did not exit within {timeout_s} s:\n{self.output()}") from None

    def kill_leftovers(self) -> None:
        """Cleanup after a failed test: end whatever is left in the launcher's session, by process id."""
        for pid in session_pids(self.process.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (index 0 is the state, 1 the parent, 3 the session)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def _all_pids() -> list[int]:
    return [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]


def session_pids(session_id: int) -> list[int]:
    """Live (non-zombie) processes of a session."""
    found = []
    for pid in _all_pids():
        fields = _stat_fields(pid)
        if fields and int(fields[3]) == session_id and fields[0] != "Z":
            found.append(pid)
    return found


def child_pids(parent: int) -> list[int]:
    found = []
    for pid in _all_pids():
        fields = _stat_fields(pid)
        if fields and int(fields[1]) == parent:
            found.append(pid)
    return found


def socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    return inodes


def _decode_address(hex_address: str) -> str:
    """/proc/net/tcp* addresses are 32-bit words in host (little-endian) order."""
    raw = bytes.fromhex(hex_address)
    swapped = b"".join(raw[index : index + 4][::-1] for index in range(0, len(raw), 4))
    return socket.inet_ntop(socket.AF_INET if len(raw) == 4 else socket.AF_INET6, swapped)


def listening_sockets(pids: list[int]) -> set[tuple[str, int]]:
    """(address, port) of every TCP socket in LISTEN state owned by these processes, IPv4 and IPv6."""
    inodes = set().union(*(socket_inodes(pid) for pid in pids))
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == LISTEN and inode in inodes:
                address, port = local.split(":")
                found.add((_decode_address(address), int(port, 16)))
    return found


def http_get(url: str) -> tuple[int, str]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=5) as response:
        return response.status, response.read().decode()


def new_session_config(port: int):
    """Connect like a browser tab and return the ``Config`` part of the server's first ``NewSession`` message."""
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
    from websockets.sync.client import connect
    from websockets.typing import Subprotocol

    with connect(
        f"ws://127.0.0.1:{port}/_stcore/stream", subprotocols=[Subprotocol("streamlit")], proxy=None
    ) as websocket:
        rerun = BackMsg()
        rerun.rerun_script.query_string = ""
        websocket.send(rerun.SerializeToString())
        for _ in range(50):
            message = ForwardMsg()
            message.ParseFromString(websocket.recv(timeout=15))
            if message.WhichOneof("type") == "new_session":
                return message.new_session.config
    raise AssertionError("the server sent no NewSession message")


# --------------------------------------------------------------------------------------------------------------------
# The end-to-end test.


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the parts of the project the launcher needs, using the prepared .venv that runs this test."""
    assert sys.prefix != sys.base_prefix, "run the tests with the project's .venv (.venv/bin/python -m pytest)"
    root = tmp_path / "project"
    (root / "launchers").mkdir(parents=True)
    for name in ("start.py", "launch-linux.sh"):
        shutil.copy2(LAUNCHER.parent / name, root / "launchers" / name)
    shutil.copytree(REPO / ".streamlit", root / ".streamlit")
    shutil.copytree(REPO / "asr", root / "asr", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("requirements.txt", "pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, root / name)
    (root / "app.py").write_text(PLACEHOLDER_APP)
    venv = root / ".venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    (own,) = venv.glob("lib/python3*/site-packages")
    (own / "prepared-venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")  # pip and every package
    return root


def launcher_env() -> dict[str, str]:
    """This environment, as a user's terminal would have it: no desktop (no browser, no terminal re-launch)."""
    env = dict(os.environ)
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QWEN3_ASR_IN_TERMINAL", "QWEN3_ASR_PAUSE_ON_ERROR", "VIRTUAL_ENV"):
        env.pop(name, None)
    venv_bin = str(Path(sys.prefix) / "bin")
    env["PATH"] = os.pathsep.join(entry for entry in env.get("PATH", "").split(os.pathsep) if entry != venv_bin)
    env["QWEN3_ASR_NO_BROWSER"] = "1"
    env["QWEN3_ASR_TORCH_INDEX"] = ""  # pip's own configuration: download.pytorch.org is unreachable here
    return env


def check_serving(launcher: RunningLauncher, root: Path, port: int) -> int:
    """Health, command line, listening sockets and served config of a running launcher; returns the server's pid."""
    status, body = http_get(start.health_url(port))
    assert (status, body.strip()) == (200, "ok")

    children = child_pids(launcher.process.pid)
    assert len(children) == 1, f"expected one server process under the launcher, found {children}"
    server = children[0]
    command_line = Path(f"/proc/{server}/cmdline").read_bytes().decode().split("\0")[:-1]
    assert command_line == start.server_command(start.venv_python(root / ".venv"), port)
    assert Path(f"/proc/{server}/cwd").resolve() == root.resolve()

    # Only 127.0.0.1:PORT listens, in the whole session: nothing on 0.0.0.0, ::, or another port.
    assert listening_sockets(session_pids(launcher.process.pid)) == {("127.0.0.1", port)}

    config = new_session_config(port)
    assert config.gather_usage_stats is False
    assert config.toolbar_mode == config.ToolbarMode.MINIMAL  # .streamlit/config.toml was read
    return server


def check_asr_command(root: Path, outside: Path) -> None:
    """``.venv/bin/asr`` runs from a folder outside the project, and its ``asr`` is the project's own copy."""
    env = {key: value for key, value in launcher_env().items() if key != "PYTHONPATH"}
    shown = subprocess.run(
        [str(root / ".venv" / "bin" / "asr"), "--help"], cwd=outside, env=env, capture_output=True, text=True
    )
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("usage: asr ") and "transcribe" in shown.stdout
    where = subprocess.run(
        [str(start.venv_python(root / ".venv")), "-c", "import asr; print(asr.__file__)"],
        cwd=outside,
        env=env,
        capture_output=True,
        text=True,
    )
    assert Path(where.stdout.strip()) == root / "asr" / "__init__.py", where.stderr


def stop_and_check(launcher: RunningLauncher, server: int, port: int, *, whole_group: bool) -> float:
    """SIGINT like Ctrl-C (to the terminal's whole process group, or to the launcher alone); everything must end."""
    stopped = time.monotonic()
    if whole_group:
        os.killpg(launcher.process.pid, signal.SIGINT)
    else:
        os.kill(launcher.process.pid, signal.SIGINT)
    assert launcher.wait_exit(10) == 0, launcher.output()
    seconds = time.monotonic() - stopped
    assert "Stopped." in launcher.output()
    assert _stat_fields(server) is None, "the server process is still there"
    assert session_pids(launcher.process.pid) == []
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass
    return seconds


@pytest.mark.slow
def test_launcher_sets_up_serves_on_localhost_and_stops(project: Path, tmp_path: Path) -> None:
    marker = start.marker_path(project / ".venv")
    marker.unlink(missing_ok=True)
    env = launcher_env()

    # First launch: the setup steps run (pip finds everything installed), then the page is served.
    first = RunningLauncher(project, env, cwd=tmp_path)  # started from elsewhere: the script must cd itself
    try:
        url, port = first.wait_ready(timeout_s=90)
        output = first.output()
        assert url == start.page_url(port)
        assert "[2/4] Installing PyTorch (torch==2.13.0), from pip's own configuration" in output
        assert "[3/4] Installing the other packages from requirements.txt" in output
        assert "[4/4] Installing the transcriber itself" in output
        recorded = json.loads(marker.read_text())
        assert recorded["requirements_sha256"] == start.requirements_digest(project / "requirements.txt")
        assert recorded["requirements_sha256"] == start.requirements_digest(REPO / "requirements.txt")
        server = check_serving(first, project, port)
        stop_and_check(first, server, port, whole_group=True)
    finally:
        first.kill_leftovers()
    check_asr_command(project, outside=tmp_path)

    # Second launch: the marker matches, so no pip at all, and the page is up within seconds.
    second = RunningLauncher(project, env, cwd=project)
    try:
        url, port = second.wait_ready(timeout_s=30)
        ready_after = time.monotonic() - second.started
        output = second.output()
        assert "Packages: ready." in output
        assert "Installing" not in output and "pip" not in output
        assert ready_after < 20, f"the second start took {ready_after:.1f} s"
        server = check_serving(second, project, port)
        # Ctrl-C to the launcher alone (e.g. `kill -INT`): it must forward it and stop the server.
        stop_seconds = stop_and_check(second, server, port, whole_group=False)
        assert stop_seconds < 10
    finally:
        second.kill_leftovers()


# --------------------------------------------------------------------------------------------------------------------
# The shell script's Python search, and the parts of start.py the browser tests reuse.


def _fake_bin(tmp_path: Path, programs: dict[str, str]) -> dict[str, str]:
    """A PATH with bash, dirname and the given fake programs only (no real Python)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "dirname"):
        found = shutil.which(tool)
        assert found is not None, f"{tool} is not installed"
        (bin_dir / tool).symlink_to(found)
    for name, script in programs.items():
        path = bin_dir / name
        path.write_text(f"#!{shutil.which('bash')}\n{script}\n")
        path.chmod(0o755)
    env = {"PATH": str(bin_dir), "HOME": str(tmp_path), "QWEN3_ASR_NO_BROWSER": "1"}
    return env


def test_linux_launcher_refuses_old_or_missing_python(tmp_path: Path) -> None:
    assert os.access(LAUNCHER, os.X_OK), "launch-linux.sh must be executable to be double-clicked"
    broken_shim = 'echo "pyenv: python3.13: command not found" >&2; exit 127'
    old_python = '[ "$1" = --version ] && { echo "Python 3.9.18"; exit 0; }; exit 1'
    env = _fake_bin(tmp_path, {"python3.13": broken_shim, "python3": old_python})
    result = subprocess.run([str(LAUNCHER)], env=env, capture_output=True, text=True, timeout=10)
    assert result.returncode == 1
    assert "needs Python 3.11 or newer" in result.stderr
    assert "(python3 here is: Python 3.9.18)" in result.stderr
    assert "sudo apt install python3 python3-venv" in result.stderr

    (tmp_path / "bin" / "python3").unlink()
    (tmp_path / "bin" / "python3.13").unlink()
    result = subprocess.run([str(LAUNCHER)], env=env, capture_output=True, text=True, timeout=10)
    assert result.returncode == 1
    assert "needs Python 3.11 or newer" in result.stderr
    assert "python3 here is" not in result.stderr


def test_server_command_repeats_the_settings_that_matter() -> None:
    python = Path("/somewhere/.venv/bin/python")
    command = start.server_command(python, 8765)
    assert command[:5] == [str(python), "-m", "streamlit", "run", "app.py"]
    flags = command[5:]
    assert len(flags) % 2 == 0 and all(flag.startswith("--") for flag in flags[::2])
    settings = dict(zip(flags[::2], flags[1::2], strict=True))
    assert settings == {
        "--server.address": "127.0.0.1",
        "--server.port": "8765",
        "--server.headless": "true",
        "--browser.gatherUsageStats": "false",
        "--server.fileWatcherType": "none",
        "--server.enableXsrfProtection": "true",
        "--runner.postScriptGC": "false",  # a full collection per rerun stalled transcription (issue 15)
    }
    assert start.page_url(8765) == "http://127.0.0.1:8765/"
    assert start.health_url(8765) == "http://127.0.0.1:8765/_stcore/health"


def test_find_free_port_gives_a_bindable_localhost_port() -> None:
    ports = {start.find_free_port() for _ in range(5)}
    for port in ports:
        assert 1024 <= port <= 65535
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", port))  # raises if something holds it


def test_wait_until_healthy_explains_a_server_that_dies_or_never_answers() -> None:
    dying = subprocess.Popen(
        [sys.executable, "-c", "print('Error: no module named streamlit'); raise SystemExit(3)"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert dying.stdout is not None
    tail = start.OutputTail(dying.stdout)
    dying.wait(10)
    tail.join(5)
    with pytest.raises(start.LauncherError, match=r"(?s)exit code 3.*no module named streamlit"):
        start.wait_until_healthy(start.health_url(start.find_free_port()), dying, timeout_s=10, output=tail)

    silent = subprocess.Popen(
        [sys.executable, "-c", "import time; print('loading...', flush=True); time.sleep(30)"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert silent.stdout is not None
        tail = start.OutputTail(silent.stdout)
        with pytest.raises(start.LauncherError, match=r"(?s)did not answer .* within 1 s.*loading\.\.\."):
            start.wait_until_healthy(start.health_url(start.find_free_port()), silent, timeout_s=1, output=tail)
    finally:
        assert start.stop_server(silent, timeout_s=5) is not None
    assert silent.poll() is not None


def test_torch_plan_avoids_cuda_downloads_without_an_nvidia_gpu() -> None:
    cpu = start.torch_plan({}, "Linux", has_nvidia_gpu=False)
    assert cpu.pip_args == ["--index-url", "https://download.pytorch.org/whl/cpu"]
    assert start.torch_plan({}, "Windows", has_nvidia_gpu=False).pip_args == cpu.pip_args
    assert start.torch_plan({}, "Linux", has_nvidia_gpu=True).pip_args == []
    assert start.torch_plan({}, "Darwin", has_nvidia_gpu=False).pip_args == []
    assert start.torch_plan({"QWEN3_ASR_TORCH_INDEX": ""}, "Linux", has_nvidia_gpu=False).pip_args == []
    mirror = start.torch_plan({"QWEN3_ASR_TORCH_INDEX": "https://mirror.example/whl"}, "Linux", False)
    assert mirror.pip_args == ["--index-url", "https://mirror.example/whl"]
    assert start.torch_requirement(REPO / "requirements.txt") == "torch==2.13.0"


def test_the_port_stays_the_same_unless_it_is_taken() -> None:
    assert start.DEFAULT_PORT == 8531  # the address people bookmark: changing it breaks their bookmarks
    preferred = start.find_free_port()
    assert start.choose_port(preferred) == preferred
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind((start.HOST, preferred))
        taken.listen()
        fallback = start.choose_port(preferred)
    assert fallback != preferred and 1024 <= fallback <= 65535


def test_setup_marker_follows_requirements(tmp_path: Path) -> None:
    venv = tmp_path / ".venv"
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("# comment\ntorch==2.13.0  # pinned\nstreamlit==1.67.0\n")
    assert start.torch_requirement(requirements) == "torch==2.13.0"
    assert not start.setup_is_current(venv, requirements)  # no venv at all
    start.venv_python(venv).parent.mkdir(parents=True)
    start.venv_python(venv).write_text("")
    assert not start.setup_is_current(venv, requirements)  # a venv, never set up
    start.write_marker(venv, requirements)
    assert start.setup_is_current(venv, requirements)
    recorded = json.loads(start.marker_path(venv).read_text())
    start.marker_path(venv).write_text(json.dumps({**recorded, "steps": start.SETUP_STEPS - 1}))
    assert not start.setup_is_current(venv, requirements)  # set up by an older launcher: its new step runs once
    start.write_marker(venv, requirements)
    requirements.write_text("torch==2.13.0\nstreamlit==1.68.0\n")
    assert not start.setup_is_current(venv, requirements)  # changed requirements: install again
    start.marker_path(venv).write_text("{not json")
    assert not start.setup_is_current(venv, requirements)


def test_streamlit_config_keys_exist_and_keep_the_app_private() -> None:
    import streamlit.config

    with (REPO / ".streamlit" / "config.toml").open("rb") as file:
        config = tomllib.load(file)
    known = streamlit.config.get_config_options()
    keys = {f"{section}.{key}": value for section, table in config.items() for key, value in table.items()}
    unknown = sorted(set(keys) - set(known))
    assert not unknown, f"Streamlit {streamlit.__version__} has no option {unknown}"
    assert keys["server.address"] == "127.0.0.1"
    assert keys["server.headless"] is True
    assert keys["server.fileWatcherType"] == "none"
    assert keys["server.enableXsrfProtection"] is True
    assert keys["server.runOnSave"] is False
    assert keys["server.maxUploadSize"] == 2048
    assert keys["browser.gatherUsageStats"] is False
    assert keys["client.toolbarMode"] == "minimal"
    assert keys["runner.postScriptGC"] is False
    assert not any("font" in key.lower() for key in keys), "a web font would be fetched from the internet"
