"""The page's results after a reload: kept in this process's memory for a while, never written anywhere.

A reload starts a new Streamlit session, whose state is empty. So each session gets a random token in the page's
address (`?session=...`), and after each full run of the page its results, the user's edits and the model
choice are kept under that token. A new session whose address carries a kept token takes them back and gets a
token of its own, so an address copied into a second tab goes its own way. What is kept is gone on Clear (the
page keeps nothing once it has no results) and `IDLE_S` after its page last ran. A running transcription is not
kept: it stops as before once its page has gone (`app.page_is_connected`), and the results before it come back.

Kept apart from app.py, which calls `restore` first in each run and `keep` last; it imports only Streamlit and
the table's helpers.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

import streamlit as st

from page_table import table_edits

IDLE_S = 30 * 60  # a kept page is dropped this long after its last run: long enough to reopen a tab closed by mistake
QUERY_KEY = "session"
# What a page keeps besides its cards: the model choice, and the counters that name recordings and number cards.
_PAGE_KEYS = ("model", "aligner", "model_folders", "recording_numbers", "next_result_id")
state = st.session_state


@dataclass(frozen=True)
class KeptPage:
    """A page's results and choices as its last run left them."""

    values: dict[str, Any]  # session-state key -> value, the cards' table edits as `kept-<id>`
    kept_at: float  # time.monotonic()


class PageStore:
    """The kept pages by token, each dropped `IDLE_S` after it was kept (a sweeper thread looks once a minute)."""

    def __init__(self) -> None:
        self._pages: dict[str, KeptPage] = {}
        self._lock = threading.Lock()
        self._sweeper: threading.Thread | None = None

    def keep(self, token: str, values: dict[str, Any]) -> None:
        with self._lock:
            self._pages[token] = KeptPage(values, time.monotonic())
            if self._sweeper is None:
                self._sweeper = threading.Thread(target=self._sweep_forever, name="page-store-sweeper", daemon=True)
                self._sweeper.start()

    def take(self, token: str) -> dict[str, Any] | None:
        """The page kept under `token`, which is then no longer kept there (None: none, or it was dropped)."""
        self.sweep()
        with self._lock:
            page = self._pages.pop(token, None)
        return None if page is None else page.values

    def forget(self, token: str) -> None:
        with self._lock:
            self._pages.pop(token, None)

    def sweep(self, now: float | None = None) -> None:
        """Drop every page kept more than `IDLE_S` before `now` (default: now)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            for token in [token for token, page in self._pages.items() if now - page.kept_at > IDLE_S]:
                del self._pages[token]

    def _sweep_forever(self) -> None:
        while True:
            time.sleep(60)
            self.sweep()


STORE = PageStore()  # one per server process; each session's page is under its own token


def restore() -> None:
    """On a session's first run: take back the page its address names, if kept, and give the session its token."""
    if "session_token" in state:
        return
    kept = STORE.take(st.query_params.get(QUERY_KEY, ""))
    for key, value in (kept or {}).items():
        state[key] = value
    state.session_token = secrets.token_urlsafe(16)
    st.query_params[QUERY_KEY] = state.session_token


def keep() -> None:
    """After a full run: keep the page's results and choices for a reload, or nothing once it has no results."""
    token = state.session_token
    cards = state.get("cards", {})
    if not cards:
        STORE.forget(token)
        return
    values: dict[str, Any] = {key: state[key] for key in _PAGE_KEYS if key in state}
    values["cards"] = dict(cards)
    for card in cards.values():
        values[f"kept-{card.id}"] = table_edits(card.id)  # this table's edits too: a new session draws a fresh one
        if f"merges-{card.id}" in state:
            values[f"merges-{card.id}"] = list(state[f"merges-{card.id}"])
        names = f"name-{card.id}-"  # the speaker names' text fields, "name-<id>-<speaker>"
        values.update({key: state[key] for key in state if str(key).startswith(names)})
    STORE.keep(token, values)
