"""The page in headless Chromium: opening it, a user's steps on it, and full-page screenshots.

Shared by the browser tests (tests/browser_fixtures.py, tests/test_browser*.py), the loopback-only app test
(tests/test_netns.py) and the README's screenshots (`testbed.screenshots`), so each step is written once. Every
step acts as a user does: by role, label or Streamlit's test ids, never at pixel offsets.
"""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import Browser, Locator, Page, Playwright, ViewportSize, expect

from testbed.app_server import CHROMIUM, CHROMIUM_ARGS, ROOT, AppServer

VIEWPORT: ViewportSize = {"width": 1400, "height": 900}
SCREENSHOT_DIR = ROOT / "docs" / "screenshots"
EXPECT_TIMEOUT_MS = 60_000  # the first page waits for torch and the model to load: slow on a busy machine
TRANSCRIBE_TIMEOUT_MS = 60_000
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


def launch_chromium(playwright: Playwright, microphone: Path | None = None, *extra_args: str) -> Browser:
    """Headless Debian Chromium (a fresh temporary profile each launch), whose fake microphone, if given, plays
    `microphone` in a loop."""
    fake_microphone = (
        [
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={microphone}",
        ]
        if microphone is not None
        else []
    )
    return playwright.chromium.launch(
        executable_path=CHROMIUM, headless=True, args=[*CHROMIUM_ARGS, *fake_microphone, *extra_args]
    )


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


def assert_no_traceback(page: Page) -> None:
    """No Python traceback on the page now, and none since it was opened."""
    expect(page.get_by_test_id("stException")).to_have_count(0)
    assert page.evaluate("window.__seen.stException") == 0, "a traceback (stException) was shown at some point"


def wait_for_script(page: Page) -> None:
    """Wait until the page is connected and its script run has finished."""
    app = page.get_by_test_id("stApp")
    expect(app).to_have_attribute("data-test-connection-state", "CONNECTED")
    expect(app).to_have_attribute("data-test-script-state", "notRunning")


def add_file(page: Page, name: str, mime_type: str, data: bytes) -> None:
    """Add one file through the uploader's button and the browser's file chooser, as a user does."""
    dropzone = page.get_by_test_id("stFileUploaderDropzone")
    # The button reads "Upload" while the uploader is empty, then "+" ("Add files").
    button = dropzone.get_by_role("button", name=re.compile(r"^(Upload|Add files)$"))
    with page.expect_file_chooser() as chooser:
        button.click()
    chooser.value.set_files({"name": name, "mimeType": mime_type, "buffer": data})
    expect(dropzone.get_by_test_id("stFileChipName").filter(has_text=name)).to_be_visible()


def input_title(page: Page, name: str) -> Locator:
    """The bold name above an input's player (not the chip in the uploader, not a result's heading)."""
    return page.get_by_test_id("stMain").locator("strong").filter(has_text=re.compile(f"^{re.escape(name)}$"))


def transcribe(page: Page) -> None:
    """Click Transcribe once the run that the last upload started has ended (a click on a button that run is
    still redrawing was once not heard: two files added, the button clicked, nothing started in 240 s)."""
    wait_for_script(page)
    button = page.get_by_role("button", name=re.compile(r"^Transcribe( again)?$"))
    expect(button).to_be_enabled()
    button.click()


def expect_result(page: Page, name: str, timeout_ms: int = TRANSCRIBE_TIMEOUT_MS) -> None:
    """A finished result: its heading, the segment table, the copy block and the five downloads."""
    expect(page.get_by_role("heading", name=name, exact=True)).to_be_visible(timeout=timeout_ms)
    # Until a run ends, Streamlit keeps the previous run's elements whose place moved (shown faded, "stale").
    wait_for_script(page)
    expect(page.get_by_test_id("stDataFrame")).to_be_visible()
    expect(page.get_by_test_id("stCode")).to_be_visible()
    expect(page.get_by_test_id("stDownloadButton")).to_have_count(5)
    expect(page.get_by_role("button", name="Cancel")).to_have_count(0)  # the job panel is gone


def download(page: Page, fmt: str) -> tuple[str, str]:
    """Click a result's download button for `fmt`; returns the file name the browser was given, and the text."""
    with page.expect_download() as download_info:
        page.get_by_role("button", name=fmt.upper()).click()
    file = download_info.value
    return file.suggested_filename, Path(file.path()).read_bytes().decode("utf-8")  # as sent: no newline translation


_TABLE_OVERFLOW_SCRIPT = """table => {
  const card = table.closest('[data-testid="stVerticalBlockBorderWrapper"]') ?? table.parentElement;
  const scroller = table.querySelector('.dvn-scroller');
  return {
    past_card: table.getBoundingClientRect().right - card.getBoundingClientRect().right,
    hidden: scroller ? scroller.scrollWidth - scroller.clientWidth : 0,
  };
}"""


def assert_table_fits(page: Page) -> None:
    """The result's table ends inside its card, and no column is scrolled out of the grid's view (the grid would
    clip it at its right edge)."""
    overflow = page.get_by_test_id("stDataFrame").last.evaluate(_TABLE_OVERFLOW_SCRIPT)
    assert overflow["past_card"] <= 0 and overflow["hidden"] <= 1, overflow


def choose(page: Page, sidebar: Locator, label: str, option: re.Pattern) -> None:
    """Pick an option of a selectbox, as a user does: open it, click the option, see it chosen.

    A click that lands while the list is still opening only highlights the option (seen on a loaded machine),
    so an unchosen option is clicked again, up to three times.
    """
    wait_for_script(page)  # a rerun under way would draw the box again and drop the choice
    box = sidebar.get_by_role("combobox", name=label)
    for attempt in range(3):
        box.click()
        page.get_by_role("option", name=option).click()
        try:
            expect(box).to_have_value(option, timeout=5_000)
            break
        except AssertionError:
            if attempt == 2:
                raise
            page.keyboard.press("Escape")
    wait_for_script(page)


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
