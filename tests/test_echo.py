"""The context echo guard: echoes are dropped and flagged, normal speech is never touched."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from fakes import FakeEngine

import asr
from asr.guards import is_context_echo, is_repetition_loop
from asr.options import DecodeOptions, TranscribeOptions
from asr.results import SegmentFlag, SourceInfo, Transcript, TranscriptionInfo
from asr.writers import render_json, render_srt
from testbed.speech import SENTENCES, silence, speak, speech_with_pauses

CONTEXT = "Stella Nakamura, Kubernetes, Q3 budget"
CHINESE_CONTEXT = "张伟，阿里巴巴，通义千问"


@pytest.mark.parametrize(
    ("text", "context"),
    [
        ("Stella Nakamura, Kubernetes, Q3 budget.", CONTEXT),
        ("stella nakamura kubernetes", CONTEXT),  # most of it, in any case and punctuation
        ("Kubernetes, Stella Nakamura.", CONTEXT),  # in another order
        ("Ｓｔｅｌｌａ Ｎａｋａｍｕｒａ，Ｋｕｂｅｒｎｅｔｅｓ", CONTEXT),  # fullwidth letters (NFKC)
        ("张伟，阿里巴巴，通义千问。", CHINESE_CONTEXT),
        ("張偉、阿里巴巴、通義千問", CHINESE_CONTEXT),  # the same in Traditional characters
        ("阿里巴巴，通义千问", CHINESE_CONTEXT),
        ("Stella.", "Stella"),  # a one-word context said alone cannot be told apart from an echo
    ],
)
def test_echoes(text, context):
    assert is_context_echo(text, context)


@pytest.mark.parametrize(
    ("text", "context"),
    [
        ("We moved the cluster to Kubernetes last week.", CONTEXT),  # uses one term
        ("Stella Nakamura.", CONTEXT),  # one of three terms
        ("Please send the Q3 budget to Stella Nakamura before Friday; she needs it for Kubernetes.", CONTEXT),
        ("Stella Nakamura, Kubernetes, Q3 budget. " * 2, CONTEXT),  # longer than the context: a loop, not an echo
        ("今天张伟在阿里巴巴讲了通义千问的新版本。", CHINESE_CONTEXT),
        ("阿里巴巴。", CHINESE_CONTEXT),
        ("Hello there.", ""),  # no context: nothing to echo
        ("", CONTEXT),
        ("!!!", "???"),
    ],
)
def test_not_echoes(text, context):
    assert not is_context_echo(text, context)


@pytest.mark.parametrize("sentence", SENTENCES)
def test_real_sentences_are_never_echoes_of_their_own_words(sentence):
    """Normal speech that uses the terms: context made of the sentence's own words, three or four at a time."""
    words = [word.strip(".,") for word in sentence.split()]
    for start in range(len(words) - 3):
        for size in (3, 4):
            context = ", ".join(words[start : start + size])
            assert not is_context_echo(sentence, context), context


class _EchoingEngine(FakeEngine):
    """Writes the context for chunks shorter than 2.5 s (the noise bursts here), else the usual text.

    A fake because the real model cannot be made to echo on purpose: it does so now and then on
    silence, music or noise, and the tiny test checkpoint writes random tokens.
    """

    def transcribe_chunks(self, chunks, **kwargs):
        results = super().transcribe_chunks(chunks, **kwargs)
        return [
            dataclasses.replace(result, text=kwargs["context"]) if len(chunk) < 2.5 * asr.SAMPLE_RATE else result
            for chunk, result in zip(chunks, results, strict=True)
        ]


def test_an_echoing_engine_through_transcribe():
    speech, _ = speech_with_pauses(SENTENCES[:2], (3.0,))
    samples = np.concatenate([speak("Ha!"), silence(3.0), speech])  # a short sound the fake answers with the context
    options = asr.TranscribeOptions(decode=asr.DecodeOptions(context=CONTEXT, batch_size=4))
    transcript = asr.transcribe_all(samples, engine=_EchoingEngine(), options=options)
    first, *rest = transcript.segments
    assert first.text == "" and first.flags == (SegmentFlag.CONTEXT_ECHO,)
    assert len(rest) == 2 and all(
        s.text.startswith("chunk of") and SegmentFlag.CONTEXT_ECHO not in s.flags for s in rest
    )
    assert transcript.text == "\n".join(s.text for s in rest)
    assert render_srt(transcript).startswith("1\n") and CONTEXT not in render_srt(transcript)
    document = json.loads(render_json(transcript))
    assert document["segments"][0]["flags"] == ["context_echo"]
    assert document["info"]["options"]["decode"]["context"] == CONTEXT


def test_a_context_written_as_sentences_is_caught_as_one_echo():
    """The chunk's whole text is checked before it is cut into sentences."""
    context = "Stella Nakamura. Kubernetes. The Q3 budget."
    samples = np.concatenate([speak("Ha!"), silence(3.0), speak(SENTENCES[0])])
    options = asr.TranscribeOptions(decode=asr.DecodeOptions(context=context, batch_size=4))
    transcript = asr.transcribe_all(samples, engine=_EchoingEngine(), options=options)
    first, *rest = transcript.segments
    assert first.text == "" and SegmentFlag.CONTEXT_ECHO in first.flags and not first.words
    assert rest and all("Stella" not in s.text for s in rest)


def test_the_tiny_model_keeps_every_segment(engine, golden_clip, other_clip):
    """The real engine with context: every segment it writes is kept as written."""
    samples = np.concatenate([golden_clip, silence(2.0), other_clip])
    plain = asr.transcribe_all(samples, engine=engine)
    options = asr.TranscribeOptions(decode=asr.DecodeOptions(context=CONTEXT))
    guarded = asr.transcribe_all(samples, engine=engine, options=options)
    assert guarded.segments and all(s.text and SegmentFlag.CONTEXT_ECHO not in s.flags for s in guarded.segments)
    assert len(guarded.segments) == len(plain.segments)


def test_the_guards_thresholds_are_options_recorded_in_the_json():
    """The loop and echo thresholds decide, and the JSON records the ones a run used."""
    lenient = asr.GuardOptions(loop_min_repeats=3, loop_min_chars=9, echo_min_context_covered=0.2)
    assert is_repetition_loop("no no no no ", lenient) and not is_repetition_loop("no no no no ")
    one_term = "We moved to Kubernetes."
    context = "Stella Nakamura, Kubernetes"
    assert not is_context_echo("Kubernetes", context) and is_context_echo("Kubernetes", context, lenient)
    assert not is_context_echo(one_term, context, lenient)  # speech that uses a term is never an echo
    options = TranscribeOptions(decode=DecodeOptions(guards=lenient))
    source = SourceInfo(1.0, 16_000, 1, "pcm_s16le", "wav")
    transcript = Transcript((), TranscriptionInfo(source, 1.0, None, options, model="m"))
    recorded = json.loads(render_json(transcript))["info"]["options"]["decode"]["guards"]
    assert recorded == dataclasses.asdict(lenient) and recorded["loop_min_repeats"] == 3


@pytest.mark.parametrize(
    "guards",
    [
        asr.GuardOptions(loop_min_repeats=0),
        asr.GuardOptions(echo_min_segment_covered=1.5),
        asr.GuardOptions(echo_max_length_ratio=0),
    ],
)
def test_bad_thresholds_are_refused(guards):
    with pytest.raises(asr.OptionsError):
        TranscribeOptions(decode=DecodeOptions(guards=guards)).validate()
