"""Chinese script conversion: fixed sentences both ways, other languages untouched, the option end to end."""

from __future__ import annotations

import dataclasses
import json

import pytest
from fakes import FakeEngine

import asr
from asr.chinese import OPENCC_CONFIGS, convert_segment
from asr.cli import main
from asr.options import CHINESE_SCRIPTS
from asr.results import Segment, SegmentFlag, Word
from asr.writers import render_json
from testbed.speech import SENTENCES, speak

SIMPLIFIED = "我们在软件开发中使用鼠标，头发里面有一只虫。"
TAIWAN = "我們在軟件開發中使用鼠標，頭髮裡面有一隻蟲。"  # characters only: 软件 stays 軟件, not 軟體
HONG_KONG = "我們在軟件開發中使用鼠標，頭髮裏面有一隻蟲。"  # Hong Kong writes 裏 where Taiwan writes 裡
CANTONESE_TRADITIONAL = "佢哋喺度講緊嘢，你聽唔聽得明？"
CANTONESE_SIMPLIFIED = "佢哋喺度讲紧嘢，你听唔听得明？"


@pytest.mark.parametrize(
    ("language", "text", "script", "expected"),
    [
        ("Chinese", SIMPLIFIED, "traditional", TAIWAN),
        ("Chinese", SIMPLIFIED, "traditional-hk", HONG_KONG),
        ("Chinese", TAIWAN, "simplified", SIMPLIFIED),
        ("Chinese", HONG_KONG, "simplified", SIMPLIFIED),
        ("Cantonese", CANTONESE_TRADITIONAL, "simplified", CANTONESE_SIMPLIFIED),
        ("Cantonese", CANTONESE_SIMPLIFIED, "traditional-hk", CANTONESE_TRADITIONAL),
        ("Chinese", TAIWAN, "traditional", TAIWAN),  # already in the target script: unchanged
        ("Chinese", SIMPLIFIED, "simplified", SIMPLIFIED),
        ("Chinese", SIMPLIFIED, "auto", SIMPLIFIED),
    ],
)
def test_fixed_sentences_convert_both_ways(language, text, script, expected):
    segment = Segment(1.0, 2.5, text, language, (SegmentFlag.TOKEN_CAP,))
    converted = convert_segment(segment, script)
    assert converted == dataclasses.replace(segment, text=expected)


@pytest.mark.parametrize(
    ("language", "text"),
    [
        ("Japanese", "東京の髪型は面白い。"),  # kanji that OpenCC would turn into 发 if it touched them
        ("English", "Hello there."),
        ("Korean", "안녕하세요."),
        (None, "头发 頭髮"),  # unknown language: left alone
    ],
)
@pytest.mark.parametrize("script", ["simplified", "traditional", "traditional-hk"])
def test_other_languages_pass_untouched(language, text, script):
    segment = Segment(0.0, 1.0, text, language)
    assert convert_segment(segment, script) is segment


def test_words_and_every_other_field_are_kept():
    words = (Word(0.0, 0.5, "头"), Word(0.5, 0.9, "发"), Word(0.9, 1.0, "发现"))  # 发 is 髮 after 头, 發 in 发现
    segment = Segment(0.0, 1.0, "头发发现", "Chinese", (SegmentFlag.RETRIED,), words)
    converted = convert_segment(segment, "traditional")
    expected_words = (Word(0.0, 0.5, "頭"), Word(0.5, 0.9, "髮"), Word(0.9, 1.0, "發現"))
    assert converted == Segment(0.0, 1.0, "頭髮發現", "Chinese", (SegmentFlag.RETRIED,), expected_words)


def test_every_script_choice_has_a_converter():
    assert set(OPENCC_CONFIGS) == set(CHINESE_SCRIPTS) - {"auto"}


def test_unknown_script_is_refused_with_the_choices():
    options = asr.TranscribeOptions(chinese_script="traditional-tw")
    with pytest.raises(asr.OptionsError, match=r"Unknown Chinese script 'traditional-tw'.*traditional-hk"):
        options.validate()


class _MandarinEngine(FakeEngine):
    """Answers every chunk in simplified Chinese. A fake because the tiny random checkpoint writes random
    tokens in a random language, so it cannot be made to write a known Chinese sentence."""

    def transcribe_chunks(self, chunks, **kwargs):
        results = super().transcribe_chunks(chunks, **kwargs)
        return [dataclasses.replace(r, text=SIMPLIFIED, language="Chinese") for r in results]


def test_transcribe_writes_the_chosen_script_and_the_json_records_it():
    options = asr.TranscribeOptions(chinese_script="traditional")
    transcript = asr.transcribe_all(speak(SENTENCES[0]), engine=_MandarinEngine(), options=options)
    assert [s.text for s in transcript.segments] == [TAIWAN]
    document = json.loads(render_json(transcript))
    assert document["info"]["options"]["chinese_script"] == "traditional"
    assert document["segments"][0]["text"] == TAIWAN


def test_cli_flag_reaches_the_json(capsys, tmp_path, tiny_model_dir, encode_speech):
    audio = encode_speech("chinese-script.wav", format="wav", codec="pcm_s16le")
    argv = ["transcribe", str(audio), "--model", str(tiny_model_dir), "--format", "json"]
    assert main([*argv, "--output-dir", str(tmp_path), "--chinese-script", "traditional-hk"]) == 0
    document = json.loads((tmp_path / "chinese-script.json").read_text(encoding="utf-8"))
    assert document["info"]["options"]["chinese_script"] == "traditional-hk"


def test_cli_refuses_an_unknown_script(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["transcribe", "x.wav", "--chinese-script", "hanzi"])
    assert exit_info.value.code == 2
    assert "--chinese-script: invalid choice: 'hanzi'" in capsys.readouterr().err
