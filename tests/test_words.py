"""Words on the timeline without a model: matching aligner tokens to the text, estimates, sentences."""

from __future__ import annotations

import pytest

from asr.results import Word
from asr.words import (
    MAX_SEGMENT_S,
    TimedText,
    estimate_times,
    sentence_ranges,
    split_tokens,
    timed_text,
    token_starts,
    word_offsets,
)


def test_tokens_are_found_in_the_text_and_words_keep_their_punctuation():
    text = 'He said: "Hello, world!" (twice)'
    starts = token_starts(text, ["He", "said", "Hello", "world", "twice"])
    assert starts == [0, 3, 10, 17, 26]
    timed = timed_text(text, starts, [(0.0, 0.1)] * 5, (0.0, 1.0))
    assert [w.text for w in timed.words] == ["He", "said:", '"Hello,', 'world!"', "(twice)"]
    assert " ".join(w.text for w in timed.words) == text  # the text never changes


def test_tokens_that_do_not_spell_the_text_are_refused():
    assert token_starts("Hello world", ["Hello", "word"]) is None
    assert token_starts("Hello world", ["Hello"]) is None  # a word left over
    assert token_starts("...", []) is None


def test_cjk_is_one_token_per_character_and_punctuation_stays_behind():
    text = "你好，世界。"
    tokens = split_tokens(text)
    assert tokens == ["你", "好", "世", "界"]
    starts = token_starts(text, tokens)
    assert starts is not None
    timed = timed_text(text, starts, [(0.0, 0.1)] * 4, (0.0, 1.0))
    assert [w.text for w in timed.words] == ["你", "好，", "世", "界。"]
    assert "".join(w.text for w in timed.words) == text


def test_aligned_times_are_clamped_into_the_chunk_ordered_and_never_overlap():
    text = "one two three four"
    wild = [(5.0, 4.0), (-3.0, 12.0), (11.0, 11.5), (10.2, 10.1)]
    starts = token_starts(text, text.split())
    assert starts is not None
    timed = timed_text(text, starts, wild, (10.0, 11.0))
    for word in timed.words:
        assert 10.0 <= word.start_s <= word.end_s <= 11.0
    for before, after in zip(timed.words, timed.words[1:], strict=False):
        assert before.end_s <= after.start_s


def test_estimated_times_cover_speech_only_never_the_pause():
    text = "abcd efgh ijkl mnop"  # equal lengths: the halfway point falls between the second and third word
    spans = [(1.0, 2.0), (5.0, 6.0)]  # 3 s of silence between
    estimate = estimate_times(text, spans)
    assert estimate is not None
    _, times = estimate
    for start, end in times:
        assert not 2.0 < start < 5.0 and not 2.0 < end < 5.0
    assert times[0][0] == 1.0 and times[-1][1] == 6.0
    assert times[1][1] == pytest.approx(2.0) and times[2][0] == pytest.approx(5.0)


def test_sentences_end_at_punctuation_and_at_long_pauses():
    words = (
        Word(0.0, 0.4, "Hello"),
        Word(0.5, 0.9, "there."),
        Word(1.0, 1.4, "How"),
        Word(1.5, 1.9, "are"),
        Word(3.0, 3.4, "you"),  # 1.1 s pause before
        Word(3.5, 3.9, "today?"),
    )
    timed = TimedText("Hello there. How are you today?", words, (0, 6, 13, 17, 21, 25))
    assert [timed.slice_text(a, b) for a, b in sentence_ranges(timed)] == ["Hello there.", "How are", "you today?"]


def test_a_run_on_sentence_is_cut_to_the_cap_at_its_best_break():
    """20 s of words with no sentence punctuation and no pause: cut once, after the clause's comma."""
    words = [Word(i * 0.5, i * 0.5 + 0.4, f"w{i}") for i in range(40)]
    words[25] = Word(12.5, 12.9, "w25,")
    text = " ".join(w.text for w in words)
    timed = timed_text(
        text,
        [text.index(w.text + (" " if i < 39 else "")) for i, w in enumerate(words)],
        [(w.start_s, w.end_s) for w in words],
        (0.0, 20.0),
    )
    ranges = sentence_ranges(timed)
    assert ranges == [(0, 26), (26, 40)]
    for first, stop in ranges:
        assert timed.words[stop - 1].end_s - timed.words[first].start_s <= MAX_SEGMENT_S


def test_word_offsets_notice_an_edited_text():
    words = (Word(0, 1, "Hello,"), Word(1, 2, "world."))
    assert word_offsets("Hello, world.", words) == [0, 7]
    assert word_offsets("Hello, brave world.", words) is None
    assert word_offsets("Hello, world. And more", words) is None
