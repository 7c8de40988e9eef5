"""The two entry points: which decoding path reads an input, and what each returns or raises."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from ..results import DecodedAudio, SourceInfo
from .libsndfile import decode_with_soundfile, soundfile_info
from .pyav import decode_with_pyav, pyav_info
from .source import AudioSource, check_max_duration, prepared_source

logger = logging.getLogger(__name__)


def decode_audio(
    source: AudioSource,
    *,
    max_duration_s: float | None = None,
    spill_dir: Path | None = None,
    cancel: threading.Event | None = None,
) -> DecodedAudio:
    """Decode any audio, or the first audio track of a video, to mono float32 samples at 16 kHz.

    Args:
        source: A path; the file's bytes; or a binary file object (e.g. Streamlit's ``UploadedFile``),
            read from its current position, which is left as it was. Bytes and file objects are decoded
            in memory.
        max_duration_s: Refuse inputs longer than this many seconds; ``None`` for no limit. When the
            container declares its length, a longer input is refused before anything is decoded.
        spill_dir: A private folder (``tempfiles.private_workdir``) for the samples of inputs longer than
            ``SPILL_AFTER_S``, returned memory-mapped; it must outlive their use. ``None`` keeps all in RAM.
        cancel: when set from another thread, decoding stops at the next block (a long file takes seconds).

    Returns:
        The samples (1-D ``float32`` at ``SAMPLE_RATE``, channels averaged) and the facts of the source;
        ``source.duration_s`` is the length of the decoded samples.

    Raises:
        AudioDecodeError: The input is missing, a folder, unreadable, empty, not audio, a video without an
            audio track, damaged so that nothing decodes, holds no samples, or is longer than
            ``max_duration_s``. The message says which, and what to do.
        TranscriptionCancelled: ``cancel`` was set.
        OptionsError: ``max_duration_s`` is not a positive number.
        TypeError: ``source`` is none of the accepted types.
    """
    check_max_duration(max_duration_s)
    with prepared_source(source) as src:
        decoded = decode_with_soundfile(src, max_duration_s, spill_dir, cancel)
        if decoded is None:
            decoded = decode_with_pyav(src, max_duration_s, spill_dir, cancel)
    logger.debug(
        "Decoded %.2f s of audio (%s in %s, %d Hz, %d channel(s))",
        decoded.source.duration_s,
        decoded.source.codec,
        decoded.source.container,
        decoded.source.sample_rate,
        decoded.source.channels,
    )
    return decoded


def read_source_info(source: AudioSource) -> SourceInfo:
    """Describe an input without decoding all of it, for ``python -m asr info FILE``.

    When the container declares its length, only the first packets are decoded (to check that the audio
    really decodes and to learn its true sample rate and channel count) and ``duration_s`` is the declared
    length, which can differ from the decoded length by a few milliseconds. When it declares none, the whole
    input is decoded and ``duration_s`` is exact.

    Args:
        source: A path, the file's bytes, or a binary file object (see ``decode_audio``).

    Returns:
        The duration, source sample rate, channel count, codec and container names, and size in bytes.

    Raises:
        AudioDecodeError: For the same inputs as ``decode_audio`` (there is no length limit here).
        TypeError: ``source`` is none of the accepted types.
    """
    with prepared_source(source) as src:
        info = soundfile_info(src)
        if info is None:
            info = pyav_info(src)
    return info
