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

import os
from typing import TYPE_CHECKING, Any

from . import netwatch
from .audio import AUDIO_SUFFIXES, SAMPLE_RATE, AudioOverview, decode_audio, overview, read_source_info
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
from .hub import (
    ALIGNER_ENV,
    DEFAULT_ALIGNER,
    DEFAULT_MODEL,
    LARGE_MODEL,
    MODEL_ENV,
    MODEL_SIZES,
    check_disk_space,
    default_endpoint,
    download_model,
    is_repo_id,
    locate_model,
)
from .jobs import DownloadJob, DownloadSnapshot, FileResult, JobInput, JobSnapshot, JobStatus, TranscriptionJob
from .live import LiveEvent, LiveEventType, LiveOptions, LiveSession, LiveSessionBusy
from .loopback import host_name, is_loopback, is_own_origin
from .options import (
    LANGUAGES,
    MAX_SPEAKERS,
    DecodeOptions,
    GuardOptions,
    SpeakerOptions,
    TranscribeOptions,
    VadOptions,
    normalize_language,
)
from .pipeline import NO_SPEECH_NOTE, transcribe, transcribe_all
from .progress import Stage
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
    codec_label,
    format_clock,
    format_size,
)
from .speakers import load_speaker_model, merge_speakers, move_segment, rename_speaker
from .tempfiles import KEEP_ENV, leftover_workdirs
from .writers import DEFAULT_LAYOUT, FORMATS, WRITERS, SubtitleLayout, render, save

# oneDNN keeps a compiled kernel for each input shape it has seen, up to 1024 in each of its two caches (oneDNN's
# own and ideep's). Every batch of a file has chunks of new lengths, so a 30-minute file added about 10 MB a batch
# and peaked 0.09 GB higher than with 64 (docs/performance.md); 64 still hold the decode steps' kernels, which
# repeat, and measured no slower. Set at import, before torch (loaded lazily) computes anything; a value already
# set wins.
for _cache in ("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "LRU_CACHE_CAPACITY"):
    os.environ.setdefault(_cache, "64")

if TYPE_CHECKING:
    from .aligner import QwenAligner
    from .engine import EngineInfo, QwenEngine

__all__ = [
    "ALIGNER_ENV",
    "AUDIO_SUFFIXES",
    "DEFAULT_ALIGNER",
    "DEFAULT_LAYOUT",
    "DEFAULT_MODEL",
    "FORMATS",
    "KEEP_ENV",
    "LANGUAGES",
    "LARGE_MODEL",
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
    "DownloadJob",
    "DownloadSnapshot",
    "EngineInfo",
    "FileResult",
    "GuardOptions",
    "JobInput",
    "JobSnapshot",
    "JobStatus",
    "LiveEvent",
    "LiveEventType",
    "LiveOptions",
    "LiveSession",
    "LiveSessionBusy",
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
    "Stage",
    "SubtitleLayout",
    "TranscribeOptions",
    "Transcript",
    "TranscriptionCancelled",
    "TranscriptionInfo",
    "TranscriptionJob",
    "VadOptions",
    "Word",
    "build_zip",
    "check_disk_space",
    "codec_label",
    "decode_audio",
    "default_endpoint",
    "download_model",
    "format_clock",
    "format_size",
    "host_name",
    "is_loopback",
    "is_own_origin",
    "is_repo_id",
    "leftover_workdirs",
    "load_speaker_model",
    "locate_model",
    "merge_speakers",
    "move_segment",
    "netwatch",
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
