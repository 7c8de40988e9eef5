"""Fuzz the decoder with atheris: every input must end as audio or as an `ASRError` with a one-line message,
within a time bound, with finite samples, and with no temporary folder left behind.

    .venv/bin/python -m testbed.fuzz_decoder -runs=400 -seed=1   # bounded and repeatable (tests/test_fuzz.py)
    tests/fuzz.sh                                                 # long; findings go to tests/fuzz-crashes/

Each input goes through `decode_audio`, `overview` and `read_source_info`. The seeds are the test corpus in
small (a 0.4 s spoken clip in every container and codec we read, and files that are not audio), plus the
regression cases: inputs a fuzz run once broke the decoder with, kept as the code that makes them. The Python
code of `asr.audio` is instrumented, so libFuzzer's mutations follow its branches; FFmpeg and libsndfile are
native and run uninstrumented.
"""

from __future__ import annotations

import math
import struct
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import atheris
import numpy as np

with atheris.instrument_imports(include=["asr"]):  # before anything else imports asr
    from asr import ASRError, decode_audio, overview, read_source_info
    from asr.tempfiles import PREFIX

TIME_LIMIT_S = 20.0  # per input, all three calls; the seeds take well under a second
_CLIP_S = 0.4


def _clip() -> np.ndarray:
    from testbed import corpus

    samples = corpus.clip()
    start = len(samples) // 3
    return samples[start : start + round(_CLIP_S * 16_000)]


def _wav_with_rate(rate: int) -> bytes:
    """A WAV whose header gives `rate` as its sample rate (and a byte rate to match, where it fits)."""
    from testbed import corpus

    wav = bytearray(corpus.soundfile_bytes(_clip()))
    struct.pack_into("<II", wav, 24, rate, min(rate * 2, 2**32 - 1))
    return bytes(wav)


def seeds() -> dict[str, Callable[[], bytes]]:
    """File name -> maker, for the seed corpus."""
    from testbed import corpus

    clip = _clip()
    stereo = np.stack([clip, 0.5 * clip])
    return {
        "pcm16.wav": lambda: corpus.soundfile_bytes(clip),
        "float.wav": lambda: corpus.soundfile_bytes(clip, subtype="FLOAT"),
        "stereo-44k.flac": lambda: corpus.soundfile_bytes(stereo.T, rate=44_100, format="FLAC"),
        "vorbis.ogg": lambda: corpus.soundfile_bytes(clip, format="OGG", subtype="VORBIS"),
        "aiff.aiff": lambda: corpus.soundfile_bytes(clip, format="AIFF"),
        "mp3.mp3": lambda: corpus.pyav_bytes("mp3", [corpus.mono(clip, "libmp3lame")]),
        "aac.m4a": lambda: corpus.pyav_bytes("ipod", [corpus.mono(clip, "aac")]),
        "opus.webm": lambda: corpus.pyav_bytes("webm", [corpus.mono(clip, "libopus", rate=48_000)]),
        "mulaw.wav": lambda: corpus.pyav_bytes("wav", [corpus.mono(clip, "pcm_mulaw", rate=8_000)]),
        "video.mp4": lambda: corpus.pyav_bytes("mp4", [corpus.mono(clip, "aac")], video_s=_CLIP_S),
        "picture.png": corpus.png,
        "document.pdf": corpus.pdf,
        "notes.txt": corpus.text,
        "random.bin": lambda: corpus.random_bytes(2048),
        **REGRESSIONS,
    }


# Inputs that broke the decoder once, kept so that every run tries them again.
REGRESSIONS: dict[str, Callable[[], bytes]] = {
    # MemoryError from FFmpeg's resampler (the 3000-input mutation fuzz): a WAV header saying 2**31 - 1 Hz.
    "regression-rate-2147483647.wav": lambda: _wav_with_rate(2**31 - 1),
    # 32 kB that claim 16000 s at 1 Hz: a gigabyte of samples and minutes of resampling (found by this harness).
    "regression-rate-1.wav": lambda: _wav_with_rate(1),
}


def write_seeds(folder: Path) -> Path:
    """Write the seed corpus into `folder` (made if missing) and return it."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, make in seeds().items():
        (folder / name).write_bytes(make())
    return folder


def _our_folders() -> set[str]:
    """Our temporary folders; `main` gives this process a temporary root of its own, so no other run's count."""
    return {path.name for path in Path(tempfile.gettempdir()).glob(f"{PREFIX}*")}


def check_one_input(data: bytes) -> None:
    """Decode `data` three ways; raise AssertionError when an outcome breaks the decoder's promises."""
    before = _our_folders()
    started = time.monotonic()
    for call in (decode_audio, lambda d: overview(d, points=50), read_source_info):
        try:
            result = call(data)
        except ASRError as e:
            message = str(e)
            assert message and "\n" not in message, f"not one line: {message!r}"
            continue
        samples = getattr(result, "samples", None)
        if samples is not None:
            assert samples.dtype == np.float32 and samples.ndim == 1 and len(samples), "not mono float32 samples"
            assert np.isfinite(samples).all(), "NaN or infinite samples"
        levels = getattr(result, "levels", ())
        assert all(math.isfinite(level) for level in levels), "a level that is not finite"
    elapsed = time.monotonic() - started
    assert elapsed < TIME_LIMIT_S, f"took {elapsed:.1f} s"
    assert _our_folders() <= before, "a temporary folder was left behind"


def main() -> None:
    tempfile.tempdir = tempfile.mkdtemp(prefix="fuzz-tmp-")  # other programs' temporary folders are not ours
    args = sys.argv
    seed_dirs = [arg for arg in args[1:] if not arg.startswith("-")]
    if not seed_dirs:  # no corpus folder given: a fresh one with the seeds
        folder = write_seeds(Path(tempfile.mkdtemp(prefix="fuzz-seeds-")))
        args = [*args, str(folder)]
    else:
        for given in seed_dirs:
            write_seeds(Path(given))
    atheris.Setup(args, check_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
