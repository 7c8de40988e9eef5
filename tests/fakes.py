"""A stand-in engine for orchestration tests (batching, order, flags, jobs), never for the load path."""

from __future__ import annotations

import threading

from asr.errors import DeviceMemoryError
from asr.results import ChunkText


class FakeEngine:
    """Answers each chunk with its own length in samples, so every text names its chunk."""

    name = "fake"
    default_batch_size = 2
    device = "cpu"

    def __init__(
        self,
        loop_first_try: bool = False,
        finished: bool = True,
        gate: threading.Event | None = None,
        free_calls: int = 0,
        max_rows: int | None = None,
        cpu_fallback: bool = False,
    ):
        self.calls: list[dict] = []
        self.loop_first_try = loop_first_try
        self.finished = finished
        self.gate = gate  # when given, calls after the first `free_calls` wait for it: holds a job mid-run
        self.free_calls = free_calls
        self.max_rows = max_rows  # a batch with more chunks raises DeviceMemoryError, like a full GPU
        self.cpu_fallback = cpu_fallback  # whether fall_back_to_cpu succeeds (a GPU engine) or not (already on CPU)
        self.on_cpu = False  # after a fallback, max_rows no longer applies: the CPU has room

    def transcribe_chunks(
        self,
        chunks,
        *,
        language,
        context,
        max_new_tokens,
        repetition_penalty=None,
        stop=None,
        progress=None,
        proposal=(),
    ):
        if self.gate is not None and len(self.calls) >= self.free_calls:
            assert self.gate.wait(10), "the test never opened the gate"
        if self.max_rows is not None and len(chunks) > self.max_rows and not self.on_cpu:
            self.calls.append({"lengths": [len(c) for c in chunks], "out_of_memory": True})
            raise DeviceMemoryError(f"Ran out of cuda memory on a batch of {len(chunks)} chunk(s).")
        self.calls.append(
            {
                "lengths": [len(c) for c in chunks],
                "language": language,
                "context": context,
                "max_new_tokens": list(max_new_tokens),
                "repetition_penalty": repetition_penalty,
            }
        )
        looping = self.loop_first_try and repetition_penalty is None
        return [
            ChunkText(
                text="la " * 30 if looping else f"chunk of {len(c)} samples",
                language=language or "English",
                finished=self.finished,
                num_tokens=5,
            )
            for c in chunks
        ]

    def fall_back_to_cpu(self) -> str | None:
        if not self.cpu_fallback or self.on_cpu:
            return None
        self.on_cpu = True
        return "The cuda ran out of memory even for one chunk, so the model moved to the CPU."
