"""The libsndfile fast path for WAV, FLAC and Ogg Vorbis; anything it does not fit goes to PyAV."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import soundfile as sf

from ..errors import AudioDecodeError
from ..results import DecodedAudio, SourceInfo
from .messages import damaged_rate_error, error_reason, too_long_error
from .samples import SAMPLE_RATE, collect, mix, plausible_rate, resample_to_16k
from .source import Source

logger = logging.getLogger(__name__)

_SOUNDFILE_BLOCK_FRAMES = 1 << 18  # frames per libsndfile read (~6 s at 44.1 kHz)


# (libsndfile format, subtype) -> FFmpeg's codec name; only these take the soundfile fast path.
_SOUNDFILE_CODECS = {
    **{
        (container, subtype): codec
        for container in ("WAV", "WAVEX")
        for subtype, codec in (
            ("PCM_U8", "pcm_u8"),
            ("PCM_16", "pcm_s16le"),
            ("PCM_24", "pcm_s24le"),
            ("PCM_32", "pcm_s32le"),
            ("FLOAT", "pcm_f32le"),
            ("DOUBLE", "pcm_f64le"),
        )
    },
    ("FLAC", "PCM_S8"): "flac",
    ("FLAC", "PCM_16"): "flac",
    ("FLAC", "PCM_24"): "flac",
    ("OGG", "VORBIS"): "vorbis",
}


_SOUNDFILE_CONTAINERS = {"WAV": "wav", "WAVEX": "wav", "FLAC": "flac", "OGG": "ogg"}  # -> FFmpeg's format name


def decode_with_soundfile(
    src: Source, max_duration_s: float | None, spill_dir: Path | None, cancel: threading.Event | None
) -> DecodedAudio | None:
    """Decode WAV/FLAC/Ogg Vorbis with libsndfile; None when it does not fit (then PyAV decodes)."""
    sound_file = _open_soundfile(src)
    if sound_file is None:
        return None
    with sound_file:
        rate, declared = sound_file.samplerate, sound_file.frames
        if max_duration_s is not None and declared / rate > max_duration_s:
            raise too_long_error(src, declared / rate, max_duration_s)
        try:
            samples = collect(resample_to_16k(_soundfile_blocks(sound_file)), max_duration_s, spill_dir, cancel)
        except sf.SoundFileError:  # libsndfile failed part way: FFmpeg may do better, and explains errors well
            logger.debug("libsndfile failed while reading; decoding with PyAV instead")
            return None
        except av.FFmpegError as e:  # the resampler refused these samples (its MemoryError included)
            raise AudioDecodeError(
                f"Decoding {src.label} failed ({error_reason(e)}). The file may be damaged; try exporting it again."
            ) from e
        if samples is None:  # resampling rounded a length right at the limit up past it
            assert max_duration_s is not None  # collect gives None only when a limit was passed
            raise too_long_error(src, declared / rate, max_duration_s)
        if sound_file.tell() < declared:  # a read failed quietly (libsndfile cannot report a file object's errors)
            logger.debug("libsndfile read less than the declared length; decoding with PyAV instead")
            return None
        info = _soundfile_source_info(sound_file, src, len(samples) / SAMPLE_RATE)
    return DecodedAudio(samples, info)


def _soundfile_blocks(sound_file: sf.SoundFile) -> Iterator[tuple[np.ndarray, int]]:
    """Mono float32 blocks and their rate, read from libsndfile in large pieces."""
    while len(block := sound_file.read(_SOUNDFILE_BLOCK_FRAMES, dtype="float32", always_2d=True)):
        yield (block[:, 0] if sound_file.channels == 1 else mix(block.T)), sound_file.samplerate


def soundfile_info(src: Source) -> SourceInfo | None:
    """The facts from libsndfile's header parse alone; None when it does not fit."""
    sound_file = _open_soundfile(src)
    if sound_file is None:
        return None
    with sound_file:
        return _soundfile_source_info(sound_file, src, sound_file.frames / sound_file.samplerate)


def _soundfile_source_info(sound_file: sf.SoundFile, src: Source, duration_s: float) -> SourceInfo:
    """SourceInfo with FFmpeg's names for libsndfile's format and codec."""
    return SourceInfo(
        duration_s=duration_s,
        sample_rate=sound_file.samplerate,
        channels=sound_file.channels,
        codec=_SOUNDFILE_CODECS[(sound_file.format, sound_file.subtype)],
        container=_SOUNDFILE_CONTAINERS[sound_file.format],
        size_bytes=src.size_bytes,
    )


def _open_soundfile(src: Source) -> sf.SoundFile | None:
    """Open with libsndfile when the input is a WAV/FLAC/Ogg file with a codec we map, else None."""
    head = src.head
    if not ((head[:4] in (b"RIFF", b"RIFX") and head[8:12] == b"WAVE") or head[:4] in (b"fLaC", b"OggS")):
        return None
    try:
        sound_file = sf.SoundFile(src.rewound())
    except (sf.SoundFileError, RuntimeError, TypeError, ValueError):  # not for libsndfile: let PyAV judge it
        logger.debug("libsndfile cannot open this input; decoding with PyAV instead")
        return None
    if (sound_file.format, sound_file.subtype) not in _SOUNDFILE_CODECS or sound_file.frames <= 0:
        sound_file.close()
        return None
    if not plausible_rate(sound_file.samplerate):
        sound_file.close()
        raise damaged_rate_error(src, sound_file.samplerate)
    return sound_file
