"""The Qwen3-ASR model through transformers' native `qwen3_asr` classes.

One `QwenEngine` serves every caller (all Streamlit sessions, all CLI files): it holds no per-call state,
and a lock makes sure two callers never run `generate` at the same time. Torch is imported here and in the
modules the engine and the aligner stand on (`device.py`, `decode.py`, `cpu_layout.py`, `encoder_rows.py`,
`aligner.py`, and `vad.py` for Silero); `asr/__init__.py` loads them only when an engine is first used.
Reading the model's output text needs no torch (`model_output.py`).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from safetensors import SafetensorError
from transformers import AutoProcessor, Qwen3ASRForConditionalGeneration, StoppingCriteria, StoppingCriteriaList

from .audio import SAMPLE_RATE
from .cpu_layout import use_onednn_layouts
from .decode import KeptCache, StepGraphs, greedy_decode, prefill_progress
from .device import (
    check_placement,
    default_batch_size,
    kv_bytes_per_token,
    resolve_device,
    resolve_dtype,
    return_freed_memory,
)
from .encoder_rows import encode_rows_apart
from .errors import DeviceMemoryError, ModelLoadError, OptionsError
from .hub import locate_model
from .model_output import eos_token_ids, parse_generated
from .progress import EngineProgress
from .results import ChunkText

logger = logging.getLogger(__name__)

DECODERS = ("auto", "generate", "loop")  # auto: the loop on the CPU; transformers' generate elsewhere (see `load`)


@dataclass(frozen=True)
class EngineInfo:
    """What the app and CLI show about the loaded model."""

    name: str  # repo id or folder the user asked for
    folder: str  # where the files are
    device: str
    dtype: str
    load_s: float


def show_loading_bars(shown: bool) -> None:
    """Whether transformers draws its "Loading weights" bar on stderr at each load (the CLI shows it with -v)."""
    from transformers.utils import logging as transformers_logging

    (transformers_logging.enable_progress_bar if shown else transformers_logging.disable_progress_bar)()


class _StopWhenSet(StoppingCriteria):
    """Ends `generate` at its next decode step once the event is set (the user pressed Cancel)."""

    def __init__(self, event: threading.Event) -> None:
        self._event = event

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        return torch.full((input_ids.shape[0],), self._event.is_set(), dtype=torch.bool, device=input_ids.device)


class _ReportSteps(StoppingCriteria):
    """Tells `progress` of each of `generate`'s decode steps; never stops it."""

    def __init__(self, prompt_length: int, progress: EngineProgress) -> None:
        self._prompt_length = prompt_length
        self._progress = progress

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        self._progress(1.0, input_ids.shape[1] - self._prompt_length)
        return torch.zeros((input_ids.shape[0],), dtype=torch.bool, device=input_ids.device)


class QwenEngine:
    """Qwen3-ASR loaded once; `transcribe_chunks` turns a batch of 16 kHz chunks into text."""

    def __init__(
        self,
        model: Qwen3ASRForConditionalGeneration,
        processor,
        info: EngineInfo,
        *,
        decoder: str = "auto",
        cuda_graphs: bool = False,
    ) -> None:
        if decoder not in DECODERS:
            raise OptionsError(f"Unknown decoder {decoder!r}; use one of {', '.join(DECODERS)}.")
        if cuda_graphs and decoder != "loop":
            raise OptionsError('CUDA graphs replay our decode loop\'s step: use them with decoder="loop".')
        self._model = model
        self._processor = processor
        self._lock = threading.Lock()
        self._decoder = ("loop" if info.device == "cpu" else "generate") if decoder == "auto" else decoder
        # Captured step graphs, kept across calls like the weights (guarded by the lock); None: no graphs.
        self._graphs = StepGraphs() if cuda_graphs and info.device.startswith("cuda") else None
        self._kept_cache = KeptCache()  # the CPU loop's cache, reused from batch to batch (guarded by the lock)
        self.info = info
        self.name = info.name
        free = torch.cuda.mem_get_info(model.device)[0] if info.device.startswith("cuda") else 0
        self.default_batch_size = default_batch_size(info.device, free, kv_bytes_per_token(model))

    @classmethod
    def load(
        cls,
        model: str,
        *,
        device: str = "auto",
        dtype: str = "auto",
        decoder: str = "auto",
        cuda_graphs: bool = False,
    ) -> QwenEngine:
        """Load a model from a folder or the local Hugging Face cache; never from the network.

        Args:
            model: repo id (e.g. "Qwen/Qwen3-ASR-0.6B-hf") or a folder with a Qwen3-ASR checkpoint.
            device: "auto", "cpu", "cuda" or "mps".
            dtype: "auto", "bfloat16", "float16" or "float32".
            decoder: "loop" (our static-cache greedy loop, asr/decode.py), "generate" (transformers'), or "auto":
                the loop on the CPU, where it gives generate's tokens and measured as fast or faster on an idle
                machine (docs/performance.md), and generate on CUDA and MPS until a GPU run has checked the loop.
            cuda_graphs: with decoder="loop" on CUDA, replay the loop's one-token step from captured CUDA
                graphs. Off by default until a GPU run shows it equal to and faster than `generate`.

        Raises:
            ModelNotFoundError: the model is not on this computer (the message says how to get it).
            ModelLoadError: the files are there but unusable, or the device ran out of memory.
            OptionsError: unknown or unavailable device or dtype.
        """
        device = resolve_device(device)
        torch_dtype = resolve_dtype(dtype, device)
        folder = locate_model(model)
        started = time.perf_counter()
        os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
        try:
            processor = AutoProcessor.from_pretrained(folder, local_files_only=True)
            loaded = Qwen3ASRForConditionalGeneration.from_pretrained(
                folder,
                local_files_only=True,
                dtype=torch_dtype,
                device_map="auto" if device == "cuda" else device,
            ).eval()
        except torch.OutOfMemoryError as e:
            raise ModelLoadError(
                f"Not enough {device} memory to load {model}. Close other programs, or choose the 0.6B model.",
                "On the command line, --device cpu also works.",
            ) from e
        except (OSError, ValueError, KeyError, RuntimeError, SafetensorError) as e:
            raise ModelLoadError(
                f"Could not load the model from {folder}: {e}. The folder may be incomplete or damaged.",
                "Download it again with `python -m asr download`.",
            ) from e
        check_placement(getattr(loaded, "hf_device_map", None), model)
        use_onednn_layouts(loaded)
        encode_rows_apart(loaded)
        info = EngineInfo(
            name=model,
            folder=str(folder),
            device=str(loaded.device),
            dtype=str(torch_dtype).removeprefix("torch."),
            load_s=time.perf_counter() - started,
        )
        engine = cls(loaded, processor, info, decoder=decoder, cuda_graphs=cuda_graphs)
        engine._warm_up()
        engine.info = replace(info, load_s=time.perf_counter() - started)
        logger.info("Loaded %s on %s (%s) in %.1f s", model, info.device, info.dtype, engine.info.load_s)
        return engine

    @property
    def device(self) -> str:
        """Where the model runs now ("cpu", "cuda:0", "mps"); other models of a run (speakers) go there too."""
        return self.info.device

    def _warm_up(self) -> None:
        """Run one second of silence through the model once, while the user still waits for loading.

        The first `generate` of a process pays one-time costs (kernel selection, memory pools; about
        0.5 s on CPU); paid here, they do not delay the first words of the first transcription.
        """
        self.transcribe_chunks([np.zeros(SAMPLE_RATE, np.float32)], language=None, context="", max_new_tokens=[2])

    def memory_summary(self) -> str:
        """Memory in use, for the app's sidebar: GPU memory on CUDA, this process's RAM otherwise."""
        if self.info.device.startswith("cuda"):
            used = torch.cuda.memory_allocated() / 1e9
            total = torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory / 1e9
            return f"GPU memory {used:.1f} / {total:.1f} GB"
        import psutil

        return f"RAM used by the app: {psutil.Process().memory_info().rss / 1e9:.1f} GB"

    def fall_back_to_cpu(self) -> str | None:
        """Move the model to the CPU after the GPU ran out of memory even for a single chunk.

        Returns the notice to show the user, or None when the model is already on the CPU (then
        there is nothing left to fall back to). Every later run of this engine stays on the CPU.
        """
        with self._lock:
            if self._model.device.type == "cpu":
                return None
            previous = self.info.device
            self._graphs = None  # their caches and buffers hold GPU memory
            try:
                cpu_dtype = resolve_dtype("auto", "cpu")
                self._model = self._model.to("cpu", dtype=cpu_dtype)
                use_onednn_layouts(self._model)
            except (RuntimeError, ValueError) as e:  # e.g. a model split over several devices by device_map
                logger.warning("Could not move the model to the CPU: %s", e)
                return None
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            self.info = replace(self.info, device="cpu", dtype=str(cpu_dtype).removeprefix("torch."))
        logger.warning("Out of %s memory on a single chunk: the model now runs on the CPU", previous)
        return (
            f"The {previous} ran out of memory even for one chunk, so the model moved to the CPU: the "
            "transcription goes on there, more slowly. Restart the app to use the GPU again."
        )

    def _pad_id(self) -> int:
        """What fills a row after its end (generate's choice: the pad id, else the first end-of-text id)."""
        config = self._model.generation_config
        if config.pad_token_id is not None:
            return config.pad_token_id
        return min(eos_token_ids(config), default=0)

    def _generate(
        self,
        inputs,
        max_new_tokens: Sequence[int],
        repetition_penalty: float | None,
        stop: threading.Event | None,
        progress: EngineProgress | None,
    ) -> torch.Tensor:
        """transformers' `generate`: the reference for our loop, and the repetition-penalty retry."""
        extra: dict[str, object] = {"repetition_penalty": repetition_penalty} if repetition_penalty else {}
        prompt_length = inputs["input_ids"].shape[1]
        criteria: list[StoppingCriteria] = [_StopWhenSet(stop)] if stop is not None else []
        criteria += [_ReportSteps(prompt_length, progress)] if progress is not None else []
        if criteria:
            extra["stopping_criteria"] = StoppingCriteriaList(criteria)
        with prefill_progress(self._model, progress):
            generated = self._model.generate(**inputs, max_new_tokens=max(max_new_tokens), do_sample=False, **extra)
        return generated[:, prompt_length:].cpu()

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
    ) -> list[ChunkText]:
        """Transcribe a batch of mono float32 16 kHz chunks with greedy decoding.

        Args:
            chunks: waveforms, one request each; they are padded together into one batch.
            language: full language name to force, or None to let the model detect it.
            context: text for the system prompt (names, jargon); "" for none.
            max_new_tokens: cap on generated tokens, one per chunk. The batch runs to the largest;
                each row is then cut to its own cap, so a chunk's text does not depend on its batch.
            repetition_penalty: used when a chunk is decoded again after a loop.
            stop: when set from another thread, generation ends at its next step, or with our loop during
                the prefill before its next layer (a CPU batch can take 20 s); the texts are then cut short
                or empty, and the caller is expected to discard them.
            progress: called (from this thread) as the work goes on: with the share of the prefill done
                (audio encoder and decoder, layer by layer), then with the number of decode steps done.
            proposal: for one chunk, the tokens its output is expected to begin with (a live draft's `tokens` of
                the same utterance): our loop checks them in one pass after the prefill and decodes only what
                follows the ones that hold; the result is the same as without them. Ignored for a batch and by
                `generate`.

        Returns:
            One `ChunkText` per chunk, in the order given.
        """
        inputs = self._processor.apply_transcription_request(
            audio=list(chunks),
            language=language,
            prompt=context or None,
        )
        try:
            with self._lock, torch.inference_mode():
                # Inside the lock: a fall-back to the CPU from another thread cannot move the model in between.
                inputs = inputs.to(self._model.device, dtype=self._model.dtype)
                if repetition_penalty or self._decoder == "generate":
                    new_tokens = self._generate(inputs, max_new_tokens, repetition_penalty, stop, progress)
                else:
                    new_tokens = greedy_decode(
                        self._model,
                        inputs,
                        max_new_tokens,
                        eos_ids=eos_token_ids(self._model.generation_config),
                        pad_id=self._pad_id(),
                        stop=stop,
                        graphs=self._graphs if self._model.device.type == "cuda" else None,
                        kept_cache=self._kept_cache if self._model.device.type == "cpu" else None,
                        progress=progress,
                        proposal=proposal,
                    )
        except (torch.OutOfMemoryError, MemoryError) as e:
            with self._lock:
                self._kept_cache.release()
            raise DeviceMemoryError(
                f"Ran out of {self.info.device} memory on a batch of {len(chunks)} chunk(s). Try a batch size of 1, "
                "the 0.6B model, or the CPU, and close other programs that use the memory."
            ) from e
        del inputs
        return_freed_memory()
        eos_ids = eos_token_ids(self._model.generation_config)
        pad_id = self._pad_id()
        results = []
        for row, cap in zip(new_tokens.tolist(), max_new_tokens, strict=True):
            row = row[:cap]
            finished = any(token in eos_ids for token in row)
            if finished:
                row = row[: next(i for i, token in enumerate(row) if token in eos_ids)]
            row = [token for token in row if token != pad_id]
            raw = self._processor.decode(row, skip_special_tokens=True)
            detected, text = parse_generated(raw, language)
            results.append(
                ChunkText(text=text, language=detected, finished=finished, num_tokens=len(row), tokens=tuple(row))
            )
        return results
