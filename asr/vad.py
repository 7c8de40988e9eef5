"""Speech spans over a waveform, found by Silero VAD.

The model ships inside the ``silero-vad`` wheel (a TorchScript file of about 2 MB), so nothing is
downloaded. It is loaded on first use, once per process, and kept; ``import asr.vad`` imports neither
torch nor silero_vad. The model carries recurrent state from one 32 ms frame to the next and
``get_speech_timestamps`` resets it at the start of every call, so two calls must never interleave:
one lock guards both loading and every call.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from .audio import SAMPLE_RATE
from .errors import ModelLoadError, TranscriptionCancelled
from .options import VadOptions
from .progress import ShareProgress
from .results import SpeechSpan

logger = logging.getLogger(__name__)

_LOCK = threading.Lock()  # guards _vad and serialises every use of the (stateful) model
_vad: tuple[Any, Callable[..., list[dict[str, int]]]] | None = None  # (model, get_speech_timestamps_from_probs)
_WINDOW = 512  # samples per Silero window at 16 kHz (32 ms)
_STREAM_WINDOWS = 156  # 5 s of audio per parallel stream
_WARMUP_WINDOWS = 32  # about 1 s of the preceding audio that each stream hears before its own windows
# A step over 361 streams (30 min) takes ~8.5 ms: cancel is seen, and progress told, within a tenth of a second.
_CANCEL_CHECK_STEPS = 8


def get_speech_spans(
    samples: np.ndarray,
    options: VadOptions,
    *,
    cancel: threading.Event | None = None,
    progress: ShareProgress | None = None,
) -> list[SpeechSpan]:
    """Find the stretches of speech in a 16 kHz mono waveform.

    Args:
        samples: mono float samples at `audio.SAMPLE_RATE`, one dimension.
        options: the VAD settings (threshold, minimum speech and silence, padding).
        cancel: when set from another thread, the scan stops within a fraction of a second.
        progress: told the share of the scan done, about ten times a second while it runs, and 1 at its end.

    Returns:
        Spans in time order, not overlapping, each inside ``[0, len(samples)]`` and non-empty;
        ``[]`` for empty or silent audio.

    Raises:
        ValueError: when `samples` is not one-dimensional (a programming error, not user input).
        ModelLoadError: when the Silero VAD model cannot be loaded.
        TranscriptionCancelled: when `cancel` was set.
    """
    samples = np.asarray(samples)
    if samples.ndim != 1:
        raise ValueError(f"VAD needs mono samples in one dimension, got shape {samples.shape}.")
    num_samples = len(samples)
    if num_samples == 0:
        if progress is not None:
            progress(1.0)
        return []
    samples = np.ascontiguousarray(samples, dtype=np.float32)

    import torch  # only here, so that importing this module stays light

    with _LOCK:
        model, timestamps_from_probs = _load_locked()
        with torch.inference_mode(), _one_torch_thread(torch):
            probs = _speech_probs(model, torch.from_numpy(samples), cancel, progress)
        timestamps = timestamps_from_probs(
            probs,
            sampling_rate=SAMPLE_RATE,
            threshold=options.threshold,
            min_speech_duration_ms=options.min_speech_duration_ms,
            min_silence_duration_ms=options.min_silence_duration_ms,
            speech_pad_ms=options.speech_pad_ms,
            audio_length_samples=num_samples,
        )

    # Padding may reach past either end of the waveform: clamp it.
    bounds = sorted((max(0, int(t["start"])), min(num_samples, int(t["end"]))) for t in timestamps)
    spans = [SpeechSpan(start, end) for start, end in bounds if end > start]
    if progress is not None:
        progress(1.0)
    logger.debug("VAD found %d speech spans in %.1f s of audio", len(spans), num_samples / SAMPLE_RATE)
    return spans


def _speech_probs(
    model: Any, audio: Any, cancel: threading.Event | None, progress: ShareProgress | None
) -> list[float]:
    """Silero's speech probability for every 32 ms window, computed as parallel streams.

    Silero is a small recurrent network run once per window, so a long file costs tens of
    thousands of sequential calls (30 min: 56 000 calls, about 20 s on two busy cores), all before
    the first words can be transcribed. The file is cut into streams of `_STREAM_WINDOWS` windows
    that run side by side as one batch (a step for 32 rows costs about twice a step for one: 30 min
    took 1.6 s instead of over 20 s). Each stream first sees `_WARMUP_WINDOWS` windows of the audio
    before it, so its state has settled when its own windows begin. The probabilities then go through Silero's own
    `get_speech_timestamps_from_probs`, exactly as `get_speech_timestamps` would use them.

    Streams of 5 s, not 20 s: the steps are what a short file waits for (idle 2-core machine: 30 s of
    audio 0.12 s instead of 0.37 s, 5 min 0.35 instead of 0.54 s, 30 min 1.6 s as before). Against
    Silero run window by window, 19 of 4944 windows of 110 s of speech fall on the other side of 0.5
    (10 with 20 s streams), which moved no span by more than two windows (tests/test_vad.py).

    Each step gathers its windows straight from the audio, so the scan allocates no copy of the file (30 min
    of float32 is 115 MB) and its memory stays flat in length.
    """
    import torch

    num_samples = len(audio)
    num_windows = -(-num_samples // _WINDOW)
    stream_windows = min(_STREAM_WINDOWS, num_windows)
    num_streams = -(-num_windows // stream_windows)
    steps = stream_windows + _WARMUP_WINDOWS
    offsets = torch.arange(num_streams)[:, None] * stream_windows - _WARMUP_WINDOWS + torch.arange(steps)
    in_range = (offsets >= 0) & (offsets < num_windows)  # outside the audio a stream hears silence
    within_window = torch.arange(_WINDOW)
    model.reset_states()
    probs = []
    for step in range(steps):
        if step % _CANCEL_CHECK_STEPS == 0:
            if cancel is not None and cancel.is_set():
                raise TranscriptionCancelled("Transcription cancelled while looking for speech.")
            if progress is not None:
                progress(step / steps)
        # Each stream's window is gathered from the audio itself: no padded copy of the whole file.
        sample = offsets[:, step, None] * _WINDOW + within_window
        heard = in_range[:, step, None] & (sample < num_samples)  # the last window's tail is silence
        windows = torch.where(heard, audio[sample.clamp(0, num_samples - 1)], 0.0)
        probs.append(model(windows, SAMPLE_RATE)[:, 0])
    return torch.stack(probs, dim=1)[:, _WARMUP_WINDOWS:].reshape(-1)[:num_windows].tolist()


@contextlib.contextmanager
def _one_torch_thread(torch: Any) -> Iterator[None]:
    """Run torch on one intra-op thread inside the block, then restore the previous count.

    Silero runs a tiny network once per 32 ms frame; splitting such small ops across threads costs
    more in synchronisation than it gains, and much more when the cores are busy (10 s of audio:
    0.1 s on one thread, 0.25 to 7.5 s on two loaded cores). Silero's own import sets one thread for
    the whole process for this reason; we do it only for the duration of the call. The setting is
    process-wide, so torch work started in another thread meanwhile may run on one thread too.
    """
    num_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(num_threads)


def _load_locked() -> tuple[Any, Callable[..., list[dict[str, int]]]]:
    """Return the cached (model, get_speech_timestamps_from_probs), loading them first if needed; hold `_LOCK`."""
    global _vad
    if _vad is None:
        import torch

        # silero_vad/model.py calls torch.set_num_threads(1) when it is imported, which would slow
        # every later torch op in this process (the ASR engine on CPU included); undo that.
        num_threads = torch.get_num_threads()
        try:
            import silero_vad

            model = silero_vad.load_silero_vad()
        except Exception as e:  # ImportError, or a damaged model file inside the wheel
            raise ModelLoadError(
                f"Could not load the Silero VAD model ({e}). "
                "Reinstall it with: pip install --force-reinstall silero-vad"
            ) from e
        finally:
            torch.set_num_threads(num_threads)
        _vad = (model, silero_vad.get_speech_timestamps_from_probs)
        logger.debug("Silero VAD model loaded")
    return _vad


class SpeechProbabilities:
    """Silero's speech probability for each 32 ms window of a live stream that arrives piece by piece.

    A live stream needs the model's recurrent state carried from one piece to the next, while every file
    scan resets it; so a stream gets its own copy of the model (about 2 MB) and never shares `_LOCK`'s.
    Each sample is heard once: a piece's tail shorter than a window waits for the next piece. Windows run
    on one torch thread (see `_one_torch_thread`: on two busy cores 10 s took 0.08 s on one, 7.5 s on two).
    """

    window_samples = _WINDOW

    def __init__(self) -> None:
        import torch

        with _LOCK:
            _load_locked()  # imports silero_vad the careful way (torch's thread count kept)
        import silero_vad

        self._model = silero_vad.load_silero_vad()
        self._torch_threads = torch.get_num_threads()
        self._pending = np.zeros(0, dtype=np.float32)
        self.heard_samples = 0  # samples run through the model so far: each fed sample once

    def push(self, samples: np.ndarray) -> np.ndarray:
        """The probability of every window completed by `samples` (mono float32 at 16 kHz), in order."""
        import torch

        audio = np.concatenate([self._pending, np.asarray(samples, dtype=np.float32).reshape(-1)])
        whole = len(audio) // _WINDOW * _WINDOW
        self._pending = audio[whole:]
        probs = np.empty(whole // _WINDOW, dtype=np.float32)
        with torch.inference_mode(), _one_torch_thread(torch):
            for index, start in enumerate(range(0, whole, _WINDOW)):
                probs[index] = self._model(torch.from_numpy(audio[start : start + _WINDOW]), SAMPLE_RATE).item()
        self.heard_samples += whole
        return probs

    def settle_thread(self) -> None:
        """Fix the calling thread's torch thread count at what it was when the stream was made.

        Torch keeps the count per thread and a thread takes the process-wide one at its first parallel
        op; a thread that starts its torch work while `push` has set one thread would keep one for good.
        A thread that decodes next to the stream calls this first.
        """
        import torch

        torch.set_num_threads(self._torch_threads)
