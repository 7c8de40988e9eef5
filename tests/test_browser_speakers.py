"""Speakers in a real browser: switch on, transcribe a two-speaker file, rename Speaker 1, download the VTT."""

from __future__ import annotations

import io
import re

import pytest
import soundfile as sf
from playwright.sync_api import expect

from testbed.browser import add_file, assert_table_fits, choose, download, expect_result, transcribe
from testbed.conversations import conversation

pytestmark = pytest.mark.slow


def test_a_rename_reaches_the_downloaded_vtt(app_server, open_page, screenshot) -> None:
    buffer = io.BytesIO()
    sf.write(buffer, conversation("short_two").samples, 16_000, format="WAV")
    page = open_page(app_server)
    expect(page.get_by_test_id("stFileUploader")).to_be_visible()
    sidebar = page.get_by_test_id("stSidebar")
    sidebar.get_by_text("Speakers", exact=True).last.click()
    expect(sidebar.get_by_role("combobox", name="How many speakers")).to_be_visible()
    choose(page, sidebar, "How many speakers", re.compile(r"^2$"))
    add_file(page, "talk.wav", "audio/wav", buffer.getvalue())
    transcribe(page)
    expect_result(page, "talk.wav", timeout_ms=240_000)
    assert_table_fits(page)  # with the Speaker column too, every column shows whole inside the card
    names = page.get_by_role("textbox", name="Name", exact=True)
    expect(names).to_have_count(2)
    expect(names.first).to_have_value("Speaker 1")
    names.first.fill("Alice")
    names.first.press("Enter")
    expect(page.get_by_test_id("stCode")).to_contain_text("Alice: ")
    screenshot(page, "speakers")
    name, vtt = download(page, "vtt")
    assert name == "talk.vtt"
    assert "<v Alice>" in vtt and "<v Speaker 1>" not in vtt and "<v Speaker 2>" in vtt
