"""A corpus of bad and unusual inputs, each run the way users run it (issue "Hardening").

Every input is made here (tests/corpus.py: espeak-ng speech, numpy, PyAV encoders, byte surgery), then:

* All the **bad** inputs go through one ``python -m asr transcribe`` (``asr.cli.main`` in this process,
  engine from ``tiny_model_dir``) with one good file among them: the good one must still be transcribed,
  the exit code must be 1, and each bad input must get its own one-line message that says what is wrong
  and what to do, with no traceback. Each is then decoded alone, under a time limit, and must raise
  ``AudioDecodeError`` with the same message.
* All the **good** inputs go through one more CLI run (every output format) and, one by one, through
  ``asr.decode_audio`` and ``asr.transcribe_all`` under a time limit: decoded samples are finite and have
  the expected length, segments are in time order inside the audio, silence gives no text and the
  "no speech detected" note without calling the model.

Each CLI run covers many files, so the CLI's output is captured at module scope with ``redirect_stdout``
and ``redirect_stderr`` (what ``capsys`` does, for a fixture shared by all cases). The tiny random model
writes gibberish and never stops by itself, so only the shape of a transcript is checked here, never its
words, and its generation is capped at a few tokens (``quick_tiny_model``): everything else, from the file
to the written outputs, is the real code.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import itertools
import json
import os
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import asr
from asr import tempfiles
from asr.audio import SAMPLE_RATE
from asr.cli import main
from testbed.corpus import (
    Track,
    clip,
    html_error_page,
    mono,
    nonstop_speech,
    overwritten,
    pdf,
    png,
    pyav_bytes,
    random_bytes,
    seconds,
    soundfile_bytes,
    sparse_silent_wav,
    telephone_band,
    text,
    text_with_bom,
    truncated,
    wav_data_size,
    wav_with_fields,
    wav_with_list_chunk,
    white_noise,
    zip_archive,
)
from testbed.speech import SENTENCES, silence, speech_with_pauses

DECODE_LIMIT_S = 30.0  # one decode; the slowest input here takes well under a second on a quiet machine
TRANSCRIBE_LIMIT_S = 90.0  # one transcribe_all with the tiny model (the 2-minute input is the slowest)
CLI_LIMIT_S = 300.0  # one CLI run over many files
SILENCE_LIMIT_S = 30.0  # 10 minutes of silence: decoding and VAD only (about 2 s on a quiet machine)
NO_SPEECH = "no speech detected"
MAX_NEW_TOKENS = 4  # per chunk: the tiny model would otherwise run every chunk to its full budget

# --- the inputs ---------------------------------------------------------------------------------------------


@functools.cache
def _wav() -> bytes:
    return soundfile_bytes(clip())


@functools.cache
def _mp3() -> bytes:
    return pyav_bytes("mp3", [mono(clip(), "libmp3lame")])


@functools.cache
def _m4a() -> bytes:
    """AAC in M4A as FFmpeg writes it by default: the index (moov) after the audio (mdat)."""
    return pyav_bytes("ipod", [mono(clip(), "aac")])


def _stereo(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    return np.stack([left, right], axis=1)


def _float_with(value: float) -> bytes:
    """The clip as a 32-bit float WAV with ``value`` in its first sample and in every 1000th after."""
    samples = clip().copy()
    samples[::1000] = value
    return soundfile_bytes(samples, subtype="FLOAT")


def _surround() -> bytes:
    """5.1 at 48 kHz as a film export has it: the voice in the centre, less of it left and right, the rest silent."""
    voice, quiet = clip(), np.zeros_like(clip())
    return pyav_bytes(
        "wav", [Track(np.stack([voice * 0.5, voice * 0.5, voice, quiet, quiet, quiet]), "pcm_s16le", 48_000)]
    )


def _two_tracks(container: str, first: np.ndarray, second: np.ndarray, codec: str) -> bytes:
    return pyav_bytes(container, [mono(first, codec), mono(second, codec)], video_s=seconds(first))


Maker = Callable[[Path], Path]  # given the path the case should have, create it; return the path to use
Length = Callable[[float], tuple[float, float]]  # the reference clip's length -> bounds of a decoded length


def _bytes(make: Callable[[], bytes]) -> Maker:
    def write(path: Path) -> Path:
        path.write_bytes(make())
        return path

    return write


def _nothing(path: Path) -> Path:
    return path


def _folder(path: Path) -> Path:
    path.mkdir()
    return path


def _broken_link(path: Path) -> Path:
    path.symlink_to(path.with_name("moved-away.wav"))
    return path


def _dev_null(path: Path) -> Path:
    return Path(os.devnull)


@dataclasses.dataclass(frozen=True)
class Bad:
    """An input the CLI must refuse, and the words its message must (and must not) contain."""

    name: str
    make: Maker
    says: tuple[str, ...]
    not_says: tuple[str, ...] = ()

    def __str__(self) -> str:
        return self.name


@dataclasses.dataclass(frozen=True)
class Good:
    """An input that must be transcribed, what its decoded length must be, and whether it holds speech.

    ``duration_s``: the decoded length's bounds, given the length of the reference clip (3.7 s of speech).
    ``speech``: True (speech is found), False (nothing is, and the model is never called) or None (either).
    ``like_clip``: the decoded samples must follow the reference clip's waveform (lossless inputs).
    """

    name: str
    make: Maker
    duration_s: Length
    speech: bool | None = True
    like_clip: bool = False

    def __str__(self) -> str:
        return self.name


def _about(value: float, tolerance: float = 0.05) -> tuple[float, float]:
    return (value - tolerance, value + tolerance)


def _the_clip(d: float) -> tuple[float, float]:
    return _about(d)


def _half_the_clip(d: float) -> tuple[float, float]:
    return (0.35 * d, 0.65 * d)


NOT_AUDIO = ("is not an audio or video file", "Choose a recording such as WAV, MP3")
DAMAGED = ("truncated or damaged", "downloading it again")

BAD = [
    Bad("empty.wav", _bytes(lambda: b""), ("is empty (0 bytes)", "Choose a recording such as WAV")),
    # A download that stopped after 3 bytes: b"ID3", the start of the MP3's tag, is not a text file.
    Bad("first-3-bytes.mp3", _bytes(lambda: _mp3()[:3]), DAMAGED, not_says=("text file",)),
    Bad("three-binary-bytes.wav", _bytes(lambda: b"\x00\xff\x7f"), ("could not be read as audio", *DAMAGED)),
    *(Bad(f"notes{ext}", _bytes(text), (*NOT_AUDIO, "looks like a text file")) for ext in (".mp3", ".wav", ".m4a")),
    *(Bad(f"photo{ext}", _bytes(png), (*NOT_AUDIO, "looks like a PNG image")) for ext in (".mp3", ".wav", ".m4a")),
    *(Bad(f"invoice{ext}", _bytes(pdf), (*NOT_AUDIO, "looks like a PDF document")) for ext in (".mp3", ".wav", ".m4a")),
    *(
        Bad(f"zipped{ext}", _bytes(zip_archive), (*NOT_AUDIO, "looks like a ZIP archive"))
        for ext in (".mp3", ".wav", ".m4a")
    ),
    Bad("download-error-page.mp3", _bytes(html_error_page), (*NOT_AUDIO, "looks like a text file")),
    # Windows tools write text with a byte-order mark: Notepad (UTF-8), PowerShell 5 redirection (UTF-16).
    Bad("notes-utf8-bom.m4a", _bytes(lambda: text_with_bom("utf-8-sig")), (*NOT_AUDIO, "looks like a text file")),
    Bad("notes-utf16.wav", _bytes(lambda: text_with_bom("utf-16")), (*NOT_AUDIO, "looks like a text file")),
    Bad("random-bytes.wav", _bytes(random_bytes), ("could not be read as audio or video", "not a media file at all")),
    Bad("truncated-half.m4a", _bytes(lambda: truncated(_m4a())), ("could not be read as audio or video", *DAMAGED)),
    Bad("wav-header-only.wav", _bytes(lambda: _wav()[:44]), ("contains no audio samples", "Record or export it again")),
    Bad("wav-sample-rate-0.wav", _bytes(lambda: wav_with_fields(_wav(), sample_rate=0)), DAMAGED),
    Bad(
        "wav-0-channels.wav",
        _bytes(lambda: wav_with_fields(_wav(), channels=0)),
        ("No audio could be decoded", *DAMAGED),
    ),
    Bad(
        "video-without-audio.mp4",
        _bytes(lambda: pyav_bytes("mp4", [], video_s=3.0)),
        ("has no audio track", "Choose a video with sound"),
    ),
    Bad("does-not-exist.wav", _nothing, ("File not found", "Check the path")),
    Bad("a-folder.mp3", _folder, ("is a folder, not a file", "Give the path of an audio or video file")),
    Bad("broken-link.wav", _broken_link, ("File not found", "Check the path")),
    Bad("dev-null", _dev_null, ("is empty (0 bytes)", "Choose a recording such as WAV")),
]

NAMES = (
    'Interview "Q3" – Zoë 会议.wav',
    'Interview "Q3" – Zoë 会议.mp3',
    "it's  two  spaces .flac",
    "take 2 🎙 (final).opus",
)

GOOD = [
    Good("truncated-half.mp3", _bytes(lambda: truncated(_mp3())), _half_the_clip),
    Good(
        "truncated-half-faststart.m4a",
        _bytes(lambda: truncated(pyav_bytes("ipod", [mono(clip(), "aac")], options={"movflags": "faststart"}))),
        _half_the_clip,
    ),
    Good("truncated-half.flac", _bytes(lambda: truncated(soundfile_bytes(clip(), format="FLAC"))), _half_the_clip),
    Good(
        "wav-claims-10x-more-data.wav",
        _bytes(lambda: wav_with_fields(_wav(), data_size=10 * wav_data_size(_wav()), riff_size=10 * len(_wav()))),
        _the_clip,
        like_clip=True,
    ),
    # A recorder that crashed before it could write the sizes into the header.
    Good(
        "wav-unfinished-header.wav",
        _bytes(lambda: wav_with_fields(_wav(), data_size=0, riff_size=0)),
        _the_clip,
        like_clip=True,
    ),
    # 16 kHz samples under a header that says otherwise: the header wins (slower or faster speech).
    Good(
        "wav-says-8000-is-16000.wav",
        _bytes(lambda: wav_with_fields(_wav(), sample_rate=8_000)),
        lambda d: _about(2 * d),
    ),
    Good(
        "wav-says-32000-is-16000.wav",
        _bytes(lambda: wav_with_fields(_wav(), sample_rate=32_000)),
        lambda d: _about(d / 2),
    ),
    Good("pcm-8-bit.wav", _bytes(lambda: soundfile_bytes(clip(), subtype="PCM_U8")), _the_clip, like_clip=True),
    Good("pcm-24-bit.wav", _bytes(lambda: soundfile_bytes(clip(), subtype="PCM_24")), _the_clip, like_clip=True),
    Good("float-32-bit.wav", _bytes(lambda: soundfile_bytes(clip(), subtype="FLOAT")), _the_clip, like_clip=True),
    Good("float-64-bit.wav", _bytes(lambda: soundfile_bytes(clip(), subtype="DOUBLE")), _the_clip, like_clip=True),
    Good(
        "telephone-8k-mulaw.wav",
        _bytes(lambda: pyav_bytes("wav", [mono(telephone_band(clip()), "pcm_mulaw", 8_000)])),
        _the_clip,
    ),
    Good(
        "studio-96k-24-bit.flac",
        _bytes(lambda: soundfile_bytes(clip(), rate=96_000, format="FLAC", subtype="PCM_24")),
        _the_clip,
        like_clip=True,
    ),
    Good("surround-5.1-48k.wav", _bytes(_surround), _the_clip, like_clip=True),
    Good(
        "stereo-dead-right-channel.wav",
        _bytes(lambda: soundfile_bytes(_stereo(clip(), 0 * clip()), rate=44_100)),
        _the_clip,
        like_clip=True,
    ),
    # One channel wired with its polarity reversed: both sound fine, but their average is silence.
    Good(
        "stereo-right-channel-inverted.wav",
        _bytes(lambda: soundfile_bytes(_stereo(clip(), -clip()), rate=44_100)),
        _the_clip,
    ),
    Good("dc-offset.wav", _bytes(lambda: soundfile_bytes(0.5 * clip() + 0.4)), _the_clip, like_clip=True),
    Good("clipped-26dB-too-loud.wav", _bytes(lambda: soundfile_bytes(np.clip(20 * clip(), -1, 1))), _the_clip),
    Good("quiet-minus-40dB.wav", _bytes(lambda: soundfile_bytes(0.01 * clip())), _the_clip, like_clip=True),
    Good(
        "float-unnormalised-x50.wav",
        _bytes(lambda: soundfile_bytes(50 * clip(), subtype="FLOAT")),
        _the_clip,
        like_clip=True,
    ),
    # A broken effect or export can leave NaN or infinite samples in a float file; the speech is still there.
    Good("float-with-nan.wav", _bytes(lambda: _float_with(np.nan)), _the_clip),
    Good("float-with-infinity.wav", _bytes(lambda: _float_with(np.inf)), _the_clip),
    Good(
        "white-noise-full-scale.wav",
        _bytes(lambda: soundfile_bytes(white_noise(10.0))),
        lambda d: _about(10.0),
        speech=None,
    ),
    Good(
        "one-sample.wav",
        _bytes(lambda: soundfile_bytes(clip()[8000:8001])),
        lambda d: _about(1 / SAMPLE_RATE, 1e-4),
        speech=False,
    ),
    Good("50-ms.wav", _bytes(lambda: soundfile_bytes(clip()[8000:8800])), lambda d: _about(0.05, 1e-3), speech=False),
    Good("rifx-big-endian.wav", _bytes(lambda: soundfile_bytes(clip(), endian="BIG")), _the_clip, like_clip=True),
    Good("recording.aiff", _bytes(lambda: soundfile_bytes(clip(), format="AIFF")), _the_clip, like_clip=True),
    Good("wav-with-odd-list-chunk.wav", _bytes(lambda: wav_with_list_chunk(_wav())), _the_clip, like_clip=True),
    Good("really-an-mp3.wav", _bytes(_mp3), _the_clip),
    # MP3 frames carry no timestamps: the demuxer skips the damaged bytes, so the audio gets shorter.
    Good("damaged-middle.mp3", _bytes(lambda: overwritten(_mp3(), 0.4, 0.5)), lambda d: (0.8 * d, d + 0.05)),
    Good("damaged-middle.m4a", _bytes(lambda: overwritten(_m4a(), 0.4, 0.5)), _the_clip),  # packets -> silence
    Good(
        "lead-silence-60s.m4a",
        _bytes(lambda: pyav_bytes("ipod", [mono(np.concatenate([silence(60.0), clip()]), "aac")])),
        lambda d: _about(60 + d),
    ),
    # Just past audio.SPILL_AFTER_S, so the decoded samples also take the memory-mapped path.
    Good(
        "silence-10-min.wav", lambda path: sparse_silent_wav(path, 600.5), lambda d: _about(600.5, 0.01), speech=False
    ),
    Good(
        "nonstop-speech-2-min.flac",
        _bytes(lambda: soundfile_bytes(nonstop_speech(120.0), format="FLAC")),
        lambda d: _about(seconds(nonstop_speech(120.0)), 0.01),
    ),
    # Two audio tracks: the first is used. Speech first and noise second, then silence first and speech second.
    Good(
        "video-two-audio-tracks.mp4",
        _bytes(lambda: _two_tracks("mp4", clip(), white_noise(9.0, level=0.3), "aac")),
        _the_clip,
    ),
    Good(
        "video-two-audio-tracks-first-silent.mkv",
        _bytes(lambda: _two_tracks("matroska", silence(9.0), clip(), "flac")),
        lambda d: _about(9.0),
        speech=False,
    ),
    Good(NAMES[0], _bytes(_wav), _the_clip, like_clip=True),
    Good(NAMES[1], _bytes(_mp3), _the_clip),
    Good(NAMES[2], _bytes(lambda: soundfile_bytes(clip(), format="FLAC")), _the_clip, like_clip=True),
    Good(NAMES[3], _bytes(lambda: pyav_bytes("ogg", [mono(clip(), "libopus", 48_000)])), _the_clip),
]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, Path]:
    """Every input of the corpus on disk, by case name (made once for the module)."""
    folder = tmp_path_factory.mktemp("corpus")
    (folder / "bad").mkdir()
    (folder / "good").mkdir()
    paths = {case.name: case.make(folder / "bad" / case.name) for case in BAD}
    paths.update({case.name: case.make(folder / "good" / case.name) for case in GOOD})
    paths["control.wav"] = _bytes(_wav)(folder / "bad" / "control.wav")
    return paths


@pytest.fixture(scope="module", autouse=True)
def quick_tiny_model():
    """Cap generation at MAX_NEW_TOKENS for every engine of this module (the CLI's and the fixture's), on one
    torch thread: the tiny model's matrices are so small that on two shared, busy cores a second thread makes
    each step 30 times slower, not faster (the same reason as in ``vad._one_torch_thread``)."""
    import torch

    from asr.engine import QwenEngine

    generate = QwenEngine.transcribe_chunks

    def capped(self, chunks, *, max_new_tokens: list[int], **kwargs):
        return generate(self, chunks, max_new_tokens=[min(n, MAX_NEW_TOKENS) for n in max_new_tokens], **kwargs)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(QwenEngine, "transcribe_chunks", capped)
            yield
    finally:
        torch.set_num_threads(threads)


# --- running things under a time limit ----------------------------------------------------------------------


def _within(limit_s: float, function: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, float]:
    """Call ``function`` in a thread; fail if it has not finished after ``limit_s`` (a hanging decoder).

    Returns its result and the seconds it took; re-raises what it raised.
    """
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = function(*args, **kwargs)
        except BaseException as error:  # handed to the caller below
            outcome["error"] = error

    worker = threading.Thread(target=run, name=f"guarded-{function.__name__}", daemon=True)
    started = time.perf_counter()
    worker.start()
    worker.join(limit_s)
    elapsed = time.perf_counter() - started
    assert not worker.is_alive(), f"{function.__name__} was still running after {limit_s:.0f} s: it hangs"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"], elapsed


@dataclasses.dataclass
class CliRun:
    code: int
    out: str
    err: str
    elapsed_s: float
    output_dir: Path

    def error_line(self, path: Path) -> str:
        """The one line of stderr that reports ``path``'s failure."""
        lines = [line for line in self.err.splitlines() if line.startswith(f"{path}: error: ")]
        assert len(lines) == 1, f"expected one error line for {path}, got {lines}\n{self.err}"
        return lines[0]


def _run_cli(argv: list[str], output_dir: Path) -> CliRun:
    """``python -m asr ...`` in this process, output captured, under CLI_LIMIT_S."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code, elapsed = _within(CLI_LIMIT_S, main, argv)
    return CliRun(code, out.getvalue(), err.getvalue(), elapsed, output_dir)


class _Spy:
    """The engine, counting what the pipeline asks of it (the durations of the chunks it is given)."""

    def __init__(self, engine) -> None:
        self._engine = engine
        self.name = engine.name
        self.default_batch_size = engine.default_batch_size
        self.chunks_s: list[float] = []

    def transcribe_chunks(self, chunks, **kwargs):
        self.chunks_s.extend(len(chunk) / SAMPLE_RATE for chunk in chunks)
        return self._engine.transcribe_chunks(chunks, **kwargs)


# --- bad inputs: each fails alone, with a message that says what is wrong and what to do --------------------


@pytest.fixture(scope="module")
def bad_run(corpus, tiny_model_dir, tmp_path_factory) -> CliRun:
    """One CLI run over every bad input, with a good file in the middle."""
    output_dir = tmp_path_factory.mktemp("bad-out")
    files = [str(corpus[case.name]) for case in BAD]
    files.insert(len(files) // 2, str(corpus["control.wav"]))
    argv = ["transcribe", *files, "--model", str(tiny_model_dir), "--output-dir", str(output_dir)]
    return _run_cli(argv, output_dir)


def test_bad_inputs_do_not_stop_the_others(bad_run: CliRun) -> None:
    assert bad_run.code == 1, bad_run.err
    assert "Traceback" not in bad_run.err and "Traceback" not in bad_run.out
    assert bad_run.err.count(": error: ") == len(BAD)
    assert (bad_run.output_dir / "control.txt").read_text(encoding="utf-8").strip()  # the good file got its text
    assert sorted(p.name for p in bad_run.output_dir.iterdir()) == ["control.txt"]  # and nothing else was written


@pytest.mark.parametrize("case", BAD, ids=str)
def test_bad_input_is_refused_with_a_clear_message(case: Bad, corpus, bad_run: CliRun) -> None:
    path = corpus[case.name]
    line = bad_run.error_line(path)
    for words in case.says:
        assert words in line, f"{words!r} missing from: {line}"
    for words in case.not_says:
        assert words not in line, f"{words!r} should not be in: {line}"

    with pytest.raises(asr.AudioDecodeError) as caught:
        _within(DECODE_LIMIT_S, asr.decode_audio, path)
    assert line == f"{path}: error: {caught.value}"


# --- good inputs: a sane transcript from the CLI and from the library -----------------------------------------


@pytest.fixture(scope="module")
def good_run(corpus, tiny_model_dir, tmp_path_factory) -> CliRun:
    """One CLI run over every good input, writing every format."""
    output_dir = tmp_path_factory.mktemp("good-out")
    files = [str(corpus[case.name]) for case in GOOD]
    argv = ["transcribe", *files, "--model", str(tiny_model_dir), "--format", "all", "--output-dir", str(output_dir)]
    return _run_cli(argv, output_dir)


@pytest.fixture(scope="module")
def library(corpus, engine) -> Callable[[str], tuple[asr.Transcript, _Spy, float]]:
    """``transcribe_all`` of one good input under a time limit, run once per input and kept."""

    @functools.cache
    def run(name: str) -> tuple[asr.Transcript, _Spy, float]:
        spy = _Spy(engine)
        transcript, elapsed = _within(TRANSCRIBE_LIMIT_S, asr.transcribe_all, corpus[name], engine=spy)
        return transcript, spy, elapsed

    return run


def _json_output(run: CliRun, path: Path) -> dict[str, Any]:
    stems = [Path(case.name).stem for case in GOOD]
    base = path.name if stems.count(path.stem) > 1 else path.stem
    return json.loads((run.output_dir / f"{base}.json").read_text(encoding="utf-8"))


def _check_timeline(spans: list[tuple[float, float]], duration_s: float) -> None:
    """Segments in time order, not overlapping, each non-empty and inside the audio."""
    previous_end = 0.0
    for start, end in spans:
        assert previous_end - 1e-3 <= start < end <= duration_s + 1e-3, (spans, duration_s)
        previous_end = end


def test_good_inputs_are_all_transcribed(good_run: CliRun) -> None:
    assert good_run.code == 0, good_run.err
    assert "Traceback" not in good_run.err and ": error: " not in good_run.err
    assert good_run.err.count(": wrote ") == len(asr.FORMATS) * len(GOOD)


@pytest.mark.parametrize("case", GOOD, ids=str)
def test_unusual_input_gives_a_sane_transcript(case: Good, corpus, good_run: CliRun, library) -> None:
    path = corpus[case.name]
    low, high = case.duration_s(seconds(clip()))

    decoded, _ = _within(DECODE_LIMIT_S, asr.decode_audio, path)
    assert low <= decoded.source.duration_s <= high
    assert np.isfinite(decoded.samples).all(), "NaN or infinite samples reach VAD and the model"
    if case.like_clip:
        reference = clip()[: len(decoded.samples)]
        assert np.corrcoef(decoded.samples[: len(reference)], reference)[0, 1] > 0.99, "the speech did not survive"

    # The CLI's JSON output.
    document = _json_output(good_run, path)
    info = document["info"]
    assert low <= info["duration_s"] <= high
    _check_timeline([(s["start_s"], s["end_s"]) for s in document["segments"]], info["duration_s"])
    if case.speech is not None:
        silent = not case.speech
        assert (info["notes"] == [NO_SPEECH]) == silent, f"speech expected: {case.speech}, notes: {info['notes']}"
        assert (f"{path}: {NO_SPEECH}" in good_run.err) == silent
        assert (document["segments"] == []) == silent

    # The library.
    transcript, spy, _ = library(case.name)
    assert low <= transcript.info.duration_s <= high
    _check_timeline([(s.start_s, s.end_s) for s in transcript.segments], transcript.info.duration_s)
    assert all(chunk <= transcript.info.options.max_chunk_s for chunk in spy.chunks_s)
    if case.speech is True:
        assert transcript.segments and spy.chunks_s and not transcript.info.notes
    elif case.speech is False:
        assert transcript.segments == () and transcript.text == ""
        assert transcript.info.notes == (NO_SPEECH,)
        assert spy.chunks_s == [], "the model was called on silence"


def test_ten_minutes_of_silence_are_fast_and_never_reach_the_model(library) -> None:
    transcript, spy, elapsed = library("silence-10-min.wav")
    assert spy.chunks_s == [] and transcript.info.notes == (NO_SPEECH,) and transcript.text == ""
    assert elapsed < SILENCE_LIMIT_S
    assert tempfiles.leftover_workdirs() == []  # the spilled samples went with their folder


def test_speech_after_a_minute_of_silence_keeps_its_time(library) -> None:
    transcript, spy, _ = library("lead-silence-60s.m4a")
    assert transcript.segments and transcript.segments[0].start_s > 59.0
    assert sum(spy.chunks_s) < seconds(clip()) + 1.0  # the silence was not sent to the model as speech


def test_two_minutes_without_a_pause_are_still_cut_into_chunks(library) -> None:
    transcript, spy, _ = library("nonstop-speech-2-min.flac")
    limit = transcript.info.options.max_chunk_s
    assert len(spy.chunks_s) >= 5
    assert all(chunk <= limit for chunk in spy.chunks_s), spy.chunks_s
    assert all(s.end_s - s.start_s <= limit for s in transcript.segments)
    assert all(a.end_s == b.start_s for a, b in itertools.pairwise(transcript.segments))  # no speech dropped at cuts


def test_the_first_of_two_audio_tracks_is_used(library) -> None:
    """Speech first, noise second: the speech's length; silence first, speech second: no speech at all."""
    speech_first, _, _ = library("video-two-audio-tracks.mp4")
    assert speech_first.info.duration_s == pytest.approx(seconds(clip()), abs=0.05) and speech_first.segments
    silent_first, spy, _ = library("video-two-audio-tracks-first-silent.mkv")
    assert silent_first.info.duration_s == pytest.approx(9.0, abs=0.05)
    assert silent_first.info.notes == (NO_SPEECH,) and spy.chunks_s == []


def test_odd_file_names_get_their_own_outputs_side_by_side(corpus, good_run: CliRun) -> None:
    """Quotes, spaces, a dash, CJK and an emoji survive; two inputs with one stem keep their suffixes."""
    stem = Path(NAMES[0]).stem
    expected = {
        NAMES[0]: f"{NAMES[0]}.",  # 'Interview "Q3" – Zoë 会议.wav.json': the stem is shared with the .mp3
        NAMES[1]: f"{NAMES[1]}.",
        NAMES[2]: f"{Path(NAMES[2]).stem}.",
        NAMES[3]: f"{Path(NAMES[3]).stem}.",
    }
    written = {p.name for p in good_run.output_dir.iterdir()}
    for name, base in expected.items():
        outputs = {f"{base}{fmt}" for fmt in asr.FORMATS}
        assert outputs <= written, (name, sorted(written))
        for output in outputs:
            assert f"{corpus[name]}: wrote {good_run.output_dir / output}" in good_run.err
    assert f"{stem}.json" not in written  # neither overwrote the other under the shared stem
    sources = [_json_output(good_run, corpus[name])["info"]["source"] for name in NAMES[:2]]
    assert [source["codec"] for source in sources] == ["pcm_s16le", "mp3"]  # each holds its own input's transcript


# --- shorter chunks for a short file ------------------------------------------------------------------------


class _TextsByAudio:
    """The engine, keeping each chunk's text under the exact audio the model heard."""

    def __init__(self, engine) -> None:
        self._engine = engine
        self.name = engine.name
        self.default_batch_size = engine.default_batch_size
        self.device = engine.device
        self.texts: dict[bytes, str] = {}

    def transcribe_chunks(self, chunks, **kwargs):
        results = self._engine.transcribe_chunks(chunks, **kwargs)
        for chunk, result in zip(chunks, results, strict=True):
            self.texts[np.asarray(chunk, np.float32).tobytes()] = result.text  # a retry replaces the first try
        return results

    def fall_back_to_cpu(self) -> str | None:
        return None  # the tiny model runs on the CPU already


def _silent(samples: np.ndarray, level: float) -> bool:
    """Quieter than 2 % of `level` (the RMS of the whole file), or empty."""
    return samples.size == 0 or float(np.sqrt(np.mean(samples.astype(np.float64) ** 2))) < 0.02 * level


def test_shorter_chunks_change_the_text_only_where_the_cuts_differ(engine) -> None:
    """A short file is cut into more, shorter chunks than the 24 s ones. A chunk cut the same in both runs keeps
    its text, whatever its neighbours in the batch; every other chunk is a stretch of a longer chunk's audio that
    begins and ends in silence (a pause, never inside a word), so the texts differ only where the cuts do."""
    s0, s1, s2, s3, s4 = SENTENCES
    samples, _ = speech_with_pauses((s0, s1, s2, s3, s4, s0), (0.6, 0.6, 3.0, 3.0, 0.6))
    long, short = _TextsByAudio(engine), _TextsByAudio(engine)
    asr.transcribe_all(samples, engine=long, options=asr.TranscribeOptions(min_chunk_s=24.0))  # the 24 s chunks
    asr.transcribe_all(samples, engine=short)
    assert len(short.texts) > len(long.texts) >= 3

    shared = short.texts.keys() & long.texts.keys()
    assert len(shared) >= 2  # the first chunk, and the sentence between two long pauses (a cut in both runs)
    assert all(short.texts[audio] == long.texts[audio] for audio in shared)
    assert any(short.texts[audio] for audio in shared)  # an empty text would prove nothing

    level = float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))
    edge = SAMPLE_RATE // 20  # 50 ms on each side of a cut
    for audio in short.texts.keys() - shared:
        holders = [(longer, longer.find(audio)) for longer in long.texts if longer.find(audio) % 4 == 0]
        assert len(holders) == 1, "a shorter chunk is not a stretch of exactly one longer chunk's audio"
        whole = np.frombuffer(holders[0][0], np.float32)
        start = holders[0][1] // 4
        end = start + len(audio) // 4
        for near_cut in (whole[max(0, start - edge) : start + edge], whole[end - edge : end + edge]):
            assert _silent(near_cut, level), "a chunk was cut where there is speech"


# --- a configured maximum length --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, limit_s, length",
    [
        ("silence-10-min.wav", 300, r"is (0:)?10:00 long, more than the limit of (0:0)?5:00 \(max_duration_s=300\)"),
        ("lead-silence-60s.m4a", 30, r"is (0:0)?1:04 long, more than the limit of 30\.0 s \(max_duration_s=30\)"),
        (
            "nonstop-speech-2-min.flac",
            90.5,
            r"is (0:0)?2:\d\d long, more than the limit of (0:0)?1:30 \(max_duration_s=90\.5\)",
        ),
    ],
)
def test_input_over_the_maximum_length_is_refused_before_any_work(name, limit_s, length, corpus, engine) -> None:
    spy = _Spy(engine)
    options = asr.TranscribeOptions(max_duration_s=limit_s)
    started = time.perf_counter()
    with pytest.raises(asr.AudioDecodeError) as caught:
        _within(DECODE_LIMIT_S, asr.transcribe_all, corpus[name], engine=spy, options=options)
    assert time.perf_counter() - started < 5.0  # the header's length is enough: nothing is decoded
    message = str(caught.value)
    assert re.search(length, message), message
    assert message.endswith("Split it into shorter parts or raise the limit.")
    assert spy.chunks_s == []


# --- `python -m asr info` on the whole corpus -------------------------------------------------------------


def test_info_describes_or_refuses_every_input_without_a_traceback(corpus, tmp_path) -> None:
    bad = [corpus[case.name] for case in BAD]
    good = [corpus[case.name] for case in GOOD]
    run = _run_cli(["info", *map(str, bad + good)], tmp_path)
    assert run.code == 1 and "Traceback" not in run.err
    for path in bad:
        assert run.err.count(f"{path}: error: ") == 1, path
    for path in good:
        assert sum(line.startswith(f"{path}: ") for line in run.out.splitlines()) == 1, path
