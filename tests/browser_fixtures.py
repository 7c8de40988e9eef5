"""Fixtures for the browser tests (registered by conftest.py): a real app server and a real headless Chromium.

The server is started exactly as the launcher starts it (`testbed.app_server.serve_app`, shared with
bench/page.py). The browser is Debian's `chromium` driven by Playwright, with a fake microphone that plays
espeak-ng speech.

Screenshots go to a temporary folder; with ``UPDATE_SCREENSHOTS=1`` they replace ``docs/screenshots/*.png``
(so an ordinary test run leaves the repository untouched).
"""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Self

import numpy as np
import pytest
import soundfile as sf
from hub_mirror import HubMirror, _Handler
from playwright.sync_api import Browser, Page, Playwright, ViewportSize, expect, sync_playwright

from asr.audio import SAMPLE_RATE
from testbed.app_server import CHROMIUM, CHROMIUM_ARGS, ROOT, AppServer, serve_app
from testbed.app_server import SCRUBBED_ENV as _SCRUBBED
from testbed.speech import SENTENCES, speech_with_pauses

__all__ = ["CHROMIUM", "CHROMIUM_ARGS", "ROOT", "_SCRUBBED", "AppServer", "serve_app"]  # the test modules' imports

VIEWPORT: ViewportSize = {"width": 1400, "height": 900}
SCREENSHOT_DIR = ROOT / "docs" / "screenshots"
EXPECT_TIMEOUT_MS = 60_000  # the first page waits for torch and the model to load: slow on a busy machine
# Records, from the first byte of the page on, which of these elements ever appeared and the texts of progress bars
# and alerts, so a test can assert on a state that came and went between two polls (a traceback, a short progress
# bar, a "waiting for another transcription" message).
_WATCH_SCRIPT = """
window.__seen = {stException: 0, stProgress: 0};
window.__progressTexts = [];
window.__alertTexts = [];
new MutationObserver(() => {
  for (const id of Object.keys(window.__seen)) {
    if (document.querySelector(`[data-testid="${id}"]`)) window.__seen[id] += 1;
  }
  for (const [id, texts] of [['stProgress', window.__progressTexts], ['stAlert', window.__alertTexts]]) {
    for (const element of document.querySelectorAll(`[data-testid="${id}"]`)) {
      const text = element.innerText.trim();
      if (text && !texts.includes(text)) texts.push(text);
    }
  }
}).observe(document, {childList: true, subtree: true, characterData: true});
"""


# -- the app server ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def app_server(tiny_model_dir, tiny_aligner_dir, tmp_path_factory) -> Iterator[AppServer]:
    """The app on the tiny checkpoints (QWEN3_ASR_MODEL, QWEN3_ASR_ALIGNER), with an empty hub cache of its own."""
    folder = tmp_path_factory.mktemp("app-server")
    with serve_app(
        folder,
        QWEN3_ASR_MODEL=str(tiny_model_dir),
        QWEN3_ASR_ALIGNER=str(tiny_aligner_dir),
        HF_HOME=str(folder / "hf_home"),
        HF_HUB_CACHE=str(folder / "hub_cache"),
    ) as server:
        yield server


# -- a hub mirror the test can hold back -----------------------------------------------------------------------------


class _HeldHandler(_Handler):
    """Sends half of each weights file, then waits until the test releases the mirror (so progress can be seen)."""

    mirror: HeldHubMirror

    def _send(
        self, status: int, headers: dict[str, str], body: bytes, send_body: bool, stop_after: int | None = None
    ) -> None:
        if not (send_body and status in (200, 206) and self.path.split("?")[0].endswith(".safetensors")):
            super()._send(status, headers, body, send_body)
            return
        super()._send(status, headers, body, send_body=False)  # status line and headers only
        half = len(body) // 2
        self.wfile.write(body[:half])
        self.wfile.flush()
        self.mirror.released.wait(timeout=30)
        self.wfile.write(body[half:])


class HeldHubMirror(HubMirror):
    """A `HubMirror` whose weight downloads stop halfway until `release()` is called."""

    def __init__(self, repos: dict[str, Path | str]) -> None:
        super().__init__(repos)
        self.released = threading.Event()

    def start(self) -> Self:
        from http.server import ThreadingHTTPServer

        handler = type("_BoundHeldHandler", (_HeldHandler,), {"mirror": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="hub-mirror", daemon=True)
        self._thread.start()
        return self

    def release(self) -> None:
        self.released.set()

    def stop(self) -> None:
        self.released.set()  # a held request must not keep a thread waiting
        super().stop()


# -- audio ---------------------------------------------------------------------------------------------------------


def _encode(samples: np.ndarray, format: str) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, SAMPLE_RATE, format=format)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def interview_mp3() -> bytes:
    """About 15 s of espeak-ng speech (three sentences and two pauses) as an MP3: long enough to see progress."""
    samples, _ = speech_with_pauses(SENTENCES[:3], (1.0, 1.0))
    return _encode(samples, "MP3")


def _sentences_apart(minutes: float) -> np.ndarray:
    """The five sentences over and over for about `minutes`, 2.5 s apart: every sentence is a chunk of its own
    (pauses over 2 s end a chunk), so a run has many short batches, and stops soon after a cancel."""
    block, _ = speech_with_pauses(SENTENCES, (2.5,) * (len(SENTENCES) - 1), lead_s=1.25)
    return np.tile(block, max(1, round(minutes * 60 * SAMPLE_RATE / len(block))))


@pytest.fixture(scope="session")
def meeting_mp3() -> bytes:
    """About half a minute of speech as an MP3: long enough for a second session to queue behind it, short enough
    for a busy 2-core machine (where the server transcribed it at about real time, Chromium drawing beside it)."""
    return _encode(_sentences_apart(0.5), "MP3")


@pytest.fixture(scope="session")
def lecture_mp3() -> bytes:
    """About 20 minutes of speech as an MP3 (a few MB): a run of minutes, to be cut short."""
    return _encode(_sentences_apart(20), "MP3")


@pytest.fixture(scope="session")
def microphone_wav(speech_16k, tmp_path_factory) -> Path:
    """What the fake microphone plays (Chromium loops the file): espeak-ng speech as 16-bit PCM WAV."""
    path = tmp_path_factory.mktemp("microphone") / "speech.wav"
    sf.write(path, speech_16k, SAMPLE_RATE, subtype="PCM_16")
    return path


# -- the browser ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as running:
        yield running


def launch_chromium(playwright: Playwright, microphone: Path, *extra_args: str) -> Browser:
    """Headless Debian Chromium whose fake microphone plays `microphone` (in a loop); Playwright gives every
    launch a fresh temporary profile (user-data dir)."""
    return playwright.chromium.launch(
        executable_path=CHROMIUM,
        headless=True,
        args=[
            *CHROMIUM_ARGS,
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={microphone}",
            *extra_args,
        ],
    )


@pytest.fixture(scope="session")
def browser(playwright: Playwright, microphone_wav: Path) -> Iterator[Browser]:
    """The session's browser, its microphone speaking one sentence."""
    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    browser = launch_chromium(playwright, microphone_wav)
    yield browser
    browser.close()


def assert_no_traceback(page: Page) -> None:
    """No Python traceback on the page now, and none since it was opened."""
    expect(page.get_by_test_id("stException")).to_have_count(0)
    assert page.evaluate("window.__seen.stException") == 0, "a traceback (stException) was shown at some point"


def wait_for_script(page: Page) -> None:
    """Wait until the page is connected and its script run has finished."""
    app = page.get_by_test_id("stApp")
    expect(app).to_have_attribute("data-test-connection-state", "CONNECTED")
    expect(app).to_have_attribute("data-test-script-state", "notRunning")


def open_app_page(browser: Browser, server: AppServer) -> Page:
    """Open the app in a fresh browser context (its own session and cookies), with microphone access granted and
    the page watched for tracebacks (`assert_no_traceback`), and wait for the title."""
    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
    context.grant_permissions(["microphone"], origin=server.url.rstrip("/"))
    context.add_init_script(_WATCH_SCRIPT)
    page = context.new_page()
    page.goto(server.url)
    expect(page).to_have_title("Transcriber · private speech-to-text")
    expect(page.get_by_role("heading", name="Transcriber")).to_be_visible()
    return page


@pytest.fixture
def open_page(browser: Browser) -> Iterator[Callable[[AppServer], Page]]:
    """Factory: ``open_page(server)`` is `open_app_page` on the session's browser; every page it opened is checked
    for tracebacks at the end."""
    contexts = []

    def open_(server: AppServer) -> Page:
        page = open_app_page(browser, server)
        contexts.append(page.context)
        return page

    yield open_
    try:
        for context in contexts:
            for page in context.pages:
                assert_no_traceback(page)
    finally:
        for context in contexts:
            context.close()


@pytest.fixture(scope="session")
def screenshot_dir(tmp_path_factory) -> Path:
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
        return SCREENSHOT_DIR
    return tmp_path_factory.mktemp("screenshots")


def take_screenshot(page: Page, path: Path, full_page: bool = True) -> Path:
    """The whole page at 1400 px wide, however long it is (or only the window, with ``full_page=False``).

    Streamlit scrolls inside its main area, not the document, so a plain full-page screenshot would stop at the
    window's edge: the window is made as tall as the content for the shot, then set back.
    """
    if not full_page:
        page.screenshot(path=path)
        return path
    height = page.evaluate(
        "Math.max(...['stMain', 'stSidebarContent'].map("
        "id => document.querySelector(`[data-testid=${id}]`)?.scrollHeight ?? 0))"
    )
    page.set_viewport_size({"width": VIEWPORT["width"], "height": max(VIEWPORT["height"], int(height))})
    try:
        page.screenshot(path=path, animations="disabled")
    finally:
        page.set_viewport_size(VIEWPORT)
    return path


@pytest.fixture(scope="session")
def screenshot(screenshot_dir: Path) -> Callable[..., Path]:
    """``screenshot(page, "01-empty")``: `take_screenshot` into `screenshot_dir`."""

    def take(page: Page, name: str, full_page: bool = True) -> Path:
        return take_screenshot(page, screenshot_dir / f"{name}.png", full_page)

    return take
