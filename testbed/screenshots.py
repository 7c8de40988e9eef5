"""``python -m testbed.screenshots [FOLDER]``: take every picture in the README again (docs/screenshots/).

The page is served as the launcher serves it, except that its ``python -m streamlit`` is
`testbed.scripted_streamlit`, whose engine is the scripted stand-in of `testbed.scripted_engine`: the tiny test
checkpoints run, and the transcript is the known script of the espeak-ng speech, so the pictures show readable
text and the models' names (Qwen/Qwen3-ASR-0.6B-hf) instead of random-weight mojibake and a test folder. Two
servers, each with an empty model cache of its own:

- one with the tiny checkpoints under the repo ids the page offers: the transcript's states (01-05), word
  timestamps (08), the larger model chosen but not on this computer (09), and speakers (10, on the two-voice
  conversation of `testbed.conversations`);
- one without them, downloading from a local hub mirror (`testbed.hub_mirror`) that holds the tiny checkpoint's
  weights halfway: the model offered for download (06) and its download under way (07). The page names the hub
  as a user sees it (https://huggingface.co); the sizes in the progress bar are the tiny checkpoint's.

Debian's Chromium is driven by Playwright with the browser tests' own steps (`testbed.browser`).
"""

from __future__ import annotations

import argparse
import functools
import re
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Browser, Page, expect, sync_playwright

import asr
from testbed.app_server import AppServer, serve_app
from testbed.browser import (
    EXPECT_TIMEOUT_MS,
    SCREENSHOT_DIR,
    add_file,
    choose,
    expect_result,
    launch_chromium,
    open_app_page,
    take_screenshot,
    transcribe,
    wait_for_script,
)
from testbed.conversations import conversation
from testbed.hub_mirror import HeldHubMirror
from testbed.scripted_engine import CONVERSATION, TINY_ALIGNER_ENV, TINY_MODEL_ENV
from testbed.speech import SENTENCES, as_file, interview_mp3
from testbed.tiny_model import write_tiny_aligner, write_tiny_checkpoint

SCRIPTED_STREAMLIT = "testbed.scripted_streamlit"
INTERVIEW = "interview.mp3"
TALK = "talk.wav"
WITH_WORD_TIMES_MS = 240_000  # the aligner's pass too, on a busy machine
Shoot = Callable[..., Path]


def main_states(page: Page, shoot: Shoot) -> None:
    """01-04: the empty page, a file added, the run's progress, the finished transcript."""
    expect(page.get_by_test_id("stFileUploader")).to_be_visible()
    wait_for_script(page)
    shoot(page, "01-empty")
    add_file(page, INTERVIEW, "audio/mpeg", interview_mp3())
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


def broken_file(page: Page, shoot: Shoot) -> None:
    """05: a text file named .mp3 gets its message; the earlier transcript stays."""
    add_file(page, INTERVIEW, "audio/mpeg", interview_mp3())
    transcribe(page)
    expect_result(page, INTERVIEW)
    add_file(page, "notes.mp3", "audio/mpeg", b"Meeting notes\n- call Stella\n- budget for next year\n")
    expect(page.get_by_test_id("stAlert")).to_contain_text("not an audio or video file")
    wait_for_script(page)
    shoot(page, "05-error")


def model_download(page: Page, shoot: Shoot, mirror: HeldHubMirror) -> None:
    """06-07: the model is not here, so it is offered for download; then its download, held halfway."""
    expect(page.get_by_text("The speech model is not on this computer yet.")).to_be_visible()
    button = page.get_by_role("button", name="Download Qwen3-ASR-0.6B (about 1.9 GB)")
    expect(page.get_by_text("Hugging Face (https://huggingface.co)")).to_be_visible()
    wait_for_script(page)
    shoot(page, "06-model-missing")
    button.click()
    expect(page.get_by_test_id("stProgress")).to_contain_text(re.compile(r"Downloading… \d"))
    shoot(page, "07-downloading")
    mirror.release()
    expect(page.get_by_role("tab", name="Upload files")).to_be_visible()  # downloaded and loaded


def word_timestamps(page: Page, shoot: Shoot) -> None:
    """08: word timestamps on: a row per sentence with its own times."""
    sidebar = page.get_by_test_id("stSidebar")
    choose(page, sidebar, "Spoken language", re.compile("^English$"))
    sidebar.get_by_text("Word timestamps").click()
    expect(sidebar.get_by_text("Aligner: ", exact=False)).to_be_visible()
    add_file(page, INTERVIEW, "audio/mpeg", interview_mp3())
    wait_for_script(page)
    transcribe(page)
    expect_result(page, INTERVIEW, timeout_ms=WITH_WORD_TIMES_MS)
    wait_for_script(page)
    shoot(page, "08-word-timestamps")


def model_choice(page: Page, shoot: Shoot) -> None:
    """09: the sidebar with the larger model chosen, which is not on this computer: its download is offered."""
    expect(page.get_by_test_id("stFileUploader")).to_be_visible()
    choose(page, page.get_by_test_id("stSidebar"), "Speech model", re.compile(r"^Qwen3-ASR-1\.7B"))
    expect(page.get_by_role("button", name="Download Qwen3-ASR-1.7B (about 4.7 GB)")).to_be_visible()
    wait_for_script(page)
    shoot(page, "09-model-choice")


def speakers(page: Page, shoot: Shoot) -> None:
    """10: speakers on, two voices: the Speaker column, a panel per speaker, Speaker 1 renamed to Alice."""
    expect(page.get_by_test_id("stFileUploader")).to_be_visible()
    sidebar = page.get_by_test_id("stSidebar")
    sidebar.get_by_text("Speakers", exact=True).last.click()
    choose(page, sidebar, "How many speakers", re.compile(r"^2$"))
    add_file(page, TALK, "audio/wav", as_file(conversation(CONVERSATION).samples, "WAV"))
    transcribe(page)
    expect_result(page, TALK, timeout_ms=WITH_WORD_TIMES_MS)
    names = page.get_by_role("textbox", name="Name", exact=True)
    expect(names).to_have_count(2)
    names.first.fill("Alice")
    names.first.press("Enter")
    expect(page.get_by_test_id("stCode")).to_contain_text("Alice: ")
    wait_for_script(page)
    shoot(page, "10-speakers")


def take_each(browser: Browser, server: AppServer, shoot: Shoot, *steps: Callable[[Page, Shoot], None]) -> None:
    """Each of `steps` on a page of its own (its own session)."""
    for step in steps:
        page = open_app_page(browser, server)
        try:
            step(page, shoot)
        finally:
            page.context.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0].replace("``", ""))
    parser.add_argument("folder", nargs="?", type=Path, default=SCREENSHOT_DIR, help="where the PNGs go")
    out = parser.parse_args(argv).folder
    out.mkdir(parents=True, exist_ok=True)
    expect.set_options(timeout=EXPECT_TIMEOUT_MS)

    def shoot(page: Page, name: str, full_page: bool = True) -> Path:
        path = take_screenshot(page, out / f"{name}.png", full_page)
        print(path, flush=True)
        return path

    with tempfile.TemporaryDirectory(prefix="screenshots-") as work, sync_playwright() as playwright:
        folder = Path(work)
        tiny_model = write_tiny_checkpoint(folder / "tiny-model")
        browser = launch_chromium(playwright)
        try:
            with serve_app(
                folder / "server",
                streamlit=SCRIPTED_STREAMLIT,
                HF_HOME=str(folder / "server" / "hf_home"),
                **{TINY_MODEL_ENV: str(tiny_model), TINY_ALIGNER_ENV: str(write_tiny_aligner(folder / "aligner"))},
            ) as server:
                take_each(browser, server, shoot, main_states, broken_file, word_timestamps, model_choice, speakers)
            with (
                HeldHubMirror({asr.DEFAULT_MODEL: tiny_model}) as mirror,
                serve_app(
                    folder / "download",
                    streamlit=SCRIPTED_STREAMLIT,
                    HF_HOME=str(folder / "download" / "hf_home"),
                    HF_ENDPOINT=mirror.url,
                ) as server,
            ):
                take_each(browser, server, shoot, functools.partial(model_download, mirror=mirror))
        finally:
            browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
