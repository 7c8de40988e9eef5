"""Start the local transcriber: set up ``.venv`` on the first run, serve ``app.py`` on 127.0.0.1, open the browser.

The three double-click launchers (``launch-linux.sh``, ``launch-macos.command``, ``launch-windows.bat``) only find a
Python >= 3.11 and run this file with it, so the logic lives here once. Standard library only: it runs before the
virtual environment exists. The browser tests import it too (``from launchers import start``) and start the app
through :func:`server_command`, so the app is tested the way this launcher starts it.

First run (or after ``requirements.txt`` changed):

1. ``python -m venv .venv`` in the project folder (skipped when ``.venv`` already has a Python);
2. ``pip install torch==<pin from requirements.txt>`` first, from PyTorch's CPU-only index on a computer without an
   NVIDIA GPU (no ``nvidia-smi``) that is not a Mac, so pip does not download gigabytes of CUDA libraries;
3. ``pip install -r requirements.txt``;
4. ``pip install --no-deps -e .``: the project itself, so ``.venv``'s ``asr`` command works from any folder;
5. write ``.venv/qwen3-asr-setup.json`` holding the SHA-256 of ``requirements.txt``. A later start whose
   ``requirements.txt`` has the same hash skips steps 1-4 and starts in seconds.

Every run: port ``DEFAULT_PORT`` on 127.0.0.1 (so a bookmark keeps working), or a free one when that port is taken,
``<venv python> -m streamlit run app.py`` with the settings that matter for
privacy repeated on the command line, wait for ``/_stcore/health``, open the page, and stop the server cleanly on
Ctrl-C. Nothing but pip goes online; Streamlit's usage statistics are off.

Environment variables:

- ``QWEN3_ASR_NO_BROWSER=1``: do not open a browser tab (the address is printed either way).
- ``QWEN3_ASR_TORCH_INDEX``: the pip index for PyTorch. Unset: chosen automatically as above. Empty: pip's own
  configuration (``pip.conf``, ``PIP_INDEX_URL``, ...). A URL: that index, e.g.
  ``https://download.pytorch.org/whl/cu128`` for an NVIDIA GPU on Windows.
- ``QWEN3_ASR_START_TIMEOUT``: seconds to wait for the server to answer (default 120).
- ``QWEN3_ASR_PAUSE_ON_ERROR=1``: wait for Enter before exiting after an error (set by ``launch-linux.sh`` when it
  opens its own terminal window, so the message stays readable).
"""

# Keep the syntax readable by old Pythons (no `match`, no `X | Y` outside annotations): a too-old interpreter must
# reach the version check in main() and print its message instead of a SyntaxError.
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import webbrowser
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import IO, NamedTuple, TextIO

# The file itself runs on 3.10, but the pinned packages do not: Streamlit 1.67, transformers 5.23, PyAV 18 and
# NumPy 2.4 all require Python >= 3.11, and the venv is made with the Python that runs this file.
MIN_PYTHON = (3, 11)
PROJECT_ROOT = Path(__file__).resolve().parent.parent
VENV_DIR = PROJECT_ROOT / ".venv"
REQUIREMENTS = PROJECT_ROOT / "requirements.txt"
APP = "app.py"
HOST = "127.0.0.1"
DEFAULT_PORT = 8531  # the page's address stays http://127.0.0.1:8531/ from one start to the next, when it is free
MARKER_NAME = "qwen3-asr-setup.json"
SETUP_STEPS = 4  # recorded in the marker: a set-up made by a launcher with fewer steps is done again once
CPU_TORCH_INDEX = "https://download.pytorch.org/whl/cpu"
TORCH_INDEX_ENV = "QWEN3_ASR_TORCH_INDEX"
DEFAULT_START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 10.0

# Streamlit's own start-up banner names "your Streamlit app" and repeats the address; we print ours instead.
_BANNER_LINES = ("You can now view your Streamlit app in your browser.", "URL: http://")


class LauncherError(Exception):
    """A problem the user can act on; the message says what happened and what to do."""


class TorchPlan(NamedTuple):
    """How PyTorch is installed: extra pip arguments, a sentence for the user, disk space the whole set-up needs."""

    pip_args: list[str]
    description: str
    disk_gb: int = 2


# --------------------------------------------------------------------------------------------------------------------
# Server: the part the browser tests reuse.


def venv_python(venv: Path = VENV_DIR) -> Path:
    """The Python interpreter inside a virtual environment, on this operating system."""
    if os.name == "nt":
        return venv / "Scripts" / "python.exe"
    return venv / "bin" / "python"


def find_free_port(host: str = HOST) -> int:
    """A TCP port on ``host`` that nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def choose_port(preferred: int = DEFAULT_PORT, host: str = HOST) -> int:
    """``preferred`` when nothing listens on it (a bookmark keeps working), else a free port the OS picks."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        if os.name != "nt":  # as the server binds: a closed connection's TIME_WAIT does not count as taken
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, preferred))
        except OSError:
            return find_free_port(host)
    return preferred


def page_url(port: int) -> str:
    """The address of the app's page."""
    return f"http://{HOST}:{port}/"


def health_url(port: int) -> str:
    """Streamlit's readiness endpoint: answers ``ok`` once the page can be served."""
    return f"http://{HOST}:{port}/_stcore/health"


def server_command(python: Path, port: int, app: str = APP) -> list[str]:
    """The command that serves ``app`` on 127.0.0.1:``port``; run it with the project folder as working directory.

    ``.streamlit/config.toml`` holds the same settings; they are repeated here so that they hold whatever config
    file Streamlit finds (a user's ``~/.streamlit/config.toml`` cannot turn telemetry on, open the port to the
    network, or bring back the garbage collection after every rerun that stalls transcription).
    """
    return [
        str(python),
        "-m",
        "streamlit",
        "run",
        app,
        "--server.address",
        HOST,
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--server.fileWatcherType",
        "none",
        "--server.enableXsrfProtection",
        "true",
        # Streamlit's full collection after every rerun holds the GIL for about 0.25 s with the model loaded;
        # the progress fragment reruns twice a second per tab, so it starved the transcription (issue 15).
        "--runner.postScriptGC",
        "false",
    ]


class OutputTail:
    """Reads a process's combined output on a thread, keeps the last lines, and echoes them once asked to."""

    def __init__(self, stream: IO[str], keep: int = 40) -> None:
        self._lines: deque[str] = deque(maxlen=keep)
        self._sink: TextIO | None = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, args=(stream,), name="server-output", daemon=True)
        self._thread.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            with self._lock:
                self._lines.append(line.rstrip("\r\n"))
                sink = self._sink
            if sink is not None and not line.strip().startswith(_BANNER_LINES):
                sink.write(line)
                sink.flush()

    def echo_to(self, sink: TextIO | None) -> None:
        """Echo every line read from now on to ``sink`` (None: keep quiet)."""
        with self._lock:
            self._sink = sink

    def lines(self) -> list[str]:
        """The last lines read so far."""
        with self._lock:
            return list(self._lines)

    def join(self, timeout_s: float) -> None:
        """Wait (at most ``timeout_s``) until the process closed its output."""
        self._thread.join(timeout_s)


def start_server(
    python: Path, port: int, *, cwd: Path = PROJECT_ROOT, app: str = APP, env: Mapping[str, str] | None = None
) -> tuple[subprocess.Popen[str], OutputTail]:
    """Start :func:`server_command` in ``cwd``; its output is collected by the returned :class:`OutputTail`.

    ``env`` adds to (or overrides) this process's environment. On Windows the server gets its own process group so
    that Ctrl-C reaches only this launcher, which then stops the server with CTRL_BREAK (Streamlit's clean exit).
    """
    child_env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONIOENCODING": "utf-8", **(env or {})}
    flags = 0
    if sys.platform == "win32":
        flags = subprocess.CREATE_NEW_PROCESS_GROUP
    process = subprocess.Popen(
        server_command(python, port, app),
        cwd=cwd,
        env=child_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        encoding="utf-8",
        errors="replace",
        creationflags=flags,
    )
    assert process.stdout is not None
    return process, OutputTail(process.stdout)


def _http_get(url: str, timeout_s: float) -> tuple[int, str]:
    """GET without any proxy: a proxy from the environment must never see (or break) a 127.0.0.1 request."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout_s) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as error:
        return error.code, ""


def _last_lines(output: OutputTail | None) -> str:
    lines = output.lines() if output is not None else []
    if not lines:
        return ""
    return "\nIts last output lines:\n" + "\n".join("    " + line for line in lines)


def wait_until_healthy(
    url: str, process: subprocess.Popen, timeout_s: float = DEFAULT_START_TIMEOUT_S, output: OutputTail | None = None
) -> None:
    """Return once ``url`` (the health endpoint) answers ``ok``; raise :class:`LauncherError` if the server exits
    first or does not answer within ``timeout_s`` (the message then shows the server's last output lines)."""
    deadline = time.monotonic() + timeout_s
    while True:
        code = process.poll()
        if code is not None:
            raise LauncherError(f"The server stopped before it was ready (exit code {code}).{_last_lines(output)}")
        try:
            status, body = _http_get(url, timeout_s=2.0)
            if status == 200 and body.strip() == "ok":
                return
        except (OSError, ValueError):
            pass  # not listening yet
        if time.monotonic() > deadline:
            raise LauncherError(
                f"The server did not answer at {url} within {timeout_s:.0f} s. A slow computer may need longer: "
                f"set QWEN3_ASR_START_TIMEOUT to more seconds.{_last_lines(output)}"
            )
        time.sleep(0.2)


def stop_server(process: subprocess.Popen, timeout_s: float = STOP_TIMEOUT_S) -> int:
    """Ask the server to stop like Ctrl-C does, wait up to ``timeout_s``, then force it; return its exit code."""
    if process.poll() is None:
        try:
            if sys.platform == "win32":
                process.send_signal(signal.CTRL_BREAK_EVENT)
            else:
                process.send_signal(signal.SIGINT)
        except OSError:
            pass  # it exited meanwhile
    try:
        return process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        process.terminate()
    try:
        return process.wait(3.0)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


# --------------------------------------------------------------------------------------------------------------------
# First-run setup.


def requirements_digest(requirements: Path = REQUIREMENTS) -> str:
    """SHA-256 of ``requirements.txt``: the setup marker records it, so a changed file triggers a new install."""
    return hashlib.sha256(requirements.read_bytes()).hexdigest()


def marker_path(venv: Path = VENV_DIR) -> Path:
    """Where a finished setup is recorded (inside ``.venv``: deleting ``.venv`` starts over)."""
    return venv / MARKER_NAME


def setup_is_current(venv: Path = VENV_DIR, requirements: Path = REQUIREMENTS) -> bool:
    """True when ``venv`` has a Python and was set up, with every step of this launcher, for exactly this
    ``requirements.txt``."""
    if not venv_python(venv).exists():
        return False
    try:
        recorded = json.loads(marker_path(venv).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (
        isinstance(recorded, dict)
        and recorded.get("requirements_sha256") == requirements_digest(requirements)
        and recorded.get("steps") == SETUP_STEPS
    )


def write_marker(venv: Path = VENV_DIR, requirements: Path = REQUIREMENTS) -> None:
    """Record that ``venv`` holds everything ``requirements`` asks for."""
    record = {
        "requirements_sha256": requirements_digest(requirements),
        "steps": SETUP_STEPS,
        "written": time.strftime("%Y-%m-%d %H:%M:%S"),
        "by": "launchers/start.py",
    }
    marker_path(venv).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


def torch_requirement(requirements: Path = REQUIREMENTS) -> str:
    """The torch line of ``requirements.txt`` (e.g. ``torch==2.13.0``): one place pins the version."""
    for line in requirements.read_text(encoding="utf-8").splitlines():
        text = line.split("#", 1)[0].strip()
        name = text.split(";", 1)[0]
        for separator in ("==", ">=", "<=", "~=", "!=", "<", ">", "["):
            name = name.split(separator, 1)[0]
        if name.strip().lower() == "torch":
            return text
    return "torch"


def torch_plan(
    environ: Mapping[str, str] | None = None, system: str | None = None, has_nvidia_gpu: bool | None = None
) -> TorchPlan:
    """Choose where PyTorch comes from. The arguments default to this computer; tests pass their own."""
    environ = os.environ if environ is None else environ
    system = platform.system() if system is None else system
    if has_nvidia_gpu is None:
        has_nvidia_gpu = shutil.which("nvidia-smi") is not None
    if TORCH_INDEX_ENV in environ:
        index = environ[TORCH_INDEX_ENV].strip()
        if not index:
            return TorchPlan([], f"from pip's own configuration ({TORCH_INDEX_ENV} is empty)")
        return TorchPlan(["--index-url", index], f"from {index} ({TORCH_INDEX_ENV})")
    if system == "Darwin":
        return TorchPlan([], "for macOS (about 80 MB to download)")
    if has_nvidia_gpu and system == "Windows":
        return TorchPlan(
            [],
            "from PyPI (about 200 MB). On Windows this build does not use the NVIDIA GPU: to use it, delete .venv "
            f"and set {TORCH_INDEX_ENV} to the CUDA index shown on pytorch.org before starting again",
        )
    if has_nvidia_gpu:
        return TorchPlan([], "with NVIDIA CUDA support (about 3 GB to download: PyTorch and the CUDA libraries)", 7)
    return TorchPlan(["--index-url", CPU_TORCH_INDEX], "CPU build, no NVIDIA GPU found (about 200 MB to download)")


def _say(text: str = "") -> None:
    print(text, flush=True)


def _run_step(command: list[str], failure: str) -> None:
    """Run one setup command with its output on the console; raise LauncherError with ``failure`` if it fails."""
    code = subprocess.call(command, cwd=PROJECT_ROOT)
    if code != 0:
        raise LauncherError(f"{failure} (exit code {code}; the messages above say why).")


def set_up_environment(venv: Path = VENV_DIR, requirements: Path = REQUIREMENTS) -> None:
    """Create ``venv`` if needed, install PyTorch, then ``requirements``; record success in the marker file."""
    plan = torch_plan()
    free_gb = shutil.disk_usage(PROJECT_ROOT).free / 1e9
    if marker_path(venv).exists():
        _say("requirements.txt changed since the last set-up: updating the packages (needs the internet).")
    else:
        _say("First start: setting up the transcriber. This happens once and needs the internet; later starts")
        _say("take seconds and stay offline. Everything goes into the .venv folder next to app.py.")
    if free_gb < plan.disk_gb:
        _say(f"Warning: only {free_gb:.1f} GB of disk space is free here; the set-up needs about {plan.disk_gb} GB.")

    python = venv_python(venv)
    if not python.exists():
        _say(f"\n[1/4] Creating a private Python environment in {venv.name} (a few seconds)...")
        existed = venv.exists()
        code = subprocess.call([sys.executable, "-m", "venv", str(venv)], cwd=PROJECT_ROOT)
        if code != 0 or not python.exists():
            if not existed:
                shutil.rmtree(venv, ignore_errors=True)
            hint = ""
            if sys.platform.startswith("linux"):
                version = f"{sys.version_info[0]}.{sys.version_info[1]}"
                hint = f" On Debian or Ubuntu install the venv module first: sudo apt install python{version}-venv"
            raise LauncherError(f"Could not create the Python environment {venv}.{hint}")
    else:
        _say(f"\n[1/4] Using the existing Python environment in {venv.name}.")

    pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check"]
    torch = torch_requirement(requirements)
    _say(f"\n[2/4] Installing PyTorch ({torch}), {plan.description}. This can take several minutes...")
    _run_step([*pip, torch, *plan.pip_args], "Installing PyTorch failed")

    _say(
        "\n[3/4] Installing the other packages from requirements.txt (Streamlit, transformers, PyAV, ...; "
        "about 250 MB to download, a few minutes)..."
    )
    _run_step([*pip, "-r", str(requirements)], "Installing the packages failed")

    _say("\n[4/4] Installing the transcriber itself, so the `asr` command in .venv works from any folder...")
    _run_step([*pip, "--no-deps", "-e", str(PROJECT_ROOT)], "Installing the transcriber failed")

    write_marker(venv, requirements)
    _say("\nSet-up finished.")


# --------------------------------------------------------------------------------------------------------------------
# Main.


def _can_open_browser() -> bool:
    """False on a Linux machine without a desktop: Python would start a text browser inside this terminal."""
    on_linux = sys.platform.startswith("linux")
    return not on_linux or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _start_timeout_s() -> float:
    try:
        return float(os.environ.get("QWEN3_ASR_START_TIMEOUT", DEFAULT_START_TIMEOUT_S))
    except ValueError:
        return DEFAULT_START_TIMEOUT_S


def serve(python: Path, open_browser: bool = True) -> int:
    """Run the app until Ctrl-C (exit 0) or until the server stops by itself (its exit code, at least 1)."""
    port = choose_port()
    url = page_url(port)
    if port != DEFAULT_PORT:
        _say(f"\nPort {DEFAULT_PORT} is taken (another transcriber already running?): this one uses port {port}.")
    _say("\nStarting the transcriber (usually a few seconds)...")
    process, output = start_server(python, port)
    try:
        wait_until_healthy(health_url(port), process, _start_timeout_s(), output)
        output.echo_to(sys.stdout)
        _say(f"\nTranscriber ready: {url}")
        if open_browser and _can_open_browser():
            try:
                opened = webbrowser.open(url)
            except Exception:
                opened = False
            _say("Your browser opens the page now." if opened else "Open that address in your web browser.")
        else:
            _say("Open that address in your web browser.")
        _say("Everything runs on this computer. To stop the transcriber, press Ctrl-C here or close this window.\n")
        code = process.wait()
        output.join(2.0)
        raise LauncherError(f"The transcriber's server stopped unexpectedly (exit code {code}).{_last_lines(output)}")
    except KeyboardInterrupt:
        # Ctrl-C usually reached the server too (same terminal); further presses must not cut the clean stop short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        _say("\nStopping the transcriber...")
        try:
            process.wait(1.0)  # the server got the same Ctrl-C when it came from the terminal
        except subprocess.TimeoutExpired:
            stop_server(process)
        output.join(2.0)
        _say("Stopped. You can close this window.")
        return 0
    except BaseException:
        stop_server(process)
        raise


def _interrupt(signal_number: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    """Set up if needed, then serve the app; the exit status for the launcher scripts."""
    if sys.version_info < MIN_PYTHON:
        print(
            f"The transcriber needs Python {MIN_PYTHON[0]}.{MIN_PYTHON[1]} or newer (its packages do); this is "
            f"{platform.python_version()}. Install a newer Python from https://www.python.org/downloads/ and start "
            "again.",
            file=sys.stderr,
        )
        return 1
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="replace", line_buffering=True)
    # Ctrl-C raises KeyboardInterrupt even where the caller started us with SIGINT ignored (a shell's `cmd &`).
    # Closing the terminal (SIGHUP) or a plain `kill` (SIGTERM) stops the server as cleanly as Ctrl-C does.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for name in ("SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), _interrupt)

    _say("Qwen3-ASR transcriber: private speech-to-text on this computer.")
    try:
        if not REQUIREMENTS.is_file() or not (PROJECT_ROOT / APP).is_file():
            raise LauncherError(f"{PROJECT_ROOT} lacks requirements.txt or {APP}: download the whole project again.")
        try:
            if setup_is_current():
                _say("Packages: ready.")
            else:
                set_up_environment()
        except KeyboardInterrupt:
            _say("\nSet-up interrupted. Start again to finish it; what is installed so far is kept.")
            return 1
        return serve(venv_python(), open_browser=os.environ.get("QWEN3_ASR_NO_BROWSER") != "1")
    except LauncherError as error:
        print(f"\nCannot start the transcriber: {error}", file=sys.stderr, flush=True)
        if os.environ.get("QWEN3_ASR_PAUSE_ON_ERROR") == "1":
            with contextlib.suppress(EOFError, KeyboardInterrupt):
                input("\nPress Enter to close this window.")
        return 1


if __name__ == "__main__":
    sys.exit(main())
