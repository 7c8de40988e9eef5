"""Word timestamps with the real forced aligner classes on the tiny checkpoint, and real espeak speech.

The tiny aligner's weights are random, so its times are arbitrary: these tests check that our code gives
exactly what the plain transformers usage gives, and that whatever the aligner says, the words we hand
on keep the text, stay inside their chunk, in order, and make subtitles that follow the rules.
"""

from __future__ import annotations

import itertools
import json
import re
import unicodedata

import numpy as np
import pytest
import torch
from transformers import AutoModelForTokenClassification, AutoProcessor

import asr
from asr import cli
from asr.device import resolve_dtype
from asr.errors import AlignmentError
from asr.results import SegmentFlag
from asr.segment import chunk_waveform, collect_chunks
from asr.vad import get_speech_spans
from asr.words import token_starts
from testbed.speech import SENTENCES, silence, speak, speech_with_pauses

ONE_CHUNK = asr.TranscribeOptions(first_chunk_s=24.0, decode=asr.DecodeOptions(language="English"))


def plain_alignment(folder, waves, texts, languages):
    """The documented transformers usage: prepare inputs, one forward pass, decode the timestamps."""
    processor = AutoProcessor.from_pretrained(folder, local_files_only=True)
    dtype = resolve_dtype("auto", "cpu")  # the aligner's own choice on this CPU
    model = AutoModelForTokenClassification.from_pretrained(folder, local_files_only=True, dtype=dtype)
    inputs, word_lists = processor.prepare_forced_aligner_inputs(audio=waves, transcript=texts, language=languages)
    inputs = inputs.to(model.device, dtype=model.dtype)
    with torch.inference_mode():
        logits = model(**inputs).logits
    return processor.decode_forced_alignment(
        logits, inputs["input_ids"], word_lists, timestamp_token_id=model.config.timestamp_token_id
    )


@pytest.fixture(scope="module")
def spoken():
    """A sentence with a second of silence before it: one chunk that starts about 0.8 s in."""
    return np.concatenate([silence(1.0), speak(SENTENCES[1]), silence(0.5)])


def test_aligner_equals_the_plain_transformers_usage(aligner, tiny_aligner_dir, golden_clip, other_clip):
    texts = [SENTENCES[0], "Please, call Stella!"]
    ours = aligner.align([golden_clip, other_clip], texts, ["English", "English"])
    plain = plain_alignment(tiny_aligner_dir, [golden_clip, other_clip], texts, ["English", "English"])
    assert [[(t.text, t.start_s, t.end_s) for t in row] for row in ours] == [
        [(item["text"], item["start_time"], item["end_time"]) for item in row] for row in plain
    ]
    assert len({t.start_s for row in ours for t in row}) >= 2  # the times differ: the comparison means something


def test_on_a_cpu_each_row_has_a_pass_of_its_own_and_progress_covers_the_batch(aligner, golden_clip, other_clip):
    """One row's activations stay in the CPU's cache (faster than the batch's); the times equal the batch's
    (the test above compares them with one batched pass)."""
    passes: list[int] = []
    handle = aligner._model.register_forward_hook(
        lambda _m, args, kwargs, _out: passes.append(len(kwargs["input_ids"])), with_kwargs=True
    )
    shares: list[float] = []
    try:
        aligner.align([golden_clip, other_clip], [SENTENCES[0], "Please, call Stella!"], ["English"] * 2, shares.append)
    finally:
        handle.remove()
    assert passes == [1, 1]
    assert shares == sorted(shares) and 0.5 in shares and shares[-1] == 1.0  # the first row's end, the batch's


def test_pipeline_places_the_aligned_times_on_the_original_timeline(engine, aligner, tiny_aligner_dir, spoken):
    transcript = asr.transcribe_all(spoken, engine=engine, aligner=aligner, options=ONE_CHUNK)
    (chunk,) = collect_chunks(spoken, get_speech_spans(spoken, ONE_CHUNK.vad), max_chunk_s=24.0)
    wave, timeline = chunk_waveform(spoken, chunk)
    assert len(wave) == chunk.num_samples  # one span: the model heard the chunk as it is
    text = " ".join(s.text for s in transcript.segments)
    (plain,) = plain_alignment(tiny_aligner_dir, [wave], [text], ["English"])
    words = [w for s in transcript.segments for w in s.words]
    assert len(words) == len(plain)
    low, high = timeline.bounds_s
    previous_end = low
    for word, item in zip(words, plain, strict=True):
        assert re.sub(r"[^\w']", "", word.text) == item["text"]
        # The plain times, moved to the chunk's start, kept inside the chunk and after the word before.
        start = min(max(low + item["start_time"], previous_end), high)
        end = min(max(low + item["end_time"], start), high)
        assert word.start_s == pytest.approx(start, abs=1e-6) and word.end_s == pytest.approx(end, abs=1e-6)
        previous_end = end
    assert transcript.info.aligner == str(tiny_aligner_dir)
    assert all(SegmentFlag.APPROXIMATE_TIMES not in s.flags for s in transcript.segments)


def test_alignment_keeps_the_text_and_puts_every_word_inside_its_chunk_in_order(engine, aligner):
    samples, _ = speech_with_pauses(SENTENCES[:3], (1.0, 3.0))
    options = asr.TranscribeOptions(decode=asr.DecodeOptions(language="English"))
    plain = asr.transcribe_all(samples, engine=engine, options=options)
    timed = asr.transcribe_all(samples, engine=engine, options=options, aligner=aligner)
    assert " ".join(s.text for s in timed.segments) == " ".join(s.text for s in plain.segments)
    chunks = collect_chunks(samples, get_speech_spans(samples, options.vad), max_chunk_s=24.0)
    bounds = [(c.start_sample / asr.SAMPLE_RATE, c.end_sample / asr.SAMPLE_RATE) for c in chunks]
    previous_end = 0.0
    for segment in timed.segments:
        assert segment.words and _squeeze(" ".join(w.text for w in segment.words)) == _squeeze(segment.text)
        assert segment.start_s == segment.words[0].start_s and segment.end_s == segment.words[-1].end_s
        for word in segment.words:
            assert previous_end <= word.start_s <= word.end_s
            assert any(low - 1e-6 <= word.start_s and word.end_s <= high + 1e-6 for low, high in bounds)
            previous_end = word.end_s


def test_a_language_the_aligner_does_not_cover_gets_estimated_times(engine, aligner, spoken):
    options = asr.TranscribeOptions(first_chunk_s=24.0, decode=asr.DecodeOptions(language="Arabic"))
    transcript = asr.transcribe_all(spoken, engine=engine, aligner=aligner, options=options)
    assert transcript.segments
    for segment in transcript.segments:
        assert SegmentFlag.APPROXIMATE_TIMES in segment.flags and segment.words


class FailsOnSecondChunk:
    """The real aligner, except that any batch holding the second chunk fails, as a broken chunk would.

    A stand-in because the real aligner cannot be made to fail on one chunk on purpose.
    """

    def __init__(self, aligner):
        self.real, self.name, self.batches = aligner, aligner.name, []
        self.bad_length = -1  # the length of the chunk to fail on: the second chunk's, once it is seen

    def supports(self, language):
        return self.real.supports(language)

    def align(self, waves, texts, languages, progress=None):
        self.batches.append(len(waves))
        if len(self.batches) == 2:  # the batch after the first chunk's: its first chunk is the second
            self.bad_length = len(waves[0])
        if any(len(wave) == self.bad_length for wave in waves):
            raise AlignmentError("Could not align a batch of chunk(s): RuntimeError")
        return self.real.align(waves, texts, languages, progress)


def test_one_chunk_the_aligner_fails_on_falls_back_and_the_run_goes_on(engine, aligner):
    samples, _ = speech_with_pauses(SENTENCES[:3], (3.0, 3.0))
    options = asr.TranscribeOptions(decode=asr.DecodeOptions(language="English", batch_size=2))
    failing = FailsOnSecondChunk(aligner)
    transcript = asr.transcribe_all(samples, engine=engine, options=options, aligner=failing)
    flagged = [SegmentFlag.APPROXIMATE_TIMES in s.flags for s in transcript.segments]
    assert any(flagged) and not all(flagged)
    assert failing.batches == [1, 2, 1, 1]  # first chunk, then the failed pair, then each on its own


def _squeeze(text: str) -> str:
    """The text without whitespace (words of Chinese text have no spaces between them)."""
    return "".join(text.split())


def _columns(line: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in line)


def _cues(subtitles: str, numbered: bool) -> list[tuple[float, float, list[str]]]:
    """(start, end, lines) of each cue of an SRT (numbered) or a WebVTT file without its header."""
    cues = []
    for block in subtitles.strip().split("\n\n"):
        timing, *lines = block.split("\n")[1:] if numbered else block.split("\n")
        start, end = (
            sum(float(part) * 60**i for i, part in enumerate(reversed(t.replace(",", ".").split(":"))))
            for t in timing.split(" --> ")
        )
        cues.append((start, end, lines))
    return cues


def test_cli_word_timestamps_write_subtitles_that_follow_the_rules(tiny_model_dir, tiny_aligner_dir, tmp_path):
    import soundfile

    samples, _ = speech_with_pauses(SENTENCES, (0.4, 1.0, 0.3, 2.5), lead_s=0.5)
    talk = tmp_path / "talk.wav"
    soundfile.write(talk, samples, asr.SAMPLE_RATE)
    code = cli.main(
        [
            "transcribe", str(talk), "--model", str(tiny_model_dir), "--aligner", str(tiny_aligner_dir),
            "--word-timestamps", "--format", "all", "--output-dir", str(tmp_path), "--language", "en",
        ]
    )  # fmt: skip
    assert code == 0
    document = json.loads((tmp_path / "talk.json").read_text())
    words = [w for s in document["segments"] for w in s["words"]]
    assert words and all({"start_s", "end_s", "text"} <= set(w) for w in words)
    assert _squeeze("".join(w["text"] for w in words)) == _squeeze("".join(s["text"] for s in document["segments"]))
    assert document["info"]["aligner"] == str(tiny_aligner_dir)
    for name in ("talk.srt", "talk.vtt"):
        text = (tmp_path / name).read_bytes().decode().removeprefix("WEBVTT\n\n")
        cues = _cues(text, numbered=name.endswith(".srt"))
        assert cues
        for index, (start, end, lines) in enumerate(cues):
            assert 1 <= len(lines) <= 2 and all(_columns(line) <= 42 for line in lines)
            assert 0 < end - start <= 7.0 + 1e-9
            next_start = cues[index + 1][0] if index + 1 < len(cues) else None
            assert end - start >= 0.8 - 1e-9 or (next_start is not None and end == next_start)
            assert next_start is None or end <= next_start
        # Nothing lost or added, and every cue ends where a word ends (never inside one).
        assert _squeeze("".join(line for _, _, lines in cues for line in lines)) == _squeeze(
            "".join(w["text"] for w in words)
        )
        word_ends = set(itertools.accumulate(len(_squeeze(w["text"])) for w in words))
        cue_ends = itertools.accumulate(len(_squeeze("".join(lines))) for _, _, lines in cues)
        assert set(cue_ends) <= word_ends


def test_cli_without_the_aligner_says_so_and_estimates(tiny_model_dir, tmp_path, capsys, monkeypatch):
    import soundfile

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    talk = tmp_path / "talk.wav"
    soundfile.write(talk, np.concatenate([silence(0.5), speak(SENTENCES[0]), silence(0.5)]), asr.SAMPLE_RATE)
    code = cli.main(
        ["transcribe", str(talk), "--model", str(tiny_model_dir), "--word-timestamps", "--format", "json",
         "--output-dir", str(tmp_path)]
    )  # fmt: skip
    assert code == 0
    assert "python -m asr download --model Qwen/Qwen3-ForcedAligner-0.6B-hf" in capsys.readouterr().err
    document = json.loads((tmp_path / "talk.json").read_text())
    assert document["segments"] and all(s["approximate_times"] for s in document["segments"])
    assert document["info"]["aligner"] is None


def test_japanese_and_korean_words_come_from_their_word_splitters(aligner, golden_clip):
    """nagisa and soynlp are installed: both languages are aligned, and their words are found in the text."""
    texts = ["今日は良い天気ですね。", "안녕하세요 여러분, 반갑습니다."]
    assert aligner.supports("Japanese") and aligner.supports("Korean")
    japanese, korean = aligner.align([golden_clip, golden_clip], texts, ["Japanese", "Korean"])
    assert [t.text for t in japanese] == ["今日", "は", "良い", "天気", "です", "ね"]
    assert [t.text for t in korean] == ["안녕하세요", "여러분", "반갑습니다"]
    for text, row in zip(texts, (japanese, korean), strict=True):
        assert token_starts(text, [t.text for t in row]) is not None
