"""Samples for the pipeline: channels averaged, resampled to 16 kHz, collected in RAM or spilled to disk."""

from __future__ import annotations

import logging
import math
import mmap
import threading
import uuid
from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import av
import numpy as np

from ..errors import TranscriptionCancelled

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16_000  # Hz; what Qwen3-ASR's feature extractor expects


# Source rates outside these are a damaged header, not a recording: a WAV that says 1 Hz turns 32 kB into 16000 s
# (a gigabyte of samples at 16 kHz), and FFmpeg's resampler cannot allocate its filters for 2**31 Hz.
MIN_SOURCE_RATE = 1_000
MAX_SOURCE_RATE = 768_000
SPILL_AFTER_S = 10 * 60  # decoded audio longer than this is kept on disk (memory-mapped) when allowed


_RESAMPLE_GROUP_SAMPLES = 1 << 16  # decoded samples batched per resampler call (cf. faster-whisper _group_frames)


def plausible_rate(rate: int) -> bool:
    """Whether a source's sample rate can be a recording's (see `MIN_SOURCE_RATE`)."""
    return MIN_SOURCE_RATE <= rate <= MAX_SOURCE_RATE


def mix(channels: np.ndarray) -> np.ndarray:
    """The average of the channels (rows); the loudest channel alone when the average cancels out.

    A channel with reversed polarity (a miswired microphone, a stereo-widening effect) sounds fine on its
    own, but the average of +x and -x is silence: when the average keeps less than 1/100 of the channels'
    power (-20 dB), which natural recordings never do, the loudest channel is used instead.
    """
    mono = channels.mean(axis=0)
    power = np.mean(np.square(channels, dtype=np.float64), axis=1)
    if power.max() > 1e-8 and np.mean(np.square(mono, dtype=np.float64)) < 0.01 * power.mean():
        return channels[int(np.argmax(power))]
    return mono


def resample_to_16k(blocks: Iterable[tuple[np.ndarray, int]]) -> Iterator[np.ndarray]:
    """Mono float32 samples at 16 kHz from mono float32 blocks at their own rate (FFmpeg's resampler)."""
    resampler: av.AudioResampler | None = None
    rate = 0
    pending: list[np.ndarray] = []
    pending_samples = 0
    position = 0  # samples already given to the resampler at this rate, for contiguous timestamps

    def push(samples: np.ndarray | None) -> list[np.ndarray]:
        nonlocal position
        frame = None
        if samples is not None:
            frame = av.AudioFrame.from_ndarray(samples[np.newaxis, :], format="flt", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = rate, position, Fraction(1, rate)
            position += len(samples)
        assert resampler is not None  # pushed only at a rate that needs resampling
        return [out.to_ndarray().reshape(-1) for out in resampler.resample(frame)]

    for samples, block_rate in blocks:
        if not np.isfinite(samples).all():  # a broken float file: NaN or inf would poison VAD and the model
            bad = ~np.isfinite(samples)
            logger.warning("Replaced %d NaN or infinite sample(s) with silence", int(bad.sum()))
            samples = np.where(bad, np.float32(0), samples)
        if block_rate != rate:  # the first block, or a stream that changes rate part way
            if pending:
                yield from push(np.concatenate(pending))
            if resampler is not None:
                yield from push(None)
            rate, position, pending, pending_samples = block_rate, 0, [], 0
            resampler = (
                None if rate == SAMPLE_RATE else av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
            )
        if resampler is None:
            yield samples
            continue
        pending.append(samples)
        pending_samples += len(samples)
        if pending_samples >= _RESAMPLE_GROUP_SAMPLES:
            yield from push(np.concatenate(pending))
            pending, pending_samples = [], 0
    if resampler is not None:
        if pending:
            yield from push(np.concatenate(pending))
        yield from push(None)  # flush: the resampler holds back the last few samples


def collect(
    blocks: Iterable[np.ndarray],
    max_duration_s: float | None,
    spill_dir: Path | None,
    cancel: threading.Event | None,
) -> np.ndarray | None:
    """All blocks as one float32 array, or None as soon as they pass ``max_duration_s``.

    Past ``SPILL_AFTER_S`` the samples go to a file in ``spill_dir`` and come back memory-mapped, so a
    three-hour recording costs disk pages the OS can drop, not 700 MB of RAM held for the whole run.
    """
    limit = math.inf if max_duration_s is None else max_duration_s * SAMPLE_RATE
    parts: list[np.ndarray] = []
    total = 0
    spill: BinaryIO | None = None
    try:
        for block in blocks:
            if cancel is not None and cancel.is_set():
                raise TranscriptionCancelled("Transcription cancelled while decoding the audio.")
            total += len(block)
            if total > limit:
                return None
            if spill is None and spill_dir is not None and total > SPILL_AFTER_S * SAMPLE_RATE:
                spill = open(spill_dir / f"{uuid.uuid4().hex}.f32", "wb")  # noqa: SIM115 (closed in finally)
                for part in parts:
                    spill.write(part.astype(np.float32, copy=False).tobytes())
                parts = []
            if spill is not None:
                spill.write(block.astype(np.float32, copy=False).tobytes())
            else:
                parts.append(block)
        if spill is not None:
            spill.close()
            with open(spill.name, "rb") as spilled:
                # Copy-on-write: writable for torch, the file untouched. The array keeps the map alive (`.base`).
                mapping = mmap.mmap(spilled.fileno(), 0, access=mmap.ACCESS_COPY)
            return np.frombuffer(mapping, dtype=np.float32)
    finally:
        if spill is not None:
            spill.close()
    if not parts:
        return np.zeros(0, dtype=np.float32)
    return np.concatenate(parts).astype(np.float32, copy=False)


def spill_map(samples: np.ndarray) -> mmap.mmap | None:
    """The memory map that holds samples `collect` spilled to disk (or a slice of them); None for samples in RAM."""
    owner: object = samples.base  # numpy types it as an array or None; a buffer it wraps is neither
    while isinstance(owner, np.ndarray):
        owner = owner.base
    if isinstance(owner, memoryview):  # `np.frombuffer` holds its buffer through a view
        owner = owner.obj
    return owner if isinstance(owner, mmap.mmap) else None


def release_resident_pages(samples: np.ndarray) -> None:
    """Let the OS drop the pages of spilled samples that are in memory; touched again, they are read back from
    the file. Samples held in RAM are left alone.

    The speech scan reads every page, and a mapped page stays resident until the OS needs memory: a 30-minute
    recording kept 110 MB of them in the process's resident set until the run ended. Call it only between
    passes that read the samples; nothing in the pipeline writes to them (a page written in the copy-on-write
    map would go back to the file's contents).
    """
    mapping = spill_map(samples)
    if mapping is not None and hasattr(mmap, "MADV_DONTNEED"):  # Windows has no madvise
        mapping.madvise(mmap.MADV_DONTNEED)
