"""Every output format against small golden strings, plus the invariants of subtitle cues.

Transcripts are built by hand: no audio, no model. Golden strings are written out literally, so a change
to any format shows up here as a readable diff.
"""

from __future__ import annotations

import json
import re
import unicodedata
from itertools import pairwise
from pathlib import Path

import pytest

from asr.cues import SubtitleLayout
from asr.docx_writer import render_docx
from asr.errors import ASRError, OptionsError
from asr.options import DecodeOptions, GuardOptions, TranscribeOptions, VadOptions
from asr.results import Segment, SegmentFlag, SourceInfo, Transcript, TranscriptionInfo, Word
from asr.writers import FORMATS, WRITERS, render_json, render_srt, render_txt, render_vtt, save

SOURCE = SourceInfo(
    duration_s=3725.2504, sample_rate=44_100, channels=2, codec="mp3", container="mp3", size_bytes=1_234_567
)

LONG_ENGLISH = (
    "Thanks for joining the call today. We have three items on the agenda, and the first one is the budget "
    "for next year, which we still need to agree on before Friday."
)
LONG_CHINESE = "今天我们来讨论一下明年的预算，这个问题比较复杂。首先请财务部介绍一下情况，然后大家再提问题。"


def make_transcript(*segments: Segment, options: TranscribeOptions | None = None) -> Transcript:
    """A transcript of `segments` from a one-hour MP3, as the pipeline would build it."""
    info = TranscriptionInfo(
        source=SOURCE,
        duration_s=3725.2504,
        language=None,
        options=options or TranscribeOptions(),
        model="Qwen/Qwen3-ASR-0.6B",
        notes=("a note",),
    )
    return Transcript(segments=segments, info=info)


def two_segments() -> Transcript:
    """One English segment near the start and one Chinese segment past the first hour."""
    return make_transcript(
        Segment(1.5, 4.25, "Hello there.", "English"),
        # 3723.0004 s rounds down to 01:02:03.000; 3725.9996 s rounds up and carries into the seconds.
        Segment(3723.0004, 3725.9996, "你好，世界。", "Chinese", (SegmentFlag.TOKEN_CAP,)),
    )


def parse_srt(text: str) -> list[tuple[int, int, list[str]]]:
    """(start_ms, end_ms, lines) for each cue of an SRT document, checking the numbering on the way."""
    assert text.endswith("\n\n")
    cues = []
    for number, block in enumerate(text[:-2].split("\n\n"), 1):
        index, timing, *lines = block.split("\n")
        assert index == str(number)
        match = re.fullmatch(r"(\d+):(\d\d):(\d\d),(\d\d\d) --> (\d+):(\d\d):(\d\d),(\d\d\d)", timing)
        assert match, timing
        h1, m1, s1, ms1, h2, m2, s2, ms2 = map(int, match.groups())
        cues.append(((h1 * 3600 + m1 * 60 + s1) * 1000 + ms1, (h2 * 3600 + m2 * 60 + s2) * 1000 + ms2, lines))
    return cues


def columns(line: str) -> int:
    """On-screen width: CJK characters take two columns."""
    return sum(2 if unicodedata.east_asian_width(char) in ("W", "F") else 1 for char in line)


# --- the registry and the four formats on a small transcript ---------------------------------------


def test_registry_lists_the_five_formats():
    assert FORMATS == ("txt", "srt", "vtt", "json", "docx")
    assert [(writer.extension, writer.mime_type) for writer in WRITERS.values()] == [
        ("txt", "text/plain"),
        ("srt", "application/x-subrip"),
        ("vtt", "text/vtt"),
        ("json", "application/json"),
        ("docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
    ]


def test_every_writer_renders_as_its_own_function():
    """The registry's uniform call gives what each format's own function gives (DOCX titled by `name`)."""
    transcript = two_segments()
    layout = SubtitleLayout(max_line_width=20)
    assert WRITERS["txt"](transcript, layout) == render_txt(transcript)
    assert WRITERS["srt"](transcript, layout) == render_srt(transcript, layout)
    assert WRITERS["vtt"](transcript, layout) == render_vtt(transcript, layout)
    assert WRITERS["json"](transcript, layout) == render_json(transcript)
    assert WRITERS["docx"](transcript, name="a.wav") == render_docx(transcript, title="a.wav")


def test_txt_golden():
    assert render_txt(two_segments()) == "Hello there.\n你好，世界。\n"


def test_srt_golden_with_hours_and_millisecond_rounding():
    assert render_srt(two_segments()) == (
        "1\n00:00:01,500 --> 00:00:04,250\nHello there.\n\n2\n01:02:03,000 --> 01:02:06,000\n你好，世界。\n\n"
    )


def test_vtt_golden_with_hours_and_millisecond_rounding():
    assert render_vtt(two_segments()) == (
        "WEBVTT\n\n00:00:01.500 --> 00:00:04.250\nHello there.\n\n01:02:03.000 --> 01:02:06.000\n你好，世界。\n\n"
    )


def test_json_golden():
    options = TranscribeOptions(
        vad=VadOptions(threshold=0.4),
        decode=DecodeOptions(language="Chinese", context="Qwen, Streamlit", batch_size=4),
        max_duration_s=7200.0,
        chinese_script="traditional",
    )
    transcript = make_transcript(
        Segment(1.23456, 4.0, "Hello there.", "English", words=(Word(1.23456, 2.5, "Hello"), Word(2.6, 4.0, "there."))),
        Segment(
            5.0,
            29.0004,
            "你好你好你好",
            "Chinese",
            (SegmentFlag.REPETITION_LOOP, SegmentFlag.RETRIED, SegmentFlag.APPROXIMATE_TIMES),
        ),
        options=options,
    )
    assert (
        render_json(transcript)
        == """\
{
  "text": "Hello there.\\n你好你好你好",
  "languages": [
    "English",
    "Chinese"
  ],
  "segments": [
    {
      "start_s": 1.235,
      "end_s": 4.0,
      "text": "Hello there.",
      "language": "English",
      "flags": [],
      "approximate_times": false,
      "speaker": null,
      "words": [
        {
          "start_s": 1.235,
          "end_s": 2.5,
          "text": "Hello",
          "speaker": null
        },
        {
          "start_s": 2.6,
          "end_s": 4.0,
          "text": "there.",
          "speaker": null
        }
      ]
    },
    {
      "start_s": 5.0,
      "end_s": 29.0,
      "text": "你好你好你好",
      "language": "Chinese",
      "flags": [
        "repetition_loop",
        "retried_with_repetition_penalty",
        "approximate_times"
      ],
      "approximate_times": true,
      "speaker": null,
      "words": []
    }
  ],
  "speakers": [],
  "speaker_turns": [],
  "info": {
    "source": {
      "duration_s": 3725.25,
      "sample_rate": 44100,
      "channels": 2,
      "codec": "mp3",
      "container": "mp3",
      "size_bytes": 1234567
    },
    "duration_s": 3725.25,
    "language": null,
    "model": "Qwen/Qwen3-ASR-0.6B",
    "aligner": null,
    "notes": [
      "a note"
    ],
    "options": {
      "vad": {
        "threshold": 0.4,
        "min_speech_duration_ms": 250,
        "min_silence_duration_ms": 300,
        "speech_pad_ms": 200
      },
      "decode": {
        "language": "Chinese",
        "context": "Qwen, Streamlit",
        "batch_size": 4,
        "tokens_per_s": 12.0,
        "min_new_tokens_budget": 16,
        "retry_repetition_penalty": 1.15,
        "guards": {
          "loop_max_unit_chars": 50,
          "loop_min_repeats": 4,
          "loop_min_chars": 40,
          "echo_min_segment_covered": 0.8,
          "echo_min_context_covered": 0.5,
          "echo_max_length_ratio": 1.5
        }
      },
      "max_chunk_s": 24.0,
      "first_chunk_s": 4.0,
      "min_chunk_s": 4.0,
      "max_duration_s": 7200.0,
      "chinese_script": "traditional",
      "speakers": null
    }
  }
}
"""
    )


def test_json_round_trips_and_rebuilds_the_options():
    options = TranscribeOptions(decode=DecodeOptions(language="English", context="ASR"), max_chunk_s=20.0)
    transcript = make_transcript(Segment(0.0, 2.0, "ok", "English", (SegmentFlag.TOKEN_CAP,)), options=options)
    document = json.loads(render_json(transcript))
    assert document["segments"][0]["flags"] == ["token_cap"]
    assert [SegmentFlag(flag) for flag in document["segments"][0]["flags"]] == [SegmentFlag.TOKEN_CAP]
    saved = document["info"]["options"]
    decode = saved.pop("decode")
    guards = GuardOptions(**decode.pop("guards"))
    rebuilt = TranscribeOptions(
        vad=VadOptions(**saved.pop("vad")), decode=DecodeOptions(**decode, guards=guards), **saved
    )
    assert rebuilt == options


# --- timestamps ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start_s", "end_s", "srt_timing", "vtt_timing"),
    [
        (62.3454, 62.3456, "00:01:02,345 --> 00:01:02,346", "00:01:02.345 --> 00:01:02.346"),
        (59.9996, 3599.9996, "00:01:00,000 --> 01:00:00,000", "00:01:00.000 --> 01:00:00.000"),
        (7384.567, 36000.0, "02:03:04,567 --> 10:00:00,000", "02:03:04.567 --> 10:00:00.000"),
        (360000.0, 360001.0, "100:00:00,000 --> 100:00:01,000", "100:00:00.000 --> 100:00:01.000"),
        (-0.5, 1.0, "00:00:00,000 --> 00:00:01,000", "00:00:00.000 --> 00:00:01.000"),  # never negative
        (3.0, 2.0, "00:00:03,000 --> 00:00:03,000", "00:00:03.000 --> 00:00:03.000"),  # end >= start
    ],
)
def test_timestamps(start_s: float, end_s: float, srt_timing: str, vtt_timing: str):
    transcript = make_transcript(Segment(start_s, end_s, "x", None))
    assert render_srt(transcript) == f"1\n{srt_timing}\nx\n\n"
    assert render_vtt(transcript) == f"WEBVTT\n\n{vtt_timing}\nx\n\n"


# --- cue text -----------------------------------------------------------------------------------------


def test_arrow_in_text_is_defused():
    transcript = make_transcript(Segment(0.0, 1.0, "a --> b ---> c", None))
    assert render_srt(transcript) == "1\n00:00:00,000 --> 00:00:01,000\na → b -→ c\n\n"
    assert render_vtt(transcript) == "WEBVTT\n\n00:00:00.000 --> 00:00:01.000\na → b -→ c\n\n"


def test_vtt_escapes_markup_and_srt_keeps_it():
    transcript = make_transcript(Segment(0.0, 1.0, "x < y & z > w", None))
    assert render_srt(transcript) == "1\n00:00:00,000 --> 00:00:01,000\nx < y & z > w\n\n"
    assert render_vtt(transcript) == "WEBVTT\n\n00:00:00.000 --> 00:00:01.000\nx &lt; y &amp; z &gt; w\n\n"


def test_newlines_in_text_are_collapsed():
    transcript = make_transcript(Segment(0.0, 1.0, "  first line\n\nsecond\r\n\tline  ", None))
    assert render_srt(transcript) == "1\n00:00:00,000 --> 00:00:01,000\nfirst line second line\n\n"
    assert render_vtt(transcript) == "WEBVTT\n\n00:00:00.000 --> 00:00:01.000\nfirst line second line\n\n"


def test_empty_segments_make_no_cue():
    transcript = make_transcript(
        Segment(0.0, 1.0, "one", None),
        Segment(1.0, 2.0, "", None),
        Segment(2.0, 3.0, " \n ", None),
        Segment(3.0, 4.0, "two", None),
    )
    assert render_srt(transcript) == (
        "1\n00:00:00,000 --> 00:00:01,000\none\n\n2\n00:00:03,000 --> 00:00:04,000\ntwo\n\n"
    )
    assert render_vtt(transcript) == (
        "WEBVTT\n\n00:00:00.000 --> 00:00:01.000\none\n\n00:00:03.000 --> 00:00:04.000\ntwo\n\n"
    )


def test_empty_transcript():
    transcript = make_transcript()
    assert render_txt(transcript) == ""
    assert render_srt(transcript) == ""
    assert render_vtt(transcript) == "WEBVTT\n\n"
    document = json.loads(render_json(transcript))
    assert (document["text"], document["languages"], document["segments"]) == ("", [], [])


# --- long segments are split into cues -----------------------------------------------------------------


def test_long_english_segment_golden():
    # Cues end after a sentence or clause when one falls in the second half of what would fit; the two
    # lines of a cue are balanced; time is shared by non-space characters (57 + 39 + 36 of 132).
    transcript = make_transcript(Segment(12.0, 24.5, LONG_ENGLISH, "English"))
    assert render_srt(transcript) == (
        "1\n"
        "00:00:12,000 --> 00:00:17,398\n"
        "Thanks for joining the call today.\n"
        "We have three items on the agenda,\n"
        "\n"
        "2\n"
        "00:00:17,398 --> 00:00:20,902\n"
        "and the first one is the\n"
        "budget for next year,\n"
        "\n"
        "3\n"
        "00:00:20,902 --> 00:00:24,500\n"
        "which we still need to\n"
        "agree on before Friday.\n"
        "\n"
    )


def test_long_chinese_segment_golden():
    # No spaces: lines break between characters, after punctuation where it keeps lines near even.
    transcript = make_transcript(Segment(12.0, 24.5, LONG_CHINESE, "Chinese"))
    assert render_vtt(transcript) == (
        "WEBVTT\n"
        "\n"
        "00:00:12.000 --> 00:00:18.522\n"
        "今天我们来讨论一下明年的预算，\n"
        "这个问题比较复杂。\n"
        "\n"
        "00:00:18.522 --> 00:00:24.500\n"
        "首先请财务部介绍一下情况，\n"
        "然后大家再提问题。\n"
        "\n"
    )


@pytest.mark.parametrize(
    ("text", "joiner"),
    [
        (" ".join([LONG_ENGLISH] * 3), " "),  # ~500 characters, about 25 s of speech: words stay whole
        (LONG_CHINESE * 4, ""),  # ~180 characters without a single space
        ("x" * 200 + " tail", None),  # one "word" wider than a line is cut where the line is full
    ],
)
def test_long_segment_cues_fit_and_stay_inside_the_segment(text: str, joiner: str | None):
    start_ms, end_ms = 3_600_000, 3_625_000
    transcript = make_transcript(
        Segment(0.0, 1.0, "before", None),
        Segment(start_ms / 1000, end_ms / 1000, text, None),
        Segment(25.0, 26.0, "after", None),
    )
    before, *cues, after = parse_srt(render_srt(transcript))
    assert before == (0, 1000, ["before"]) and after == (25_000, 26_000, ["after"])
    assert len(cues) >= 3
    assert cues[0][0] == start_ms and cues[-1][1] == end_ms
    for (_, previous_end, _), (start, _, _) in pairwise(cues):
        assert previous_end == start  # cues touch: monotonic and no gaps inside the segment
    for start, end, lines in cues:
        assert start_ms <= start <= end <= end_ms
        assert 1 <= len(lines) <= 2
        assert all(line and line == line.strip() and columns(line) <= 42 for line in lines)
    lines = [line for _, _, cue_lines in cues for line in cue_lines]
    assert "".join(lines).replace(" ", "") == text.replace(" ", "")  # nothing lost, nothing added
    if joiner is not None:
        assert joiner.join(lines) == text  # breaks fall only at spaces, or between CJK characters


def test_long_segment_time_is_shared_by_characters():
    # 40 + 40 letters fill the first cue's two lines and 4 go to the next: 8.4 s split 80 : 4.
    text = " ".join(["a" * 40, "b" * 40, "c" * 4])
    transcript = make_transcript(Segment(10.0, 18.4, text, None))
    assert parse_srt(render_srt(transcript)) == [
        (10_000, 18_000, ["a" * 40, "b" * 40]),
        (18_000, 18_400, ["cccc"]),
    ]


# --- save() --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["txt", "srt", "vtt", "json"])
def test_save_writes_utf8(tmp_path: Path, fmt: str):
    transcript = two_segments()
    path = tmp_path / f"out.{fmt}"
    assert save(transcript, fmt, path) == path
    content = WRITERS[fmt](transcript)
    assert isinstance(content, str) and path.read_bytes() == content.encode("utf-8")
    assert "你好" in path.read_text(encoding="utf-8")


def test_save_rejects_an_unknown_format(tmp_path: Path):
    with pytest.raises(OptionsError, match=r"'pdf'.*txt, srt, vtt, json, docx"):
        save(two_segments(), "pdf", tmp_path / "out.pdf")
    assert not (tmp_path / "out.pdf").exists()


def test_save_explains_a_failed_write(tmp_path: Path):
    path = tmp_path / "missing-folder" / "out.txt"
    with pytest.raises(ASRError, match="folder exists") as caught:
        save(two_segments(), "txt", path)
    assert not isinstance(caught.value, OptionsError)
    assert str(path) in str(caught.value)
    assert isinstance(caught.value.__cause__, OSError)
