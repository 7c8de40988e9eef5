"""Fixtures for the browser tests (registered by conftest.py): a real app server and a real headless Chromium.

The server is started exactly as the launcher starts it (`testbed.app_server.serve_app`, shared with
bench/page.py). The browser is Debian's `chromium` driven by Playwright, with a fake microphone that plays
espeak-ng speech; the steps on the page live in `testbed.browser`, shared with the README's screenshots.

The tests' screenshots go to pytest's temporary folder, to look at after a run; the README's pictures in
docs/screenshots/ are made by `python -m testbed.screenshots` only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from playwright.sync_api import Browser, Page, Playwright, expect, sync_playwright

from asr.audio import SAMPLE_RATE
from testbed.app_server import AppServer, serve_app
from testbed.browser import EXPECT_TIMEOUT_MS, assert_no_traceback, launch_chromium, open_app_page, take_screenshot
from testbed.speech import SENTENCES, as_file, interview_mp3, speech_with_pauses

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


# -- audio ---------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session", name="interview_mp3")
def interview_mp3_fixture() -> bytes:
    """About 15 s of espeak-ng speech (three sentences and two pauses) as an MP3: long enough to see progress."""
    return interview_mp3()


def _sentences_apart(minutes: float) -> np.ndarray:
    """The five sentences over and over for about `minutes`, 2.5 s apart: every sentence is a chunk of its own
    (pauses over 2 s end a chunk), so a run has many short batches, and stops soon after a cancel."""
    block, _ = speech_with_pauses(SENTENCES, (2.5,) * (len(SENTENCES) - 1), lead_s=1.25)
    return np.tile(block, max(1, round(minutes * 60 * SAMPLE_RATE / len(block))))


@pytest.fixture(scope="session")
def meeting_mp3() -> bytes:
    """About half a minute of speech as an MP3: long enough for a second session to queue behind it, short enough
    for a busy 2-core machine (where the server transcribed it at about real time, Chromium drawing beside it)."""
    return as_file(_sentences_apart(0.5), "MP3")


@pytest.fixture(scope="session")
def lecture_mp3() -> bytes:
    """About 20 minutes of speech as an MP3 (a few MB): a run of minutes, to be cut short."""
    return as_file(_sentences_apart(20), "MP3")


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


@pytest.fixture(scope="session")
def browser(playwright: Playwright, microphone_wav: Path) -> Iterator[Browser]:
    """The session's browser, its microphone speaking one sentence."""
    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    browser = launch_chromium(playwright, microphone_wav)
    yield browser
    browser.close()


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
def screenshot(tmp_path_factory) -> Callable[..., Path]:
    """``screenshot(page, "result")``: `take_screenshot` into the session's temporary screenshot folder."""
    folder = tmp_path_factory.mktemp("screenshots")

    def take(page: Page, name: str, full_page: bool = True) -> Path:
        return take_screenshot(page, folder / f"{name}.png", full_page)

    return take
