"""Private, local speech-to-text with Qwen3-ASR.

    import asr
    engine = asr.QwenEngine.load(asr.DEFAULT_MODEL)          # once; shared by every caller
    aligner = asr.QwenAligner.load(asr.DEFAULT_ALIGNER)      # optional: word times
    segments, info = asr.transcribe("meeting.m4a", engine=engine, aligner=aligner)
    for segment in segments:                                  # generated lazily, in time order
        print(segment.start_s, segment.end_s, segment.text, segment.words)

`import asr` stays light: torch and transformers load only when `QwenEngine` or `QwenAligner` is first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .audio import SAMPLE_RATE, AudioOverview, decode_audio, overview, read_source_info
from .bundle import build_zip
from .errors import (
    AlignmentError,
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
from .hub import DEFAULT_ALIGNER, DEFAULT_MODEL, MODEL_ENV, MODEL_SIZES, download_model, locate_model
from .options import (
    LANGUAGES,
    MAX_SPEAKERS,
    DecodeOptions,
    SpeakerOptions,
    TranscribeOptions,
    VadOptions,
    normalize_language,
)
from .pipeline import NO_SPEECH_NOTE, transcribe, transcribe_all
from .results import (
    DecodedAudio,
    Segment,
    SegmentFlag,
    SourceInfo,
    Speaker,
    SpeakerTurn,
    Transcript,
    TranscriptionInfo,
    Word,
)
from .speakers import load_speaker_model, merge_speakers, move_segment, rename_speaker
from .writers import DEFAULT_LAYOUT, FORMATS, WRITERS, SubtitleLayout, render, save

if TYPE_CHECKING:
    from .aligner import QwenAligner
    from .engine import EngineInfo, QwenEngine

__all__ = [
    "DEFAULT_ALIGNER",
    "DEFAULT_LAYOUT",
    "DEFAULT_MODEL",
    "FORMATS",
    "LANGUAGES",
    "MAX_SPEAKERS",
    "MODEL_ENV",
    "MODEL_SIZES",
    "NO_SPEECH_NOTE",
    "SAMPLE_RATE",
    "WRITERS",
    "ASRError",
    "AlignmentError",
    "AudioDecodeError",
    "AudioOverview",
    "DecodeOptions",
    "DecodedAudio",
    "DeviceMemoryError",
    "DownloadCancelled",
    "DownloadError",
    "EngineInfo",
    "ModelLoadError",
    "ModelNotFoundError",
    "OptionsError",
    "QwenAligner",
    "QwenEngine",
    "Segment",
    "SegmentFlag",
    "SourceInfo",
    "Speaker",
    "SpeakerOptions",
    "SpeakerTurn",
    "SubtitleLayout",
    "TranscribeOptions",
    "Transcript",
    "TranscriptionCancelled",
    "TranscriptionInfo",
    "VadOptions",
    "Word",
    "build_zip",
    "decode_audio",
    "download_model",
    "load_speaker_model",
    "locate_model",
    "merge_speakers",
    "move_segment",
    "normalize_language",
    "overview",
    "read_source_info",
    "rename_speaker",
    "render",
    "save",
    "transcribe",
    "transcribe_all",
]

_LAZY = {"QwenEngine": "engine", "EngineInfo": "engine", "QwenAligner": "aligner"}  # modules that import torch


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'asr' has no attribute {name!r}")
