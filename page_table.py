"""The page's results table: rows as tall as their longest text, and Play boxes that work as buttons.

Kept apart from app.py, which draws the table and the player with these helpers. Like app.py it uses only
`import asr`.

`st.data_editor` tells of edits, not of clicks, so Play is a tick box. A tick moves the player, and then every
box is clear again: the table is drawn afresh under its next key (`table_key`), with the user's changes so far
written into its rows (`kept_edits`), so no change is lost and every tick is a new press. The player is drawn
anew on each press (its `alt` counts them), so it starts from the sentence even when it was there already.

Streamlit wraps a cell's text only in rows over 64 px tall, and all rows of a table have one height, so the rows
are made as tall as the longest sentence or note needs at its column's width (`row_height`).
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Iterable, Sequence
from typing import Any

import streamlit as st
from streamlit.elements.lib.column_types import ColumnConfig

import asr

FLAG_WORDS = {
    asr.SegmentFlag.TOKEN_CAP: "may be cut short (hit the length limit)",
    asr.SegmentFlag.REPETITION_LOOP: "repeats itself: check this part against the audio",
    asr.SegmentFlag.RETRIED: "decoded twice to stop a repetition",
    asr.SegmentFlag.APPROXIMATE_TIMES: "times estimated from the speech, not word by word",
    asr.SegmentFlag.CONTEXT_ECHO: "dropped: the model only repeated your names and terms (silence or noise?)",
}
# The columns' widths: the table is as wide as they are (a wider one would stretch them, and the rows' height
# follows the widths). Start and End fit "1:02:03", Speaker "Speaker 8". With the Speaker column they add up to
# 886 px, under the result card's 906 px inside in the browser's 1400 px window (testbed.browser.VIEWPORT).
PLAY_WIDTH_PX, TIME_WIDTH_PX, SPEAKER_WIDTH_PX, TEXT_WIDTH_PX, NOTE_WIDTH_PX = 60, 70, 96, 400, 190
# The grid's text (14 px, cells padded 8 px left and right) as wide as it may be: a letter at most 8 px on average
# (Source Sans averages under 7), a wide character (CJK) 15; a line is 1.4 times the font's 15 px of ink.
_PADDING_PX = 2 * 8
_NARROW_PX, _WIDE_PX = 8.0, 15.0
_INK_PX, _LINE_PX, _VERTICAL_PX = 15.0, 21.0, 8
_WRAPPING_PX = 65  # Streamlit wraps text only in rows taller than this less one
state = st.session_state


def note(flags: Iterable[asr.SegmentFlag]) -> str:
    """A segment's flags in plain words (the table's Note column)."""
    return "; ".join(FLAG_WORDS[flag] for flag in flags if flag in FLAG_WORDS)


def table_columns() -> dict[str, ColumnConfig]:
    """The table's columns but the Speaker one: a Play box, the times, the editable Text and the Note."""
    text = st.column_config.TextColumn
    return {
        "Play": st.column_config.CheckboxColumn(
            "Play", width=PLAY_WIDTH_PX, help="Play the recording from this sentence"
        ),
        "Start": text(width=TIME_WIDTH_PX),
        "End": text(width=TIME_WIDTH_PX),
        "Text": text(width=TEXT_WIDTH_PX),
        "Note": text(width=NOTE_WIDTH_PX),
    }


def table_key(result_id: int) -> str:
    """The key of the result's table now: each press of Play moves it on, to a fresh table with no box ticked."""
    return f"edit-{result_id}-{state.get(f'table-{result_id}', 0)}"


def kept_edits(result_id: int) -> dict[int, dict[str, Any]]:
    """The user's changes from the result's earlier tables, row -> column -> value; its rows are drawn with them."""
    return state.get(f"kept-{result_id}", {})


def table_edits(result_id: int) -> dict[int, dict[str, Any]]:
    """Every change the user made in the result's table, row -> column -> value: the kept ones, then this table's."""
    edits = {row: dict(change) for row, change in kept_edits(result_id).items()}
    for row, change in state.get(table_key(result_id), {}).get("edited_rows", {}).items():
        edits.setdefault(int(row), {}).update(change)
    return edits


def pressed_play(result_id: int) -> int | None:
    """The row whose Play box was just ticked (None: none); the user's other changes are kept for the next table."""
    changes = state.get(table_key(result_id), {}).get("edited_rows", {})
    ticked = [int(row) for row, change in changes.items() if change.get("Play")]
    if not ticked:
        return None
    state[f"kept-{result_id}"] = {
        row: {column: value for column, value in change.items() if column != "Play"}
        for row, change in table_edits(result_id).items()
    }
    state[f"table-{result_id}"] = state.get(f"table-{result_id}", 0) + 1
    return max(ticked)


def player(result_id: int, name: str, audio: bytes, transcript: asr.Transcript) -> None:
    """The result's player: from the start of the sentence whose Play was pressed last, playing at once."""
    row = pressed_play(result_id)
    if row is not None:
        state[f"start-{result_id}"] = transcript.segments[row].start_s
        state[f"plays-{result_id}"] = state.get(f"plays-{result_id}", 0) + 1
    start_s = state.get(f"start-{result_id}")  # kept, so other reruns leave the player as it is
    if start_s is None:
        st.audio(audio)
        return
    presses = state[f"plays-{result_id}"]  # a new alt is a new player, even at the same start: it plays again
    alt = f"Playing {name} from {asr.format_clock(start_s)} (press {presses})"
    st.audio(audio, start_time=start_s, autoplay=True, alt=alt)


def forget_table(result_id: int) -> None:
    """Drop what the page keeps of a result's table and player (its card is gone): no text outlives its card."""
    for key in ("kept", "table", "start", "plays"):
        state.pop(f"{key}-{result_id}", None)


def row_height(texts: Sequence[str], notes: Sequence[str]) -> int | None:
    """The rows' height for the longest sentence and note to show whole; None (one line) when all fit on one."""
    lines = max(
        [_lines(text, TEXT_WIDTH_PX - _PADDING_PX) for text in texts]
        + [_lines(words, NOTE_WIDTH_PX - _PADDING_PX) for words in notes]
    )
    if lines <= 1:
        return None
    return max(_WRAPPING_PX, math.ceil(_INK_PX + _LINE_PX * (lines - 1) + _VERTICAL_PX))


def _lines(text: str, width_px: float) -> int:
    """How many lines `text` takes at `width_px`, broken at spaces as the grid breaks it (a longer word anywhere)."""
    lines, used = 1, 0.0
    for index, word in enumerate(text.split(" ")):
        size = sum(_WIDE_PX if unicodedata.east_asian_width(char) in ("W", "F") else _NARROW_PX for char in word)
        space = _NARROW_PX if index and used else 0.0
        if used + space + size <= width_px:
            used += space + size
            continue
        lines += 1 if used else 0
        lines += int(size // width_px)  # a word longer than a line fills whole lines
        used = size % width_px
    return lines
