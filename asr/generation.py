"""What the pipeline asks of the models: the `Engine` and `Aligner` it needs, one generation request and its
out-of-memory halving, and alignment that falls back chunk by chunk.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np

from .errors import AlignmentError, DeviceMemoryError
from .progress import EngineProgress, ShareProgress
from .results import AlignedToken, ChunkText

logger = logging.getLogger(__name__)

NoticeCallback = Callable[[str], None]  # a sentence for the user


class Engine(Protocol):
    """What the pipeline needs from a speech model: `engine.QwenEngine`, or a fake in orchestration tests."""

    @property
    def name(self) -> str: ...

    @property
    def default_batch_size(self) -> int: ...

    @property
    def device(self) -> str:
        """Where the model runs ("cpu", "cuda:0", "mps"); the speaker model runs there too."""
        ...

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
        proposal: Sequence[int] = (),
    ) -> list[ChunkText]: ...

    def fall_back_to_cpu(self) -> str | None: ...


class Aligner(Protocol):
    """What the pipeline needs from a forced aligner: `aligner.QwenAligner`, or a fake in tests."""

    @property
    def name(self) -> str: ...

    def supports(self, language: str | None) -> bool: ...

    def align(
        self,
        waves: Sequence[np.ndarray],
        texts: Sequence[str],
        languages: Sequence[str],
        progress: ShareProgress | None = None,
    ) -> list[list[AlignedToken]]:
        """Word times for each text in its audio; `progress` hears of the pass's share done (its layers)."""
        ...


@dataclass(frozen=True)
class GenerationRequest:
    """One call to the engine: chunks' audio, each with its token budget, and the settings they share."""

    waves: list[np.ndarray]
    budgets: list[int]
    language: str | None
    context: str
    stop: threading.Event | None
    progress: EngineProgress | None = None  # told of the engine's prefill and steps (`asr.progress`)

    def part(self, start: int, stop: int | None = None) -> GenerationRequest:
        """The same request for chunks [start, stop) only."""
        return replace(self, waves=self.waves[start:stop], budgets=self.budgets[start:stop])

    def run(self, engine: Engine, repetition_penalty: float | None = None) -> list[ChunkText]:
        return engine.transcribe_chunks(
            self.waves,
            language=self.language,
            context=self.context,
            max_new_tokens=self.budgets,
            repetition_penalty=repetition_penalty,
            stop=self.stop,
            progress=self.progress,
        )


def generate_fitting(engine: Engine, request: GenerationRequest, notice: NoticeCallback | None) -> list[ChunkText]:
    """Generate a batch; when the device runs out of memory, split it in halves and try again.

    When even a single chunk does not fit, the engine moves to the CPU (the user is told) and the
    run goes on there; only an engine already on the CPU gives up, with a message saying what to try.
    The retries run after the `except` block has ended: while it runs, the exception's traceback holds
    the failed batch's tensors, and retrying inside it would try to fit the halves next to them.
    """
    try:
        return request.run(engine)
    except DeviceMemoryError as error:
        message = str(error)  # keep only the words: the error itself would keep the batch alive
    if len(request.waves) == 1:
        moved = engine.fall_back_to_cpu()
        if moved is None:
            raise DeviceMemoryError(message)
        if notice is not None:
            notice(moved)
        return request.run(engine)
    half = len(request.waves) // 2
    logger.warning("Out of memory on a batch of %d chunks; retrying in halves", len(request.waves))
    return generate_fitting(engine, request.part(0, half), notice) + generate_fitting(
        engine, request.part(half), notice
    )


def align(
    aligner: Aligner | None,
    waves: list[np.ndarray],
    texts: list[ChunkText],
    progress: ShareProgress | None = None,
) -> list[list[AlignedToken] | None]:
    """Aligner tokens for each chunk it can time (None for the others, which get estimated times).

    A batch the aligner fails on is tried chunk by chunk, so one bad chunk costs only its own word times.
    With an aligner, `progress` hears 0 first, the share of the chunks timed as the aligner goes (its tries
    chunk by chunk count as more work; the share never goes back), and 1 at the end.
    """
    aligned: list[list[AlignedToken] | None] = [None] * len(texts)
    if aligner is None:
        return aligned
    languages = {  # the chunks it can time, with their languages
        i: text.language
        for i, text in enumerate(texts)
        if text.text and text.language is not None and aligner.supports(text.language)
    }
    groups = [list(languages)] if languages else []
    work, done, reported = len(languages), 0, 0.0

    def report(rows: int, share: float) -> None:
        nonlocal reported
        now = (done + share * rows) / work
        if progress is not None and now > reported:
            reported = now
            progress(now)

    if progress is not None:
        progress(0.0)
    while groups:
        group = groups.pop()
        try:
            rows = aligner.align(
                [waves[i] for i in group],
                [texts[i].text for i in group],
                [languages[i] for i in group],
                None if progress is None else functools.partial(report, len(group)),
            )
        except AlignmentError as e:
            logger.warning("%s", e)
            if len(group) > 1:
                groups += [[i] for i in group]
                work += len(group)
            done += len(group)
            continue
        for i, row in zip(group, rows, strict=True):
            aligned[i] = row
        done += len(group)
    if progress is not None and reported < 1.0:
        progress(1.0)
    return aligned
