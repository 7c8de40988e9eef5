"""A live session: feed it audio as it is heard, read drafts and finals, finish it into a `Transcript`.

Work per update stays bounded however long the session runs. Each sample is heard once by the VAD
(`vad.SpeechProbabilities`), which cuts the stream into utterances (`endpoint.py`, at most
`max_utterance_s`); the model only ever hears the utterance at hand, never the audio since the start.

- A **draft** is the open utterance decoded again as it grows. Drafts pace themselves: the next starts no
  sooner than `draft_pace` times the last decode's time after it, so a slow machine shows fewer drafts
  instead of falling ever further behind. A draft running when an utterance ends is stopped (before the next
  layer of its prefill, or the next step of its decode), so the final comes first.
- A **final** is the utterance transcribed by `pipeline.transcribe_all`, exactly as a file of that audio
  would be (the same loop and echo guards, word times when an aligner is given). Final text is never
  rewritten; silence makes no utterance, so it makes no text.
- Each decode is given the tokens of the utterance's last draft, which it checks in one pass and decodes only
  after the ones that hold (`_DraftProposed`): the same text in fewer sequential steps when the draft was right.
- A final starts **early**: once a pause has lasted the utterance's end padding, the utterance's audio is all
  heard (`Endpointer.ending`), so its final is decoded while the rest of the pause is awaited, and shown the
  moment the pause ends it. When speech resumes first, that decode is stopped and thrown away.
- With the language on Auto, the first final's language is kept for the rest of the session.
- With speakers on, `finish` runs the speaker pass a file gets (`pipeline.label_speakers`) once over the whole
  recording, so a voice keeps one label from start to end; finals themselves carry no speakers. CAM++ is
  loaded when the session starts, so a missing model is said before anyone dictates.

Decoding runs on the session's own thread and takes the model's turn (`jobs._TURN`) for each decode, so
file transcriptions and live sessions wait for each other (`waiting_for_turn` says so). One session at a
time per loaded model. The audio stays in memory (for the page's player); nothing is written to disk.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, TypeVar

import numpy as np

from ..audio import SAMPLE_RATE
from ..chinese import convert_text
from ..errors import ASRError, TranscriptionCancelled
from ..generation import Aligner, Engine
from ..guards import is_context_echo, is_repetition_loop
from ..jobs import _TURN
from ..options import TranscribeOptions
from ..pipeline import NO_SPEECH_NOTE, label_speakers, transcribe_all
from ..progress import StageProgress
from ..results import ChunkText, Segment, SourceInfo, Transcript, TranscriptionInfo, Word
from ..speakers import SpeakerEmbedder, load_speaker_model
from ..vad import SpeechProbabilities
from .endpoint import Endpointer, Utterance
from .options import LiveEvent, LiveEventType, LiveOptions
from .resample import Resampler

logger = logging.getLogger(__name__)
_T = TypeVar("_T")

_TURN_POLL_S = 0.25  # how often a decode waiting for the model's turn checks whether the session was closed
_sessions_lock = threading.Lock()
_sessions: dict[int, LiveSession] = {}  # id(engine) -> its open live session


class LiveSessionBusy(ASRError):
    """Another live session already uses this model."""


class _Audio:
    """The session's samples in one growing array (doubling), so an utterance is a slice, not a copy."""

    def __init__(self) -> None:
        self._data = np.zeros(SAMPLE_RATE * 60, dtype=np.float32)
        self.length = 0

    def append(self, samples: np.ndarray) -> None:
        if self.length + len(samples) > len(self._data):
            grown = np.zeros(max(2 * len(self._data), self.length + len(samples)), dtype=np.float32)
            grown[: self.length] = self._data[: self.length]
            self._data = grown
        self._data[self.length : self.length + len(samples)] = samples
        self.length += len(samples)

    def slice(self, start: int, end: int) -> np.ndarray:
        return self._data[start:end]


class LiveSession:
    """Feed audio with `feed`, read new events with `poll`, end with `finish` (or `close` to throw it away).

    Raises `LiveSessionBusy` when another live session holds the same engine, `OptionsError` for bad
    options, and `ModelLoadError` when speakers are on and CAM++ cannot be loaded (`speaker_model`: None
    loads it on the engine's device). Errors while decoding (e.g. out of memory) end the session; `feed`
    and `finish` raise them.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        options: LiveOptions | None = None,
        aligner: Aligner | None = None,
        speaker_model: SpeakerEmbedder | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._options = options or LiveOptions()
        self._options.validate()
        self._engine, self._aligner, self._clock = engine, aligner, clock
        if self._options.transcribe.speakers is not None and speaker_model is None:
            speaker_model = load_speaker_model(engine.device)
        self._speaker_model = speaker_model
        with _sessions_lock:
            if id(engine) in _sessions:
                raise LiveSessionBusy("Another live session is using the model; stop it first, then start again.")
            _sessions[id(engine)] = self
        self._started_at = clock()
        self._vad = SpeechProbabilities()
        self._endpointer = Endpointer(self._options.rules(SpeechProbabilities.window_samples))
        self._audio = _Audio()
        self._resamplers: dict[int, Resampler] = {}
        self._language = self._options.transcribe.decode.language
        self._lock = threading.Condition()  # guards everything below; the worker waits on it
        self._finals: deque[Utterance] = deque()  # ended, waiting for their final
        self._events: list[LiveEvent] = []
        self._unread = 0  # index of the first event `poll` has not returned
        self._segments: list[Segment] = []
        self._draft_stop = threading.Event()
        self._early: Utterance | None = None  # the utterance whose final was started early (before it ended)
        self._early_result: tuple[Transcript, float] | None = None  # that final's transcript and start time
        self._early_stop = threading.Event()  # set when speech resumed: the early final is stale
        self._draft_heard = 0  # samples the last draft heard (of the open utterance)
        self._draft_tokens: tuple[int, tuple[int, ...]] = (-1, ())  # the last draft's start sample and tokens
        self._next_draft_at = 0.0
        self._closing = False  # no more audio: finish the finals, then end
        self._cancel = threading.Event()  # throw away: end at once
        self._error: ASRError | None = None
        self.waiting_for_turn = False  # a file transcription has the model; the session's decodes wait
        self._worker = threading.Thread(target=self._work, name="live-decode", daemon=True)
        self._worker.start()

    # -- the caller's side ---------------------------------------------------------------------------

    def feed(self, samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
        """Add what the microphone heard since the last call: mono float samples at `sample_rate`."""
        self._raise_error()
        if sample_rate != SAMPLE_RATE:
            samples = self._resamplers.setdefault(sample_rate, Resampler(sample_rate)).push(samples)
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        probs = self._vad.push(samples)
        with self._lock:
            if self._closing:
                raise RuntimeError("This live session has finished; start a new one.")
            self._audio.append(samples)
            ended = self._endpointer.push(probs)
            ending = self._endpointer.ending
            early = self._early
            if early is not None and early not in ended and early not in self._finals and early != ending:
                self._drop_early()  # speech resumed (or the cap cut elsewhere): that final is stale
            if ending is not None and ending != self._early:
                self._draft_stop.set()  # the early final goes first
            self._end_utterances(ended)
            self._lock.notify_all()  # the open utterance grew: a draft or an early final may be due

    def poll(self) -> list[LiveEvent]:
        """The events since the last call, in order."""
        with self._lock:
            new, self._unread = self._events[self._unread :], len(self._events)
        return new

    @property
    def events(self) -> tuple[LiveEvent, ...]:
        """Every event so far."""
        with self._lock:
            return tuple(self._events)

    @property
    def duration_s(self) -> float:
        return self._audio.length / SAMPLE_RATE

    def samples(self) -> np.ndarray:
        """A copy of everything heard so far (16 kHz mono), e.g. to play the session back."""
        with self._lock:
            return self._audio.slice(0, self._audio.length).copy()

    def wav_bytes(self) -> bytes:
        """Everything heard so far as a 16-bit WAV, in memory (the page's player; nothing touches the disk)."""
        import io

        import soundfile

        buffer = io.BytesIO()
        soundfile.write(buffer, self.samples(), SAMPLE_RATE, subtype="PCM_16", format="WAV")
        return buffer.getvalue()

    def finish(self, timeout_s: float | None = None, stage: StageProgress | None = None) -> Transcript:
        """Stop listening: the utterance still open is finalised too, so no word before Stop is lost.

        With speakers on, the speaker pass then runs over the whole recording; `stage` hears its progress.
        """
        with self._lock:
            last = self._endpointer.flush(self._audio.length)
            if self._early is not None and self._early != last and self._early not in self._finals:
                self._drop_early()  # Stop came before its pause ended, and the last utterance ends elsewhere
            self._end_utterances([last] if last is not None else [])
            self._closing = True
            self._lock.notify_all()
        self._worker.join(timeout_s)
        try:
            self._raise_error()
            transcript = self._transcript()
            if self._speaker_model is None or not transcript.segments:
                return transcript
            model, samples = self._speaker_model, self.samples()
            labelled = self._with_turn(
                lambda: label_speakers(transcript, samples, speaker_model=model, cancel=self._cancel, stage=stage)
            )
            if labelled is None:
                raise TranscriptionCancelled("The live session was closed while finding speakers.")
            return labelled
        finally:
            self._release()

    def close(self) -> None:
        """Throw the session away (the page was closed): stop decoding and free the model at once."""
        with self._lock:
            self._cancel.set()
            self._closing = True
            self._finals.clear()
            self._draft_stop.set()
            self._early_stop.set()
            self._lock.notify_all()
        self._worker.join()
        self._release()

    # -- internals -----------------------------------------------------------------------------------

    def _release(self) -> None:
        with _sessions_lock:
            if _sessions.get(id(self._engine)) is self:
                del _sessions[id(self._engine)]

    def _raise_error(self) -> None:
        if self._error is not None:
            raise self._error

    def _end_utterances(self, ended: list[Utterance]) -> None:
        """Queue finished utterances for their finals (holding `_lock`); a draft running is stopped. An utterance
        whose early final is done is shown at once."""
        for utterance in ended:
            if utterance == self._early and self._early_result is not None and not self._finals:
                self._publish(utterance, *self._early_result)
                self._early, self._early_result = None, None
            else:
                self._finals.append(utterance)
        if ended:
            self._draft_heard = 0
            self._draft_stop.set()
            self._lock.notify_all()

    def _drop_early(self) -> None:
        """Forget the early final (holding `_lock`); one still decoding is stopped."""
        self._early_stop.set()
        self._early, self._early_result = None, None

    def _early_due(self) -> Utterance | None:
        """The utterance whose final can start early now, or None (holding `_lock`)."""
        ending = self._endpointer.ending
        if ending is None or ending == self._early or self._closing:
            return None
        return ending

    def _draft_due(self) -> tuple[int, int] | None:
        """The stretch of the open utterance to draft now, or None (holding `_lock`)."""
        start = self._endpointer.open_start
        if start is None or self._closing or self._clock() < self._next_draft_at:
            return None
        if self._endpointer.pausing:  # so also while an early final is decoded or kept: it is this pause's
            return None  # a draft begun in a pause would only hold up the final the pause may call for
        end = self._audio.length
        if end - start - self._draft_heard < self._options.min_draft_growth_s * SAMPLE_RATE:
            return None
        return start, end

    def _work(self) -> None:
        """The decode thread: finals first, in order, then a draft when one is due."""
        self._vad.settle_thread()
        while True:
            with self._lock:
                while True:
                    if self._cancel.is_set() or (self._closing and not self._finals):
                        return
                    if self._finals:
                        job = functools.partial(self._finalise, self._finals.popleft())
                        break
                    early = self._early_due()
                    if early is not None:
                        self._early, self._early_result = early, None
                        self._early_stop.clear()
                        job = functools.partial(self._finalise_early, early)
                        break
                    draft = self._draft_due()
                    if draft is not None:
                        self._draft_stop.clear()
                        job = functools.partial(self._draft, *draft)
                        break
                    self._lock.wait(min(0.25, max(0.02, self._next_draft_at - self._clock())))
            try:
                job()
            except ASRError as e:
                if self._cancel.is_set():
                    return  # thrown away while transcribing: nobody waits for the text
                logger.warning("Live decoding failed: %s", e)
                with self._lock:
                    self._error = e
                    self._cancel.set()
                return

    def _with_turn(self, decode: Callable[[], _T]) -> _T | None:
        """Run `decode` holding the model's turn; None when the session was thrown away while waiting."""
        if not _TURN.acquire(blocking=False):
            self.waiting_for_turn = True
            while not _TURN.acquire(timeout=_TURN_POLL_S):
                if self._cancel.is_set():
                    self.waiting_for_turn = False
                    return None
            self.waiting_for_turn = False
        try:
            return decode()
        finally:
            _TURN.release()

    def _draft(self, start: int, end: int) -> None:
        wave = self._audio.slice(start, end)
        decode = self._options.transcribe.decode
        with self._lock:
            draft_start, proposal = self._draft_tokens  # the draft before, of less of the same utterance
        began = self._clock()
        results = self._with_turn(
            lambda: self._engine.transcribe_chunks(
                [wave],
                language=self._language,
                context=decode.context,
                max_new_tokens=[decode.max_new_tokens(len(wave) / SAMPLE_RATE)],
                stop=self._draft_stop,
                proposal=proposal if draft_start == start else (),
            )
        )
        took = self._clock() - began
        with self._lock:
            self._next_draft_at = began + self._options.draft_pace * took
            if results is None or self._draft_stop.is_set() or self._endpointer.open_start != start:
                return  # stopped for a final, or its utterance has ended meanwhile: its text is stale
            self._draft_heard = end - start
            self._draft_tokens = (start, results[0].tokens)  # proposed to the utterance's final, even if not shown
            text = results[0].text
            if not text or is_repetition_loop(text) or is_context_echo(text, decode.context):
                return  # a draft is a preview: one that loops or echoes is left out, the final decides
            text = convert_text(text, self._options.transcribe.chinese_script)
            at_s = self._clock() - self._started_at
            self._events.append(LiveEvent(LiveEventType.DRAFT, at_s, start / SAMPLE_RATE, end / SAMPLE_RATE, text))

    def _finalise(self, utterance: Utterance) -> None:
        with self._lock:
            if utterance == self._early:
                early, self._early, self._early_result = self._early_result, None, None
                if early is not None:  # decoded while its pause was awaited
                    self._publish(utterance, *early)
                    return
        began = self._clock()
        transcript = self._transcribe_utterance(utterance, self._cancel)
        if transcript is not None:
            with self._lock:
                self._publish(utterance, transcript, began)

    def _finalise_early(self, utterance: Utterance) -> None:
        """The final of an utterance whose pause has begun: kept for when the pause ends it, shown if it has."""
        began = self._clock()
        try:
            transcript = self._transcribe_utterance(utterance, self._early_stop)  # `close` sets it too
        except TranscriptionCancelled:
            if self._cancel.is_set():
                raise
            return  # speech resumed: the utterance goes on, and so do its drafts
        with self._lock:
            if transcript is None or utterance != self._early:
                return
            if self._finals and self._finals[0] == utterance:  # the pause ended it meanwhile
                self._finals.popleft()
                self._early = None
                self._publish(utterance, transcript, began)
            else:
                self._early_result = (transcript, began)

    def _transcribe_utterance(self, utterance: Utterance, cancel: threading.Event) -> Transcript | None:
        wave = self._audio.slice(utterance.start_sample, utterance.end_sample)
        with self._lock:
            options = self._final_options()
            draft_start, proposal = self._draft_tokens
        engine = _DraftProposed(self._engine, proposal) if draft_start == utterance.start_sample else self._engine
        return self._with_turn(
            lambda: transcribe_all(wave, engine=engine, options=options, aligner=self._aligner, cancel=cancel)
        )

    def _publish(self, utterance: Utterance, transcript: Transcript, began: float) -> None:
        """Add an utterance's final to the session (holding `_lock`)."""
        offset_s = utterance.start_sample / SAMPLE_RATE
        segments = tuple(_shifted(segment, offset_s) for segment in transcript.segments)
        self._next_draft_at = max(self._next_draft_at, began + self._options.draft_pace * (self._clock() - began))
        if self._language is None:
            self._language = next((s.language for s in segments if s.language), None)
        self._segments.extend(segments)
        text = " ".join(s.text for s in segments if s.text)
        if text:
            at_s = self._clock() - self._started_at
            start_s, end_s = utterance.start_sample / SAMPLE_RATE, utterance.end_sample / SAMPLE_RATE
            self._events.append(LiveEvent(LiveEventType.FINAL, at_s, start_s, end_s, text, segments))

    def _final_options(self) -> TranscribeOptions:
        """The file options for one utterance: one chunk (it is never longer), the session's language, and no
        speakers (`finish` finds them over the whole recording)."""
        options = self._options.transcribe
        return replace(
            options,
            first_chunk_s=self._options.max_utterance_s,
            speakers=None,
            decode=replace(options.decode, language=self._language),
        )

    def final_options(self) -> TranscribeOptions:
        """The options the next final is transcribed with (a test transcribes an utterance's audio the same)."""
        with self._lock:
            return self._final_options()

    def _transcript(self) -> Transcript:
        with self._lock:
            segments = tuple(self._segments)
            duration_s = self._audio.length / SAMPLE_RATE
        info = TranscriptionInfo(
            source=SourceInfo(duration_s, SAMPLE_RATE, 1, "pcm_f32le", "live"),
            duration_s=duration_s,
            language=self._language,
            options=self._options.transcribe,
            model=self._engine.name,
            aligner=getattr(self._aligner, "name", None),
            notes=() if segments else (NO_SPEECH_NOTE,),
        )
        return Transcript(segments=segments, info=info)


class _DraftProposed:
    """The engine, with the last draft of an utterance proposed to its final's one-chunk decode.

    Why: a final on two CPU cores is mostly its sequential decode steps (80-85 ms each, ~19 for 4.5 s of
    speech), and the last draft has usually written most of the same tokens already. The engine checks them
    after the final's prefill and decodes only from the first that does not hold (`QwenEngine.transcribe_chunks`'s
    `proposal`), so the final's text is the one the file path gives, whatever the draft said. A draft is
    proposed the draft before it the same way (`_draft`).
    """

    def __init__(self, engine: Engine, proposal: tuple[int, ...]) -> None:
        self._engine, self._proposal = engine, proposal

    @property
    def name(self) -> str:
        return self._engine.name

    @property
    def default_batch_size(self) -> int:
        return self._engine.default_batch_size

    @property
    def device(self) -> str:
        return self._engine.device

    def transcribe_chunks(self, chunks: Sequence[np.ndarray], **kwargs: Any) -> list[ChunkText]:
        if self._proposal and len(chunks) == 1 and not kwargs.get("repetition_penalty"):
            kwargs["proposal"] = self._proposal
        return self._engine.transcribe_chunks(chunks, **kwargs)

    def fall_back_to_cpu(self) -> str | None:
        return self._engine.fall_back_to_cpu()


def _shifted(segment: Segment, offset_s: float) -> Segment:
    """The segment moved `offset_s` later: from the utterance's timeline to the session's."""
    words = tuple(Word(w.start_s + offset_s, w.end_s + offset_s, w.text) for w in segment.words)
    return replace(segment, start_s=segment.start_s + offset_s, end_s=segment.end_s + offset_s, words=words)
