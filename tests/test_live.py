"""Live sessions (asr/live): real espeak speech fed in 100 ms pieces to the tiny checkpoint, in float32."""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import replace

import numpy as np
import pytest

import asr
from asr.jobs import _TURN
from asr.live import LiveEventType, LiveOptions, LiveSession, LiveSessionBusy
from asr.live.endpoint import Endpointer, EndpointRules, Utterance
from testbed.speech import SENTENCES, silence, speak, speech_with_pauses

PIECE = asr.SAMPLE_RATE // 10  # 100 ms, as a microphone delivers it
ENGLISH = asr.TranscribeOptions(decode=asr.DecodeOptions(language="English"))


@pytest.fixture(scope="module")
def engine32(tiny_model_dir):
    """Float32: an utterance decoded live and decoded as a file must give the same text, bit for bit."""
    return asr.QwenEngine.load(str(tiny_model_dir), device="cpu", dtype="float32")


@pytest.fixture(scope="module")
def conversation():
    """Three sentences with pauses long enough to end each utterance."""
    samples, _ = speech_with_pauses(SENTENCES[:3], (1.0, 1.2))
    return samples


class _SpyEngine:
    """The real engine, with every decode's audio length and language recorded."""

    def __init__(self, engine) -> None:
        self._engine = engine
        self.name, self.default_batch_size, self.device = engine.name, engine.default_batch_size, engine.device
        self.calls: list[tuple[int, str | None]] = []

    def transcribe_chunks(self, chunks, **kwargs):
        self.calls += [(len(chunk), kwargs["language"]) for chunk in chunks]
        return self._engine.transcribe_chunks(chunks, **kwargs)

    def fall_back_to_cpu(self):
        return None


def _feed_all(session: LiveSession, samples: np.ndarray) -> None:
    for start in range(0, len(samples), PIECE):
        session.feed(samples[start : start + PIECE])


def _finals(session: LiveSession):
    return [event for event in session.events if event.type is LiveEventType.FINAL]


def test_each_final_is_the_offline_transcription_of_its_utterance(engine32, conversation):
    session = LiveSession(engine32, options=LiveOptions(transcribe=ENGLISH))
    _feed_all(session, conversation)
    transcript = session.finish()
    finals = _finals(session)
    assert len(finals) == 3  # one per sentence: the pauses ended them
    for final in finals:
        start, end = round(final.audio_start_s * asr.SAMPLE_RATE), round(final.audio_end_s * asr.SAMPLE_RATE)
        offline = asr.transcribe_all(conversation[start:end], engine=engine32, options=session.final_options())
        assert final.text == " ".join(s.text for s in offline.segments)
        assert [s.start_s + final.audio_start_s for s in offline.segments] == pytest.approx(
            [s.start_s for s in final.segments]
        )
    # Finals are never rewritten: the transcript is exactly the finals' segments, in order.
    assert transcript.segments == tuple(s for final in finals for s in final.segments)
    assert transcript.info.duration_s == pytest.approx(len(conversation) / asr.SAMPLE_RATE)


def test_drafts_come_while_speaking_and_only_for_the_open_utterance(engine32, conversation):
    session = LiveSession(engine32, options=LiveOptions(transcribe=ENGLISH))
    for start in range(0, len(conversation), PIECE):
        session.feed(conversation[start : start + PIECE])
        time.sleep(0.01)  # a little like real time, so drafts have their turn
    session.finish()
    drafts = [e for e in session.events if e.type is LiveEventType.DRAFT]
    assert drafts
    finals = _finals(session)
    for draft in drafts:  # a draft never reaches into an utterance that already has its final
        done_before = [f for f in finals if f.at_s <= draft.at_s]
        assert all(draft.audio_start_s >= f.audio_end_s for f in done_before)


def test_words_cut_off_by_stop_are_in_the_result(engine32):
    whole = np.concatenate([silence(0.5), speak(SENTENCES[1])])
    cut = len(whole) - round(0.8 * asr.SAMPLE_RATE)  # Stop in the middle of the sentence: no pause after it
    session = LiveSession(engine32, options=LiveOptions(transcribe=ENGLISH))
    _feed_all(session, whole[:cut])
    transcript = session.finish()
    (final,) = _finals(session)
    assert final.audio_end_s == pytest.approx(cut / asr.SAMPLE_RATE, abs=1e-9)  # up to the last sample heard
    start = round(final.audio_start_s * asr.SAMPLE_RATE)
    offline = asr.transcribe_all(whole[start:cut], engine=engine32, options=session.final_options())
    assert transcript.text == offline.text != ""


class _ProposalSpy(_SpyEngine):
    """The spy, with each decode's proposal (what a final is given) and the tokens it wrote recorded."""

    def __init__(self, engine) -> None:
        super().__init__(engine)
        self.decodes: list[tuple[tuple[int, ...], tuple[int, ...]]] = []

    def transcribe_chunks(self, chunks, **kwargs):
        results = super().transcribe_chunks(chunks, **kwargs)
        self.decodes.append((tuple(kwargs.get("proposal", ())), results[0].tokens))
        return results


def test_a_final_is_proposed_its_last_drafts_tokens_and_gives_the_offline_text(engine32):
    """The last draft's tokens go to the utterance's final (and each draft's to the next draft), which checks them
    after its prefill (asr/decode.py's `proposal`); the final's text is still the file transcription's of the
    same audio."""
    spy = _ProposalSpy(engine32)
    sentence = np.concatenate([silence(0.5), speak(SENTENCES[0]), silence(1.0)])
    said = round(0.5 * asr.SAMPLE_RATE) + 2 * len(speak(SENTENCES[0])) // 3 // PIECE * PIECE
    session = LiveSession(spy, options=LiveOptions(transcribe=ENGLISH))
    _feed_all(session, sentence[:said])  # two thirds of the sentence: a draft of it runs, and no pause stops it
    _wait_for(lambda: session.events != ())
    (draft,) = session.events
    assert draft.type is LiveEventType.DRAFT
    ((draft_proposal, draft_tokens),) = spy.decodes  # with no more audio, no other draft is due
    assert draft_proposal == () and draft_tokens  # more drafts follow as the rest of the sentence comes
    _feed_all(session, sentence[said:])
    transcript = session.finish()
    assert spy.decodes[-1][0]  # the final's decode was given a draft's tokens
    for index, (proposal, _) in enumerate(spy.decodes[1:], start=1):  # a draft's: a decode of the same utterance
        assert proposal == () or proposal in [tokens for _, tokens in spy.decodes[:index]]
    (final,) = _finals(session)
    start, end = round(final.audio_start_s * asr.SAMPLE_RATE), round(final.audio_end_s * asr.SAMPLE_RATE)
    assert start / asr.SAMPLE_RATE == draft.audio_start_s and end > said
    offline = asr.transcribe_all(sentence[start:end], engine=engine32, options=session.final_options())
    assert transcript.text == offline.text != ""


def _wait_for(condition, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def _feed_until_a_pause_is_past_its_padding(session: LiveSession, samples: np.ndarray) -> int:
    """Feed 100 ms pieces until the pause under way has lasted the end padding; returns the samples fed."""
    for start in range(0, len(samples), PIECE):
        session.feed(samples[start : start + PIECE])
        if session._endpointer.ending is not None:
            return start + PIECE
    raise AssertionError("no pause past its padding")


def test_a_final_is_decoded_while_its_pause_is_awaited_and_shown_when_the_pause_ends_it(engine32):
    """Past the pause's 0.2 s padding, before the 0.5 s that end an utterance, the final is decoded; the piece that
    completes the pause shows it at once, with no second decode of the utterance."""
    spy = _SpyEngine(engine32)
    sentence = np.concatenate([silence(0.5), speak(SENTENCES[0]), silence(1.0)])
    session = LiveSession(spy, options=LiveOptions(transcribe=ENGLISH, min_draft_growth_s=100.0))  # no drafts
    fed = _feed_until_a_pause_is_past_its_padding(session, sentence)
    _wait_for(lambda: session._early_result is not None)
    assert _finals(session) == [] and len(spy.calls) == 1  # the pause has not ended the utterance yet
    while not _finals(session):
        session.feed(sentence[fed : fed + PIECE])  # shown by the feed that ends the pause: no decode in between
        fed += PIECE
    transcript = session.finish()
    (final,) = _finals(session)
    start, end = round(final.audio_start_s * asr.SAMPLE_RATE), round(final.audio_end_s * asr.SAMPLE_RATE)
    assert len(spy.calls) == 1
    offline = asr.transcribe_all(sentence[start:end], engine=engine32, options=session.final_options())
    assert final.text == transcript.text == offline.text != ""


def test_an_early_final_is_thrown_away_when_speech_resumes(engine32):
    """Two sentences with the espeak files' own silence between them (about 0.4 s, less than ends an utterance):
    the early final started in that pause is stopped or dropped, and the one final covers both sentences, as a
    file of that audio would be transcribed."""
    spy = _SpyEngine(engine32)
    both = np.concatenate([silence(0.5), speak(SENTENCES[0]), speak(SENTENCES[1]), silence(1.0)])
    session = LiveSession(spy, options=LiveOptions(transcribe=ENGLISH, min_draft_growth_s=100.0))
    fed = _feed_until_a_pause_is_past_its_padding(session, both)
    _wait_for(lambda: len(spy.calls) == 1)  # the early final has started
    _feed_all(session, both[fed:])
    session.finish()
    (final,) = _finals(session)
    start, end = round(final.audio_start_s * asr.SAMPLE_RATE), round(final.audio_end_s * asr.SAMPLE_RATE)
    assert end > fed  # the utterance went on after the short pause
    offline = asr.transcribe_all(both[start:end], engine=engine32, options=session.final_options())
    assert final.text == offline.text != ""
    assert len(spy.calls) >= 2 and spy.calls[0][0] < spy.calls[-1][0]  # the final heard more than the early one


class _GatedEngine(_SpyEngine):
    """The spy, with each decode held until `gate` is set: Stop pressed while a final is being decoded."""

    def __init__(self, engine) -> None:
        super().__init__(engine)
        self.gate = threading.Event()

    def transcribe_chunks(self, chunks, **kwargs):
        self.calls += [(len(chunk), kwargs["language"]) for chunk in chunks]
        self.gate.wait()
        return self._engine.transcribe_chunks(chunks, **kwargs)


def test_stop_while_an_ended_utterances_early_final_decodes_keeps_that_decode(engine32):
    """The pause has ended the utterance while its early final is still decoding, and then Stop comes: that decode is
    the utterance's final (Stop threw it away and decoded the utterance again, a whole decode more to wait)."""
    spy = _GatedEngine(engine32)
    sentence = np.concatenate([silence(0.5), speak(SENTENCES[0]), silence(1.0)])
    session = LiveSession(spy, options=LiveOptions(transcribe=ENGLISH, min_draft_growth_s=100.0))  # no drafts
    fed = _feed_until_a_pause_is_past_its_padding(session, sentence)
    _wait_for(lambda: len(spy.calls) == 1)  # the early final has started, and waits at the gate
    _feed_all(session, sentence[fed:])  # the pause ends the utterance meanwhile
    threading.Timer(0.3, spy.gate.set).start()
    transcript = session.finish()
    (final,) = _finals(session)
    assert len(spy.calls) == 1
    start, end = round(final.audio_start_s * asr.SAMPLE_RATE), round(final.audio_end_s * asr.SAMPLE_RATE)
    offline = asr.transcribe_all(sentence[start:end], engine=engine32, options=session.final_options())
    assert transcript.text == offline.text != ""


def test_a_minute_of_silence_gives_no_text(engine32):
    spy = _SpyEngine(engine32)
    rng = np.random.default_rng(0)
    quiet = np.concatenate([silence(30.0), (rng.standard_normal(30 * asr.SAMPLE_RATE) * 1e-3).astype(np.float32)])
    session = LiveSession(spy, options=LiveOptions(transcribe=ENGLISH))
    _feed_all(session, quiet)
    transcript = session.finish()
    assert session.events == () and transcript.segments == () and spy.calls == []
    assert transcript.info.notes == (asr.NO_SPEECH_NOTE,)


def test_a_session_longer_than_the_cap_keeps_each_update_bounded(engine32):
    """40 s of speech without a pause long enough to end it: utterances are cut at the cap."""
    sentences = [speak(SENTENCES[i % len(SENTENCES)]) for i in range(9)]
    speech = np.concatenate([np.concatenate([s, silence(0.15)]) for s in sentences])
    spy = _SpyEngine(engine32)
    options = LiveOptions(transcribe=ENGLISH, max_utterance_s=8.0)
    session = LiveSession(spy, options=options)
    feed_s = []
    for start in range(0, len(speech), PIECE):
        began = time.perf_counter()
        session.feed(speech[start : start + PIECE])
        feed_s.append(time.perf_counter() - began)
        time.sleep(0.005)
    session.finish()
    cap = options.max_utterance_s * asr.SAMPLE_RATE
    assert len(speech) > 4 * cap
    assert spy.calls and max(length for length, _ in spy.calls) <= cap  # no decode hears more than the cap
    finals = _finals(session)
    assert len(finals) >= 4
    # Utterances never overlap (nothing is heard twice by finals), and a cut at the cap loses nothing.
    gaps = [after.audio_start_s - before.audio_end_s for before, after in itertools.pairwise(finals)]
    assert min(gaps) >= 0 and gaps.count(0.0) >= 2
    assert sum(f.audio_end_s - f.audio_start_s for f in finals) <= len(speech) / asr.SAMPLE_RATE
    # Feeding costs the same at the end as at the start (VAD hears each piece once).
    first, last = np.median(feed_s[:50]), np.median(feed_s[-50:])
    assert last < 3 * first + 0.002


class _GermanDetectingEngine(_SpyEngine):
    """The tiny random model names no language in its output, so this one says German when asked to detect
    (the only stand-in here: a real model's detection cannot run on random weights)."""

    def transcribe_chunks(self, chunks, **kwargs):
        results = super().transcribe_chunks(chunks, **kwargs)
        return [replace(r, language=kwargs["language"] or "German") for r in results]


def test_auto_language_is_fixed_by_the_first_final(engine32, conversation):
    spy = _GermanDetectingEngine(engine32)
    session = LiveSession(spy, options=LiveOptions())
    _feed_all(session, conversation)
    transcript = session.finish()
    assert len(_finals(session)) == 3
    assert spy.calls[0][1] is None  # detected at first,
    assert spy.calls[-1][1] == "German"  # then the last final is decoded in the first final's language
    assert transcript.info.language == "German"


def test_one_live_session_per_model_and_file_jobs_take_turns(engine32, golden_clip):
    session = LiveSession(engine32, options=LiveOptions(transcribe=ENGLISH))
    with pytest.raises(LiveSessionBusy, match="Another live session"):
        LiveSession(engine32)
    with _TURN:  # a file transcription holds the model
        _feed_all(session, np.concatenate([silence(0.3), golden_clip, silence(1.0)]))
        deadline = time.monotonic() + 10
        while not session.waiting_for_turn and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (session.waiting_for_turn, _finals(session)) == (True, [])
    transcript = session.finish()
    assert transcript.segments and not session.waiting_for_turn
    LiveSession(engine32).close()  # the model is free again


def test_closing_a_session_frees_the_model_at_once(engine32, conversation):
    session = LiveSession(engine32, options=LiveOptions(transcribe=ENGLISH))
    _feed_all(session, conversation)
    began = time.monotonic()
    session.close()
    assert time.monotonic() - began < 5
    assert _TURN.acquire(timeout=1)
    _TURN.release()
    LiveSession(engine32).close()


def test_audio_at_the_browsers_rate_is_resampled(engine32, golden_clip):
    import av

    resampler = av.AudioResampler(format="flt", layout="mono", rate=48_000)
    frame = av.AudioFrame.from_ndarray(golden_clip.reshape(1, -1), format="flt", layout="mono")
    frame.sample_rate = asr.SAMPLE_RATE
    at_48k = np.concatenate(
        [f.to_ndarray().reshape(-1) for f in [*resampler.resample(frame), *resampler.resample(None)]]
    )
    session = LiveSession(engine32, options=LiveOptions(transcribe=ENGLISH))
    for start in range(0, len(at_48k), 4800):
        session.feed(at_48k[start : start + 4800], sample_rate=48_000)
    transcript = session.finish()
    assert abs(session.duration_s - len(golden_clip) / asr.SAMPLE_RATE) < 0.05
    assert transcript.text


# -- endpointing rules, on made-up probabilities --------------------------------------------------------

RULES = EndpointRules(
    window=512, threshold=0.5, end_silence=16 * 512, pad=6 * 512, min_speech=8 * 512, max_utterance=100 * 512
)


def test_a_pause_ends_an_utterance_padded_on_both_sides():
    endpointer = Endpointer(RULES)
    probs = np.array([0.0] * 20 + [0.9] * 30 + [0.0] * 20)
    (utterance,) = endpointer.push(probs)
    assert (utterance.start_sample, utterance.end_sample) == ((20 - 6) * 512, (50 + 6) * 512)
    assert endpointer.flush(70 * 512) is None


def test_a_pause_past_its_padding_tells_which_utterance_it_will_end():
    endpointer = Endpointer(RULES)
    endings = []
    for probs in ([0.0] * 20 + [0.9] * 30 + [0.0] * 5, [0.0], [0.0] * 10, [0.9] * 30 + [0.0] * 8, [0.9]):
        ended = endpointer.push(np.array(probs))
        endings.append((ended, endpointer.ending))
    expected = Utterance((20 - 6) * 512, (50 + 6) * 512)
    assert endings[0] == ([], None)  # 5 windows of pause: its padding (6) is not all heard yet
    assert endings[1] == ([], expected)
    assert endings[2] == ([expected], None)  # the pause ended it, as told
    assert endings[3][1] is not None
    assert endings[4] == ([], None)  # speech resumed: the pause ends nothing


def test_a_click_is_no_utterance():
    endpointer = Endpointer(RULES)
    assert endpointer.push(np.array([0.0] * 10 + [0.9] * 3 + [0.0] * 30)) == []


def test_the_cap_cuts_at_the_quietest_window_and_the_rest_goes_on():
    endpointer = Endpointer(RULES)
    probs = np.full(130, 0.9)
    probs[70] = 0.55  # the least speech-like window of the first utterance's second half
    (first,) = endpointer.push(probs)
    assert (first.start_sample, first.end_sample) == (0, 71 * 512)
    last = endpointer.flush(130 * 512)
    assert last is not None and last.start_sample == first.end_sample and last.end_sample == 130 * 512
