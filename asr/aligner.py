"""Word times from Qwen3-ForcedAligner-0.6B through transformers' native `qwen3_asr` classes.

The aligner is a second, optional model: given a chunk's audio and its text, one forward pass (no
generation) classifies a pair of ``<timestamp>`` slots after each word into 80 ms steps. The processor
builds the input (`prepare_forced_aligner_inputs`) and reads the times back (`decode_forced_alignment`,
which also repairs times that go backwards); this module only batches (on a CPU, one row per pass),
guards and loads.

Like `engine.py`, it imports torch and transformers (and the same device helpers, `device.py`), so
`asr/__init__.py` imports it lazily. One
`QwenAligner` serves every caller; it shares nothing mutable with the speech model, and a lock keeps
two callers from running it at once.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
import time
from collections.abc import Sequence

import numpy as np
import torch
from safetensors import SafetensorError
from transformers import AutoModelForTokenClassification, AutoProcessor
from transformers.models.qwen3_asr.processing_qwen3_asr import FORCED_ALIGNER_LANGUAGES

from .cpu_layout import use_onednn_layouts
from .decode import prefill_progress
from .device import resolve_device, resolve_dtype, return_freed_memory
from .encoder_rows import encode_rows_apart
from .errors import AlignmentError, ModelLoadError
from .hub import ALIGNER_ENV, DEFAULT_ALIGNER, locate_model
from .progress import ShareProgress, part_of
from .results import AlignedToken

logger = logging.getLogger(__name__)

# Japanese and Korean need a word splitter of their own; without it those two keep estimated times.
_SPLITTER_PACKAGES = {"Japanese": "nagisa", "Korean": "soynlp"}


def unsupported_reason(language: str | None) -> str | None:
    """Why word times for `language` come from estimates instead of the aligner; None when it can align it."""
    if language is None:
        return "the language is not known"
    if language not in FORCED_ALIGNER_LANGUAGES:
        return f"the aligner does not cover {language}"
    package = _SPLITTER_PACKAGES.get(language)
    if package and importlib.util.find_spec(package) is None:
        return f"{language} needs the {package} word splitter, which is not installed"
    return None


class QwenAligner:
    """Qwen3-ForcedAligner loaded once; `align` times the words of a batch of chunks."""

    def __init__(self, model, processor, name: str, device: str) -> None:
        self._model = model
        self._processor = processor
        self._lock = threading.Lock()
        self.name = name
        self.device = device

    def supports(self, language: str | None) -> bool:
        """Whether this aligner can time words of `language` (see `unsupported_reason`)."""
        return unsupported_reason(language) is None

    @classmethod
    def load(cls, model: str = DEFAULT_ALIGNER, *, device: str = "auto", dtype: str = "auto") -> QwenAligner:
        """Load the aligner from a folder or the local Hugging Face cache; never from the network.

        Raises:
            ModelNotFoundError: it is not on this computer (the message says how to download it).
            ModelLoadError: the files are there but unusable, or are not a forced aligner.
        """
        device = resolve_device(device)
        torch_dtype = resolve_dtype(dtype, device)
        folder = locate_model(model, env=ALIGNER_ENV)
        started = time.perf_counter()
        try:
            processor = AutoProcessor.from_pretrained(folder, local_files_only=True)
            loaded = AutoModelForTokenClassification.from_pretrained(
                folder, local_files_only=True, dtype=torch_dtype, device_map=device
            ).eval()
        except torch.OutOfMemoryError as e:
            raise ModelLoadError(f"Not enough {device} memory to load the aligner {model}.") from e
        except (OSError, ValueError, KeyError, RuntimeError, SafetensorError) as e:
            raise ModelLoadError(
                f"Could not load the aligner from {folder}: {e}. The folder may be incomplete or damaged.",
                f"Download it again with `python -m asr download --model {DEFAULT_ALIGNER}`.",
            ) from e
        if getattr(loaded.config, "timestamp_token_id", None) is None or not hasattr(
            processor, "decode_forced_alignment"
        ):
            raise ModelLoadError(f"{model} is not a Qwen3 forced aligner; use {DEFAULT_ALIGNER} or a copy of it.")
        use_onednn_layouts(loaded)
        encode_rows_apart(loaded)
        logger.info("Loaded aligner %s on %s in %.1f s", model, device, time.perf_counter() - started)
        return cls(loaded, processor, model, str(loaded.device))

    def align(
        self,
        waves: Sequence[np.ndarray],
        texts: Sequence[str],
        languages: Sequence[str],
        progress: ShareProgress | None = None,
    ) -> list[list[AlignedToken]]:
        """Time the words of each text in its audio (mono float32, 16 kHz); one forward pass per row on a CPU,
        one for the batch elsewhere (`_rows_per_pass`).

        `progress` hears the share of the batch done as each of the model's layers ends (seconds long on a CPU).

        Raises:
            AlignmentError: the batch could not be aligned (out of memory, a text with no words); the
                caller falls back to estimated times.
        """
        step = self._rows_per_pass(len(waves))
        timed: list[list[dict]] = []
        try:
            with self._lock, torch.inference_mode():
                for start in range(0, len(waves), step):
                    end = min(start + step, len(waves))
                    share = part_of(progress, start / len(waves), end / len(waves))
                    timed += self._align_pass(waves[start:end], texts[start:end], languages[start:end], share)
        except (torch.OutOfMemoryError, MemoryError, ValueError, ImportError, RuntimeError, IndexError) as e:
            raise AlignmentError(f"Could not align a batch of {len(waves)} chunk(s): {type(e).__name__}") from e
        finally:
            return_freed_memory()
        return [[AlignedToken(item["text"], item["start_time"], item["end_time"]) for item in row] for row in timed]

    def _rows_per_pass(self, rows: int) -> int:
        """1 on a CPU, where a pass over one row is faster than over the batch; the whole batch elsewhere.

        Why: the aligner's prompt is long (the audio's tokens, then every word and its two timestamp slots), and on
        a CPU its pass is not only matrix products: the norms, rotary embeddings and residual sums walk the whole
        batch's activations a dozen times per layer, each a fresh buffer of tens of megabytes faulted in page by
        page. One row's activations stay in the cache. On the 2-core AVX-512 Xeon, eight rows of 22-24 s took
        9.2-9.4 s one by one against 10.3-13.5 s as one batch, with the same times for every word.
        A GPU is the other way round: it is only fast on a batch.
        """
        return 1 if self._model.device.type == "cpu" else rows

    def _align_pass(
        self,
        waves: Sequence[np.ndarray],
        texts: Sequence[str],
        languages: Sequence[str],
        progress: ShareProgress | None,
    ) -> list[list[dict]]:
        """One forward pass over some rows; the processor's timed words for each."""
        inputs, word_lists = self._processor.prepare_forced_aligner_inputs(
            audio=list(waves), transcript=list(texts), language=list(languages)
        )
        layers = None if progress is None else lambda share, _steps: progress(share)
        with prefill_progress(self._model, layers):
            inputs = inputs.to(self._model.device, dtype=self._model.dtype)
            logits = self._model(**inputs).logits
        return self._processor.decode_forced_alignment(
            logits, inputs["input_ids"], word_lists, timestamp_token_id=self._model.config.timestamp_token_id
        )
