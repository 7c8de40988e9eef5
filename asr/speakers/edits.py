"""What a person changes about speakers after a run: names, a sentence's speaker, two speakers merged.

Each edit returns a new `Transcript` (results are frozen); every writer reads names from
`Transcript.speakers`, so one rename reaches the copy block and every download at once.
"""

from __future__ import annotations

from dataclasses import replace

from ..errors import OptionsError
from ..results import Speaker, Transcript


def _check(transcript: Transcript, *speaker_ids: str) -> None:
    known = [s.id for s in transcript.speakers or ()]
    for speaker_id in speaker_ids:
        if speaker_id not in known:
            raise OptionsError(f"No speaker {speaker_id!r} in this transcript; its speakers are {', '.join(known)}.")


def rename_speaker(transcript: Transcript, speaker_id: str, name: str) -> Transcript:
    """The transcript with speaker `speaker_id` shown as `name` (trimmed; not empty, not another's name)."""
    _check(transcript, speaker_id)
    name = " ".join(name.split())
    if not name:
        raise OptionsError("A speaker's name must not be empty.")
    if any(s.name == name and s.id != speaker_id for s in transcript.speakers or ()):
        raise OptionsError(f"Another speaker is already called {name!r}; merge the two speakers instead.")
    speakers = tuple(Speaker(s.id, name) if s.id == speaker_id else s for s in transcript.speakers or ())
    return replace(transcript, speakers=speakers)


def move_segment(transcript: Transcript, index: int, speaker_id: str) -> Transcript:
    """The transcript with segment `index` (and its words) given to speaker `speaker_id`."""
    _check(transcript, speaker_id)
    segment = transcript.segments[index]
    words = tuple(replace(word, speaker=speaker_id) for word in segment.words)
    moved = replace(segment, speaker=speaker_id, words=words)
    return replace(transcript, segments=(*transcript.segments[:index], moved, *transcript.segments[index + 1 :]))


def merge_speakers(transcript: Transcript, source_id: str, target_id: str) -> Transcript:
    """The transcript with everything `source_id` said (segments, words, turns) given to `target_id`."""
    _check(transcript, source_id, target_id)
    if source_id == target_id:
        return transcript

    def moved(speaker: str | None) -> str | None:
        return target_id if speaker == source_id else speaker

    segments = tuple(
        replace(s, speaker=moved(s.speaker), words=tuple(replace(w, speaker=moved(w.speaker)) for w in s.words))
        for s in transcript.segments
    )
    turns = tuple(
        replace(turn, speaker=target_id) if turn.speaker == source_id else turn for turn in transcript.speaker_turns
    )
    speakers = tuple(s for s in transcript.speakers or () if s.id != source_id)
    return replace(transcript, segments=segments, info=replace(transcript.info, speaker_turns=turns), speakers=speakers)
