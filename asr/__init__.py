"""Private, local speech-to-text with Qwen3-ASR.

    import asr
    engine = asr.QwenEngine.load(asr.DEFAULT_MODEL)          # once; shared by every caller
    segments, info = asr.transcribe("meeting.m4a", engine=engine)
    for segment in segments:                                  # generated lazily, in time order
        print(segment.start_s, segment.end_s, segment.text)

`import asr` stays light: torch and transformers load only when `QwenEngine` is first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .audio import SAMPLE_RATE, decode_audio, read_source_info
from .bundle import build_zip
from .errors import (
    ASRError,
    AudioDecodeError,
    DeviceMemoryError,
    DownloadCancelled,
    DownloadError,
    ModelLoadError,
    ModelNotFoundError,
    OptionsError,
    TranscriptionCancelled,
)
from .hub import DEFAULT_MODEL, MODEL_ENV, MODEL_SIZES, download_model, locate_model
from .options import LANGUAGES, DecodeOptions, TranscribeOptions, VadOptions, normalize_language
from .pipeline import NO_SPEECH_NOTE, transcribe, transcribe_all
from .results import DecodedAudio, Segment, SegmentFlag, SourceInfo, Transcript, TranscriptionInfo
from .writers import FORMATS, WRITERS, render, save

if TYPE_CHECKING:
    from .engine import EngineInfo, QwenEngine

__all__ = [
    "DEFAULT_MODEL",
    "FORMATS",
    "LANGUAGES",
    "MODEL_ENV",
    "MODEL_SIZES",
    "NO_SPEECH_NOTE",
    "SAMPLE_RATE",
    "WRITERS",
    "ASRError",
    "AudioDecodeError",
    "DecodeOptions",
    "DecodedAudio",
    "DeviceMemoryError",
    "DownloadCancelled",
    "DownloadError",
    "EngineInfo",
    "ModelLoadError",
    "ModelNotFoundError",
    "OptionsError",
    "QwenEngine",
    "Segment",
    "SegmentFlag",
    "SourceInfo",
    "TranscribeOptions",
    "Transcript",
    "TranscriptionCancelled",
    "TranscriptionInfo",
    "VadOptions",
    "build_zip",
    "decode_audio",
    "download_model",
    "locate_model",
    "normalize_language",
    "read_source_info",
    "render",
    "save",
    "transcribe",
    "transcribe_all",
]

_LAZY = {"QwenEngine", "EngineInfo"}  # live in .engine, which imports torch


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from . import engine

        return getattr(engine, name)
    raise AttributeError(f"module 'asr' has no attribute {name!r}")
