"""The app served as the launcher serves it, and the headless Chromium that opens it: for the browser tests
(tests/browser_fixtures.py) and the page's benchmark (bench/page.py).

The server is started exactly as the launcher starts it (`launchers.start.server_command`), on a free port of
127.0.0.1, and polled at `/_stcore/health` (Streamlit's own `e2e_playwright/conftest.py` does the same).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from asr.tempfiles import PREFIX as TEMP_PREFIX
from launchers import start

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
STARTUP_TIMEOUT_S = 60
# Headless Chromium that starts no connection of its own: no component updates, sync, first-run or background fetches.
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
# Settings of the outer environment that must not reach the server: the caller chooses the model, hub and cache.
SCRUBBED_ENV = (
    "QWEN3_ASR_MODEL",
    "HF_ENDPOINT",
    "HF_HUB_OFFLINE",
    "TRANSFORMERS_OFFLINE",
    "HF_TOKEN",
    "HF_HOME",
    "HF_HUB_CACHE",
    "HF_HUB_DISABLE_PROGRESS_BARS",
    "HF_HUB_ENABLE_HF_TRANSFER",
    "TQDM_DISABLE",
)


class ServerStartError(RuntimeError):
    """The app server did not come up; the message holds its output."""


@dataclass
class AppServer:
    """A running `streamlit run app.py` as the launcher starts it."""

    url: str
    process: subprocess.Popen
    log: Path
    temp: Path  # the server's TMPDIR: its runs' private work folders appear here while they run

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


@contextmanager
def serve_app(folder: Path, *, streamlit: str = "streamlit", **env_changes: str) -> Iterator[AppServer]:
    """Start the app with `env_changes` added to a scrubbed environment; stop it on exit and check what it left.

    `folder` gets the server's output (server.log) and its own temp folder (TMPDIR), so the privacy panel's
    count of leftover temporary audio sees only this server's folders, not those of other servers beside it.
    `streamlit` is the module the launcher's command runs with ``python -m``: Streamlit itself, or for the
    README's screenshots `testbed.scripted_streamlit`, which runs it with the scripted engine.
    """
    port = start.find_free_port()
    command = start.server_command(Path(sys.executable), port)
    assert command[1:3] == ["-m", "streamlit"], command
    command[2] = streamlit
    log, temp = folder / "server.log", folder / "tmp"
    temp.mkdir(parents=True, exist_ok=True)
    env = {key: value for key, value in os.environ.items() if key not in SCRUBBED_ENV}
    env.update(
        TMPDIR=str(temp),
        PYTHONUNBUFFERED="1",
        HF_HUB_DISABLE_TELEMETRY="1",
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
        **env_changes,
    )
    with log.open("w", encoding="utf-8") as sink:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    server = AppServer(start.page_url(port), process, log, temp)
    try:
        try:
            start.wait_until_healthy(start.health_url(port), process, timeout_s=STARTUP_TIMEOUT_S)
        except start.LauncherError as error:
            raise ServerStartError(f"{error}\nServer output:\n{server.output()}") from error
        yield server
    finally:
        start.stop_server(process)
    assert "Traceback" not in server.output(), f"the server logged a traceback:\n{server.output()}"
    assert not list(temp.glob(f"{TEMP_PREFIX}*")), "temporary audio was left behind"
