"""``python -m testbed.screenshots``: take the README's screenshots of a transcript again (docs/screenshots/).

The page is served as the launcher serves it, but by `testbed.scripted_streamlit`, whose engine is the scripted
stand-in of `testbed.scripted_engine`: the tiny test checkpoint runs, and the transcript is the known script of
the espeak-ng speech, so the pictures show readable text and the model's name (Qwen/Qwen3-ASR-0.6B-hf) instead
of random-weight mojibake and a test folder. Debian's Chromium is driven by Playwright, as in the browser tests,
whose steps this reuses. The screenshots of the download panel and of speakers come from the browser tests
(``UPDATE_SCREENSHOTS=1``), which show no model text of their own.
"""

from __future__ import annotations

import re
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from unittest import mock

from playwright.sync_api import Browser, Page, expect, sync_playwright

from launchers import start
from testbed.app_server import CHROMIUM, CHROMIUM_ARGS, ROOT, AppServer, serve_app
from testbed.scripted_engine import TINY_ALIGNER_ENV, TINY_MODEL_ENV
from testbed.speech import SENTENCES, speech_with_pauses
from testbed.tiny_model import write_tiny_aligner, write_tiny_checkpoint

sys.path.insert(0, str(ROOT / "tests"))  # the browser tests' steps, as pytest's pythonpath gives them
from browser_fixtures import (
    EXPECT_TIMEOUT_MS,
    SCREENSHOT_DIR,
    _encode,
    open_app_page,
    take_screenshot,
    wait_for_script,
)
from test_browser import add_file, choose, expect_result, transcribe

LAUNCHER_COMMAND = start.server_command  # kept: `main` patches `start.server_command` for `serve_app`
INTERVIEW = "interview.mp3"
WITH_WORD_TIMES_MS = 240_000  # the aligner's pass too, on a busy machine


def scripted_server_command(python: Path, port: int, app: str = start.APP) -> list[str]:
    """The launcher's command, with `streamlit` run by `testbed.scripted_streamlit`."""
    command = LAUNCHER_COMMAND(python, port, app)
    return [*command[:2], "testbed.scripted_streamlit", *command[3:]]  # [python, -m, streamlit, run, ...]


def main_states(page: Page, interview: bytes, shoot: Callable[..., Path]) -> None:
    """01-04: the empty page, a file added, the run's progress, the finished transcript."""
    expect(page.get_by_test_id("stFileUploader")).to_be_visible()
    wait_for_script(page)
    shoot(page, "01-empty")
    add_file(page, INTERVIEW, "audio/mpeg", interview)
    expect(page.get_by_test_id("stVegaLiteChart")).to_be_visible()
    wait_for_script(page)
    shoot(page, "02-file-added")
    transcribe(page)
    expect(page.get_by_test_id("stProgress")).to_be_visible()
    shoot(page, "03-progress", full_page=False)
    expect_result(page, INTERVIEW)
    expect(page.get_by_test_id("stCode")).to_contain_text(SENTENCES[0])
    wait_for_script(page)
    shoot(page, "04-result")


def word_timestamps(page: Page, interview: bytes, shoot: Callable[..., Path]) -> None:
    """08: word timestamps on: a row per sentence with its own times."""
    sidebar = page.get_by_test_id("stSidebar")
    choose(page, sidebar, "Spoken language", re.compile("^English$"))
    sidebar.get_by_text("Word timestamps").click()
    expect(sidebar.get_by_text("Aligner: ", exact=False)).to_be_visible()
    add_file(page, INTERVIEW, "audio/mpeg", interview)
    wait_for_script(page)
    transcribe(page)
    expect_result(page, INTERVIEW, timeout_ms=WITH_WORD_TIMES_MS)
    wait_for_script(page)
    shoot(page, "08-word-timestamps")


def broken_file(page: Page, interview: bytes, shoot: Callable[..., Path]) -> None:
    """05: a text file named .mp3 gets its message; the earlier transcript stays."""
    add_file(page, INTERVIEW, "audio/mpeg", interview)
    transcribe(page)
    expect_result(page, INTERVIEW)
    add_file(page, "notes.mp3", "audio/mpeg", b"Meeting notes\n- call Stella\n- budget for next year\n")
    expect(page.get_by_test_id("stAlert")).to_contain_text("not an audio or video file")
    wait_for_script(page)
    shoot(page, "05-error")


def take_all(browser: Browser, server: AppServer, out: Path) -> None:
    interview = _encode(speech_with_pauses(SENTENCES[:3], (1.0, 1.0))[0], "MP3")  # as the tests' interview_mp3

    def shoot(page: Page, name: str, full_page: bool = True) -> Path:
        path = take_screenshot(page, out / f"{name}.png", full_page)
        print(path, flush=True)
        return path

    for steps in (main_states, word_timestamps, broken_file):
        page = open_app_page(browser, server)
        try:
            steps(page, interview, shoot)
        finally:
            page.context.close()


def main(argv: list[str] | None = None) -> int:
    out = Path(argv[0]) if argv else SCREENSHOT_DIR
    out.mkdir(parents=True, exist_ok=True)
    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    with tempfile.TemporaryDirectory(prefix="screenshots-") as work:
        folder = Path(work)
        env = {
            TINY_MODEL_ENV: str(write_tiny_checkpoint(folder / "tiny-model")),
            TINY_ALIGNER_ENV: str(write_tiny_aligner(folder / "tiny-aligner")),
            "HF_HOME": str(folder / "hf_home"),
            "HF_HUB_CACHE": str(folder / "hub_cache"),
        }
        with (
            mock.patch.object(start, "server_command", scripted_server_command),
            serve_app(folder / "server", **env) as server,
            sync_playwright() as playwright,
        ):
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=list(CHROMIUM_ARGS))
            try:
                take_all(browser, server, out)
            finally:
                browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
