"""The page's speaker parts: the sidebar switch, the table's Speaker column, and a panel per speaker.

Kept apart from app.py (which calls these functions) so that the page's other parts change without
touching this one. Like app.py it uses only `import asr`. A person's changes live in `st.session_state`
and are applied to the finished transcript on every rerun, in this order: sentences moved in the table,
speakers merged, names given; so the copy block and every download show them at once.
"""

from __future__ import annotations

import contextlib

import numpy as np
import streamlit as st
from streamlit.elements.lib.column_types import ColumnConfig

import asr
from page_table import SPEAKER_WIDTH_PX, table_edits

AUTO_COUNT = "Auto"
COUNT_CHOICES = [AUTO_COUNT, *map(str, range(1, asr.MAX_SPEAKERS + 1))]
CLIP_S = 4.0  # how much of a speaker's first turns their sample clip plays
state = st.session_state


def speakers_choice() -> asr.SpeakerOptions | None:
    """The "Speakers" switch and its count (Auto, 1-8); None when the switch is off."""
    st.header("Speakers")
    wanted = st.toggle(
        "Speakers",
        key="speakers",
        help="Label who speaks when (CAM++ speaker model, on this computer). You can rename, move and merge "
        "speakers afterwards.",
    )
    if not wanted:
        return None
    count = st.selectbox("How many speakers", COUNT_CHOICES, key="speaker_count", help="Auto finds the count.")
    return asr.SpeakerOptions(count=None if count == AUTO_COUNT else int(count))


def speakers_made_with(speakers: asr.SpeakerOptions | None) -> list[str]:
    """What a result card says about speakers: nothing when off, else the count asked for."""
    if speakers is None:
        return []
    return ["speakers found" if speakers.count is None else f"{speakers.count} speakers"]


def _moves(result_id: int) -> dict[int, str]:
    edits = table_edits(result_id)
    return {index: str(change["Speaker"]) for index, change in edits.items() if change.get("Speaker")}


def with_speaker_edits(result_id: int, transcript: asr.Transcript) -> asr.Transcript:
    """The transcript with this result's moved sentences, merges and names applied."""
    if not transcript.speakers:
        return transcript
    for index, speaker_id in _moves(result_id).items():
        transcript = asr.move_segment(transcript, index, speaker_id)
    for source, target in state.get(f"merges-{result_id}", []):
        transcript = asr.merge_speakers(transcript, source, target)
    for speaker in transcript.speakers or ():
        name = state.get(f"name-{result_id}-{speaker.id}")
        if name is not None and name.strip() and name != speaker.name:
            with contextlib.suppress(asr.OptionsError):  # the panel says why; the name stays as it was
                transcript = asr.rename_speaker(transcript, speaker.id, name)
    return transcript


def speaker_cell(segment: asr.Segment) -> dict[str, str]:
    """The table row's Speaker cell: the speaker's id, shown by name (`speaker_column`)."""
    return {"Speaker": segment.speaker or ""}


def speaker_column(original: asr.Transcript, edited: asr.Transcript) -> dict[str, ColumnConfig]:
    """The Speaker column: a choice among the run's speakers, each shown by its current name."""
    ids = [speaker.id for speaker in original.speakers or ()]

    def name_of(speaker_id: str | int | float | bool) -> str:
        return edited.speaker_name(str(speaker_id)) or _merged_name(edited, original, str(speaker_id))

    column = st.column_config.SelectboxColumn(
        "Speaker",
        options=ids,
        format_func=name_of,
        required=True,
        width=SPEAKER_WIDTH_PX,
        help="Move this sentence to another speaker",
    )
    return {"Speaker": column}


def _merged_name(edited: asr.Transcript, original: asr.Transcript, speaker_id: str) -> str:
    """A speaker merged away is shown by the name of the speaker who now has their sentences."""
    segment = next((i for i, s in enumerate(original.segments) if s.speaker == speaker_id), None)
    now = edited.segments[segment].speaker if segment is not None else None
    return edited.speaker_name(now) or speaker_id


@st.cache_data(show_spinner=False, max_entries=8)
def _clips(result_id: int, _audio: bytes, turns: tuple[asr.SpeakerTurn, ...]) -> dict[str, np.ndarray]:
    """Each speaker's first `CLIP_S` seconds of speech, from their first turns (decoded once per result)."""
    samples = asr.decode_audio(_audio).samples
    clips: dict[str, list[np.ndarray]] = {}
    for turn in turns:
        parts = clips.setdefault(turn.speaker, [])
        have = sum(len(part) for part in parts) / asr.SAMPLE_RATE
        if have < CLIP_S:
            end_s = min(turn.end_s, turn.start_s + CLIP_S - have)
            parts.append(samples[round(turn.start_s * asr.SAMPLE_RATE) : round(end_s * asr.SAMPLE_RATE)])
    return {speaker: np.concatenate(parts) for speaker, parts in clips.items() if parts}


def speaker_panels(result_id: int, audio: bytes | None, transcript: asr.Transcript) -> None:
    """A small panel per speaker (sample clip, name field), and merging two speakers into one."""
    speakers = transcript.speakers or ()
    if not speakers:
        return
    st.markdown("**Speakers**")
    clips = _clips(result_id, audio, transcript.speaker_turns) if audio is not None else {}
    for column, speaker in zip(st.columns(min(len(speakers), 4)) * 2, speakers, strict=False):
        with column.container(border=True):
            if speaker.id in clips:
                st.audio(clips[speaker.id], sample_rate=asr.SAMPLE_RATE)
            key = f"name-{result_id}-{speaker.id}"
            state.setdefault(key, speaker.name)
            name = st.text_input("Name", key=key, help="Shown in the copy block and every download")
            if name.strip() and " ".join(name.split()) != speaker.name:
                st.caption(f":orange[Another speaker is already called {name.strip()!r}; merge them instead.]")
    if len(speakers) > 1:
        names = {speaker.id: speaker.name for speaker in speakers}
        ids = list(names)

        def shown(speaker_id: str) -> str:
            return names[speaker_id]

        left, middle, right = st.columns([2, 2, 1], vertical_alignment="bottom")
        source = left.selectbox("Merge", ids, format_func=shown, key=f"merge-from-{result_id}")
        target = middle.selectbox("into", ids, format_func=shown, index=1, key=f"merge-into-{result_id}")
        if right.button("Merge", key=f"merge-{result_id}", disabled=source == target, width="stretch"):
            state.setdefault(f"merges-{result_id}", []).append((source, target))
            st.rerun()
