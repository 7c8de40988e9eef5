"""The Live tab in headless Chromium with a fake microphone that speaks (espeak-ng), against the launcher's server.

The microphone plays two sentences with pauses between them (Chromium loops the file), so the page must show a
draft while a sentence is spoken, finals after each pause, and a normal result with downloads after Stop. Opened
on a name that is not this computer's (mapped to 127.0.0.1 by Chromium), the page is not a secure context, and
the tab says to open it on localhost instead of offering a Start that would do nothing. With speakers on (a second
browser, whose microphone is two voices), Stop ends in the speaker pass, and the result has a speaker each.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import pytest
import soundfile as sf
from playwright.sync_api import Browser, Page, Playwright, expect

from testbed.browser import VIEWPORT, assert_no_traceback, choose, download, launch_chromium, wait_for_script
from testbed.conversations import conversation
from testbed.speech import SAMPLE_RATE, SENTENCES, speech_with_pauses

LIVE_TIMEOUT_MS = 240_000  # the tiny model on two shared cores, with Chromium capturing beside it
LAN_NAME = "transcriber.lan.test"


@pytest.fixture(scope="module")
def live_browser(playwright: Playwright, tmp_path_factory) -> Iterator[Browser]:
    # A long first utterance (four sentences without a pause, about 14 s), so that a draft has time to come before
    # its final even when the machine is busy: the decode thread does finals first, and drafts in between.
    samples, _ = speech_with_pauses(SENTENCES[1:5] + SENTENCES[:1], (0.0, 0.0, 0.0, 1.5), lead_s=1.0)
    microphone = tmp_path_factory.mktemp("live-microphone") / "conversation.wav"
    sf.write(microphone, samples, SAMPLE_RATE, subtype="PCM_16")
    expect.set_options(timeout=LIVE_TIMEOUT_MS)
    browser = launch_chromium(playwright, microphone, f"--host-resolver-rules=MAP {LAN_NAME} 127.0.0.1")
    yield browser
    browser.close()


@pytest.fixture(scope="module")
def two_voice_browser(playwright: Playwright, tmp_path_factory) -> Iterator[Browser]:
    """A browser whose microphone is two espeak-ng voices taking turns (testbed.conversations)."""
    microphone = tmp_path_factory.mktemp("live-two-voices") / "two.wav"
    sf.write(microphone, conversation("short_two").samples, SAMPLE_RATE, subtype="PCM_16")
    expect.set_options(timeout=LIVE_TIMEOUT_MS)
    browser = launch_chromium(playwright, microphone)
    yield browser
    browser.close()


def _open_live_tab(
    browser: Browser, url: str, *, secure: bool = True, first: Callable[[Page], None] | None = None
) -> Page:
    """The page on its Live tab, once the model has loaded; `first` is done on the page before the tab is opened."""
    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
    if secure:  # a browser grants nothing to an insecure page: that is what the other test shows
        context.grant_permissions(["microphone"], origin=url.rstrip("/"))
    context.add_init_script("window.__seen = {stException: 0};")
    page = context.new_page()
    page.goto(url)
    expect(page.get_by_role("heading", name="Transcriber")).to_be_visible(timeout=LIVE_TIMEOUT_MS)
    if first is not None:
        expect(page.get_by_test_id("stFileUploader")).to_be_visible(timeout=LIVE_TIMEOUT_MS)  # the model has loaded
        first(page)
    page.get_by_role("tab", name="Live").click(timeout=LIVE_TIMEOUT_MS)  # once the model has loaded
    return page


def test_dictation_shows_drafts_and_finals_and_ends_in_a_downloadable_result(app_server, live_browser, screenshot):
    page = _open_live_tab(live_browser, app_server.url)
    start = page.locator(".live .start")
    expect(start).to_be_enabled(timeout=LIVE_TIMEOUT_MS)
    start.click()
    # A draft while the first utterance is spoken (counted by the page: it is replaced by the final soon after),
    # then finals after the pauses (the fake microphone plays its file over and over).
    expect(page.locator(".live")).not_to_have_attribute("data-drafts", "0", timeout=LIVE_TIMEOUT_MS)
    expect(page.locator(".live .final").nth(1)).to_be_visible(timeout=LIVE_TIMEOUT_MS)
    screenshot(page, "live")
    page.locator(".live .stop").click()
    expect(page.get_by_role("heading", name="Live dictation 1.wav")).to_be_visible(timeout=LIVE_TIMEOUT_MS)
    wait_for_script(page)
    expect(page.get_by_test_id("stDownloadButton")).to_have_count(5)
    expect(page.get_by_test_id("stAudio").last).to_be_visible()  # the session's recording, to play back
    with page.expect_download() as download:
        page.get_by_role("button", name="TXT").click()
    assert download.value.suggested_filename == "Live dictation 1.txt"
    assert_no_traceback(page)
    page.context.close()


def test_an_insecure_page_says_to_open_it_on_localhost(app_server, live_browser):
    lan_url = re.sub(r"//[^/:]+", f"//{LAN_NAME}", app_server.url, count=1)
    page = _open_live_tab(live_browser, lan_url, secure=False)
    assert page.evaluate("window.isSecureContext") is False
    expect(page.locator(".live .insecure")).to_be_visible()
    expect(page.locator(".live .insecure")).to_contain_text("localhost")
    expect(page.locator(".live .start")).to_be_disabled()
    page.context.close()


# Every text the tab's status line showed, so that a progress line that came and went between two polls is seen.
_WATCH_STATUS = """(status) => {
  window.__statuses = [];
  new MutationObserver(() => window.__statuses.push(status.textContent))
    .observe(status, {childList: true, characterData: true, subtree: true});
}"""


def _two_speakers(page: Page) -> None:
    """The sidebar's Speakers switch on, with a count of 2."""
    sidebar = page.get_by_test_id("stSidebar")
    sidebar.get_by_text("Speakers", exact=True).last.click()
    expect(sidebar.get_by_role("combobox", name="How many speakers")).to_be_visible(timeout=60_000)
    choose(page, sidebar, "How many speakers", re.compile(r"^2$"))


@pytest.mark.slow
def test_with_speakers_on_the_live_result_has_a_speaker_each(app_server, two_voice_browser):
    page = _open_live_tab(two_voice_browser, app_server.url, first=_two_speakers)
    start = page.locator(".live .start")
    expect(start).to_be_enabled()
    page.locator(".live .status").evaluate(_WATCH_STATUS)  # the component may sit in a shadow root
    start.click()
    expect(page.locator(".live .final").nth(1)).to_be_visible()  # both voices have spoken
    page.locator(".live .stop").click()
    expect(page.get_by_role("heading", name="Live dictation 1.wav")).to_be_visible()
    wait_for_script(page)
    assert any(text.startswith("Finding speakers…") for text in page.evaluate("window.__statuses"))
    names = page.get_by_role("textbox", name="Name", exact=True)
    expect(names).to_have_count(2)  # a panel per speaker, as for a file
    names.first.fill("Alice")
    names.first.press("Enter")
    expect(page.get_by_test_id("stCode")).to_contain_text("Alice: ")
    name, txt = download(page, "txt")
    assert name == "Live dictation 1.txt" and txt.startswith("Alice: ")  # S1 speaks first
    assert_no_traceback(page)
    page.context.close()
