"""`python -m asr live`'s side of a session: where the audio comes from, and how the text is shown.

The audio comes from the default microphone (`sounddevice`, which needs PortAudio: its macOS and Windows
wheels carry it, Debian and Ubuntu need ``libportaudio2``), or from a file played in real time through
the same path, 100 ms at a time, which is how the command is tested. On a terminal the draft is shown in
place, in grey, and each final replaces it as a line with its time; elsewhere only finals are printed.
"""

from __future__ import annotations

import json
import queue
import shutil
import sys
import time
from collections.abc import Callable, Generator
from pathlib import Path
from typing import TextIO

import numpy as np

from .. import writers
from ..audio import SAMPLE_RATE, decode_audio
from ..cues import SubtitleLayout
from ..errors import ASRError, AudioDeviceError
from ..progress import Stage, StageProgress
from ..results import Transcript, format_clock
from .options import LiveEvent, LiveEventType
from .session import LiveSession

PIECE_S = 0.1  # what a microphone callback delivers at a time
_GREY, _RESET, _CLEAR_LINE = "\x1b[90m", "\x1b[0m", "\r\x1b[K"

Pieces = Generator[tuple[np.ndarray, int], None, None]  # (mono float32 samples, their sample rate)


def file_pieces(path: Path, speed: float = 1.0) -> Pieces:
    """The file's audio in 100 ms pieces, each given when it would have been heard (`speed` times faster)."""
    samples = decode_audio(path).samples
    step = round(PIECE_S * SAMPLE_RATE)
    began = time.monotonic()
    for index, start in enumerate(range(0, len(samples), step)):
        time.sleep(max(0.0, began + index * PIECE_S / speed - time.monotonic()))
        yield samples[start : start + step], SAMPLE_RATE


def open_microphone() -> Pieces:
    """The default microphone, opened: its audio as it comes, at its own rate, until Ctrl-C.

    Raises:
        AudioDeviceError: PortAudio is missing, there is no microphone, or it cannot be opened.
    """
    try:
        import sounddevice
    except (OSError, ImportError) as e:  # OSError: the wheel is there, the PortAudio library is not
        raise AudioDeviceError(
            "The microphone needs PortAudio and sounddevice: on Debian or Ubuntu run sudo apt-get install "
            "libportaudio2, and pip install -r requirements.txt (or use --from-file FILE)."
        ) from e
    try:
        rate = int(sounddevice.query_devices(kind="input")["default_samplerate"])
    except (sounddevice.PortAudioError, ValueError) as e:
        raise AudioDeviceError(
            "No microphone found: plug one in or allow this terminal to use it, or use --from-file FILE."
        ) from e
    heard: queue.Queue[np.ndarray] = queue.Queue()  # unbounded: a slow decode never drops audio
    try:
        stream = sounddevice.InputStream(
            samplerate=rate,
            channels=1,
            dtype="float32",
            blocksize=round(PIECE_S * rate),
            callback=lambda data, *_: heard.put(data[:, 0].copy()),
        )
    except sounddevice.PortAudioError as e:
        raise AudioDeviceError(f"Could not open the microphone ({e}); check the system's sound settings.") from e
    return _recorded(stream, heard, rate)


def _recorded(stream, heard: queue.Queue[np.ndarray], rate: int) -> Pieces:
    with stream:
        while True:
            yield heard.get(), rate


class Display:
    """Prints events: drafts in place (terminals only), finals as timed lines."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._in_place = out.isatty()

    def show(self, event: LiveEvent) -> None:
        if event.type is LiveEventType.DRAFT:
            if self._in_place:
                width = shutil.get_terminal_size().columns - 1
                text = event.text if len(event.text) < width else "…" + event.text[-(width - 2) :]
                self._out.write(f"{_CLEAR_LINE}{_GREY}{text}{_RESET}")
                self._out.flush()
            return
        clear = _CLEAR_LINE if self._in_place else ""
        self._out.write(f"{clear}[{format_clock(event.audio_start_s)}] {event.text}\n")
        self._out.flush()


def run_session(
    session: LiveSession, pieces: Pieces, display: Display, stage: StageProgress | None = None
) -> Transcript:
    """Feed `pieces` to the session and show its events; Ctrl-C (or the end of a file) finishes it.

    `stage` hears of the passes that run after Stop (`LiveSession.finish`), once the last finals are shown.
    """
    try:
        for samples, rate in pieces:
            session.feed(samples, sample_rate=rate)
            for event in session.poll():
                display.show(event)
    except KeyboardInterrupt:
        pass  # Stop: what was heard so far is still finalised below
    except BaseException:
        session.close()
        raise
    finally:
        pieces.close()

    def shown_first(pass_: Stage, share: float) -> None:
        for event in session.poll():
            display.show(event)
        if stage is not None:
            stage(pass_, share)

    transcript = session.finish(stage=shown_first)
    for event in session.poll():
        display.show(event)
    return transcript


def write_outputs(
    transcript: Transcript,
    events: tuple[LiveEvent, ...],
    formats: tuple[str, ...],
    layout: SubtitleLayout,
    name: str,
    output_dir: Path | None,
    write_stdout: Callable[[str | bytes], None],
) -> list[Path]:
    """Write the transcript in each format into `output_dir` (None: with `write_stdout`); JSON gets ``live_events``.

    ``live_events`` lists every draft and final as it was shown, in order (`LiveEvent.as_dict`).
    """
    written = []
    for fmt in formats:
        content = writers.render(transcript, fmt, layout, name=name)
        if fmt == "json":
            document = json.loads(content)
            document["live_events"] = [event.as_dict() for event in events]
            content = json.dumps(document, ensure_ascii=False, indent=2) + "\n"
        if output_dir is None:
            write_stdout(content)
            continue
        output_dir.mkdir(parents=True, exist_ok=True)
        path = output_dir / f"{Path(name).stem}.{fmt}"
        try:
            path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content, "utf-8", newline="")
        except OSError as e:
            raise ASRError(f"Could not write {path}: {e.strerror or e}. Choose another --output-dir.") from e
        written.append(path)
    return written


def display_stream(to_stdout: bool) -> TextIO:
    """Where the live text goes: stdout, unless the transcript itself is written there."""
    return sys.stderr if to_stdout else sys.stdout
