"""A scripted stand-in for the speech model, used only to take the README's screenshots (`testbed.screenshots`).

The tiny random checkpoint that the tests use writes mojibake, and the real model cannot be downloaded here, so
the screenshots would show nonsense as the transcript. `ScriptedEngine` wraps the real engine on the tiny
checkpoint (it runs, so progress and timings are real) and replaces each chunk's text with the lines of the
known script that the espeak-ng speech says (`script`: the sentences of `testbed.speech`, and the lines of the
two-voice conversation `CONVERSATION`): a chunk gets, in order, the lines whose loudness envelopes match its own.

`install()` patches the page's loaders in this process only: the repo ids the page offers load the tiny
checkpoints named by `TINY_MODEL_ENV` and `TINY_ALIGNER_ENV` (when set), and keep the repo id as their name;
the aligner's word times are spread over the speech (`ScriptedAligner`), as its random weights time words
anywhere. The page names the default hub as a user sees it (https://huggingface.co), while downloads go where
HF_ENDPOINT says: the screenshots' local mirror.
"""

from __future__ import annotations

import functools
import os
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

import asr
from asr.audio import SAMPLE_RATE
from asr.generation import EngineProgress
from asr.results import AlignedToken, ChunkText
from testbed.conversations import conversation
from testbed.speech import SENTENCES, speak

TINY_MODEL_ENV = "SCRIPTED_TINY_MODEL"  # folder of the tiny Qwen3-ASR checkpoint the stand-in runs
TINY_ALIGNER_ENV = "SCRIPTED_TINY_ALIGNER"  # folder of the tiny forced aligner
LANGUAGE = "English"  # the language of the script
CONVERSATION = "short_two"  # `testbed.conversations`' two-speaker file, whose lines the script holds too
HUB = "https://huggingface.co"  # the default hub, as the page names it for a user
FRAME = SAMPLE_RATE // 100  # 10 ms
QUIET = 0.01  # RMS below this is a pause between words or sentences
TAIL_FRAMES = 10  # a sentence heard may end a frame or so later than its envelope (frames fall elsewhere)
MIN_SPEECH_FRAMES = 20  # less loud audio than 0.2 s left in a chunk is no further sentence


@functools.cache
def script() -> tuple[tuple[str, np.ndarray], ...]:
    """Each line of the script with its loudness envelope as espeak-ng says it (without its edges' silence): the
    sentences in espeak-ng's default voice, and the conversation's lines in their own voices."""
    said = [(sentence, speak(sentence)) for sentence in SENTENCES]
    said += [(line.text, speak(line.text, line.voice)) for line in conversation(CONVERSATION).lines]
    return tuple((text, _trimmed(envelope(samples))) for text, samples in said)


def envelope(samples: np.ndarray) -> np.ndarray:
    """RMS loudness per 10 ms frame."""
    frames = len(samples) // FRAME
    return np.sqrt(np.mean(samples[: frames * FRAME].reshape(frames, FRAME) ** 2, axis=1))


def _trimmed(levels: np.ndarray) -> np.ndarray:
    loud = np.flatnonzero(levels > QUIET)
    return levels[loud[0] : loud[-1] + 1] if len(loud) else levels[:0]


def _likeness(sentence: np.ndarray, heard: np.ndarray) -> float:
    """How alike a sentence's envelope and the start of what is heard are: their correlation over the sentence's
    length (the heard audio padded with silence if it ends sooner)."""
    start = heard[: len(sentence)]
    start = np.pad(start, (0, len(sentence) - len(start)))
    return float(np.corrcoef(sentence, start)[0, 1]) if start.any() else -1.0


def script_for(chunk: np.ndarray) -> str:
    """The lines of the script that `chunk` says, in order: each is the one whose envelope is most like the
    chunk's from the next onset of speech on (the chunks are cut from espeak-ng speech of these lines)."""
    levels, lines = envelope(chunk), script()
    said, position = [], 0
    while True:
        loud = np.flatnonzero(levels[position:] > QUIET)
        if len(loud) < MIN_SPEECH_FRAMES:
            break
        onset = position + int(loud[0])
        text, line = max(lines, key=lambda candidate: _likeness(candidate[1], levels[onset:]))
        said.append(text)
        position = onset + len(line) + TAIL_FRAMES
    return " ".join(said) or SENTENCES[0]


class ScriptedEngine:
    """The real engine on the tiny checkpoint, whose texts come from the known script (see the module's note)."""

    def __init__(self, engine: asr.QwenEngine) -> None:
        self._engine = engine

    def __getattr__(self, name: str) -> Any:  # info, name, device, memory_summary, ...: the real engine's
        return getattr(self._engine, name)

    def transcribe_chunks(
        self,
        chunks: Sequence[np.ndarray],
        *,
        language: str | None,
        context: str,
        max_new_tokens: Sequence[int],
        repetition_penalty: float | None = None,
        stop: threading.Event | None = None,
        progress: EngineProgress | None = None,
    ) -> list[ChunkText]:
        made = self._engine.transcribe_chunks(
            chunks,
            language=language,
            context=context,
            max_new_tokens=max_new_tokens,
            repetition_penalty=repetition_penalty,
            stop=stop,
            progress=progress,
        )
        texts = [script_for(chunk) for chunk in chunks]
        return [
            ChunkText(text=text, language=LANGUAGE, finished=True, num_tokens=max(chunk.num_tokens, len(text.split())))
            for chunk, text in zip(made, texts, strict=True)
        ]


class ScriptedAligner:
    """The real aligner on the tiny checkpoint (loaded, so the page's aligner steps are real), whose word times
    are spread over the speech of each clip by the words' lengths: random weights would time words anywhere."""

    def __init__(self, aligner: asr.QwenAligner) -> None:
        self._aligner = aligner

    def __getattr__(self, name: str) -> Any:  # name, supports, ...: the real aligner's
        return getattr(self._aligner, name)

    def align(
        self,
        waves: Sequence[np.ndarray],
        texts: Sequence[str],
        languages: Sequence[str],
        progress: Callable[[float], None] | None = None,  # the words are spread at once: nothing to tell
    ) -> list[list[AlignedToken]]:
        return [_spread(re.findall(r"\w+", text), envelope(wave)) for wave, text in zip(waves, texts, strict=True)]


def _spread(words: list[str], levels: np.ndarray) -> list[AlignedToken]:
    """Words timed one after another over the loud span of a clip, each as long as its share of the letters."""
    loud = np.flatnonzero(levels > QUIET)
    start_s, end_s = (loud[0] / 100, (loud[-1] + 1) / 100) if len(loud) else (0.0, len(levels) / 100)
    letters = np.cumsum([0, *(len(word) for word in words)]) / max(1, sum(len(word) for word in words))
    times = start_s + letters * (end_s - start_s)
    return [AlignedToken(word, float(times[i]), float(times[i + 1])) for i, word in enumerate(words)]


def install() -> None:
    """Make the page's loaders load the tiny checkpoints under the repo ids, the engine scripted, and name the
    default hub as a user sees it (this process only)."""
    env = {asr.DEFAULT_MODEL: TINY_MODEL_ENV, asr.DEFAULT_ALIGNER: TINY_ALIGNER_ENV}
    folders = {repo: os.environ[name] for repo, name in env.items() if name in os.environ}
    load_engine, load_aligner = asr.QwenEngine.load, asr.QwenAligner.load

    def scripted_engine(model: str, **options: Any) -> ScriptedEngine:
        engine = load_engine(folders.get(model, model), **options)
        engine.info = replace(engine.info, name=model, folder=model)  # the repo id, as a user's download shows it
        engine.name = model
        return ScriptedEngine(engine)

    def scripted_aligner(model: str = asr.DEFAULT_ALIGNER, **options: Any) -> ScriptedAligner:
        aligner = load_aligner(folders.get(model, model), **options)
        aligner.name = model
        return ScriptedAligner(aligner)

    setattr(asr.QwenEngine, "load", staticmethod(scripted_engine))  # noqa: B010 (a method patched for this process)
    setattr(asr.QwenAligner, "load", staticmethod(scripted_aligner))  # noqa: B010
    setattr(asr, "default_endpoint", lambda: HUB)  # noqa: B010 (the page's label; asr.hub still reads HF_ENDPOINT)
