"""What the transcribing commands (transcribe, batch, live) share: their arguments, the options and layout
those become, loading the models, writing to stdout; and what every command shares: the program's name, the
one-line error messages and the exit codes."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from . import hub, writers
from .errors import ModelNotFoundError, OptionsError
from .options import (
    CHINESE_SCRIPTS,
    LANGUAGES,
    MAX_SPEAKERS,
    DecodeOptions,
    SpeakerOptions,
    TranscribeOptions,
    normalize_language,
)
from .writers import DEFAULT_LAYOUT, SubtitleLayout

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def program() -> str:
    """How the user started us, for usage lines and errors: the `asr` command, or `python -m asr`."""
    return "asr" if Path(sys.argv[0]).stem == "asr" else "python -m asr"


def usage_error(error: Exception) -> int:
    """A bad command line's one-line message, worded as argparse words its own; returns the exit code."""
    print(f"{program()}: error: {error}", file=sys.stderr)
    return EXIT_USAGE


def command_failed(error: Exception) -> int:
    """What stopped a command (the model, the microphone, the cluster...) in one line; returns the exit code."""
    print(f"error: {error}", file=sys.stderr)
    return EXIT_FAILED


def add_transcription_arguments(parser: argparse.ArgumentParser, *, files: bool = True) -> None:
    """The model, language and output arguments that every transcribing command takes (`files`: and batching)."""
    parser.add_argument("--model", help=f"repo id or folder (default: ${hub.MODEL_ENV} or {hub.DEFAULT_MODEL})")
    parser.add_argument("--language", default="auto", help="auto, or a code or name: " + ", ".join(LANGUAGES))
    parser.add_argument("--context", default="", help="names and jargon the speakers use")
    parser.add_argument(
        "--chinese-script", default="auto", choices=CHINESE_SCRIPTS, help="write Chinese and Cantonese in this script"
    )
    parser.add_argument("--format", default="txt", choices=[*writers.FORMATS, "all"])
    parser.add_argument("--output-dir", type=Path, default=Path("."), help="where to write results; '-' for stdout")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    parser.add_argument("--dtype", default="auto", choices=["auto", "bfloat16", "float16", "float32"])
    if files:
        parser.add_argument("--batch-size", type=int, help="chunks per model call (default: by device)")
        parser.add_argument("--max-duration", type=float, metavar="SECONDS", help="refuse longer files (default: none)")
    else:
        parser.set_defaults(batch_size=None, max_duration=None)
    parser.add_argument(
        "--word-timestamps",
        action="store_true",
        help="time every word with the forced aligner (a second download: python -m asr download --model "
        f"{hub.DEFAULT_ALIGNER}); subtitles then follow the voice",
    )
    parser.add_argument(
        "--aligner",
        metavar="ID_OR_DIR",
        help=f"forced aligner repo id or folder (default: ${hub.ALIGNER_ENV} or {hub.DEFAULT_ALIGNER})",
    )
    parser.add_argument(
        "--speakers",
        metavar="auto|N",
        help=f"label who speaks: auto finds the count (1 to {MAX_SPEAKERS}), N forces it (default: off)",
    )
    parser.add_argument("--min-speakers", type=int, metavar="N", help="with --speakers auto: at least N speakers")
    parser.add_argument("--max-speakers", type=int, metavar="N", help="with --speakers auto: at most N speakers")
    parser.add_argument(
        "--speaker-names", default="", metavar="NAMES", help='names in order of first appearance, e.g. "Alice,Bob"'
    )
    parser.add_argument("--max-line-width", type=int, default=DEFAULT_LAYOUT.max_line_width, help="subtitle columns")
    parser.add_argument("--max-line-count", type=int, default=DEFAULT_LAYOUT.max_line_count, help="lines per subtitle")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens (never audio or text)")


def chosen_formats(args: argparse.Namespace) -> tuple[str, ...]:
    """--format: one format, or every one for "all"."""
    return writers.FORMATS if args.format == "all" else (args.format,)


def transcribe_options(args: argparse.Namespace) -> TranscribeOptions:
    """Command-line strings -> validated options (raises OptionsError)."""
    options = TranscribeOptions(
        decode=DecodeOptions(
            language=normalize_language(args.language), context=args.context, batch_size=args.batch_size
        ),
        max_duration_s=args.max_duration,
        chinese_script=args.chinese_script,
        speakers=_speaker_options(args),
    )
    options.validate()
    return options


def _speaker_options(args: argparse.Namespace) -> SpeakerOptions | None:
    """--speakers and its companions -> options; None when speakers are off (raises OptionsError)."""
    if args.speakers is None:
        if args.min_speakers is not None or args.max_speakers is not None or args.speaker_names:
            raise OptionsError("--min-speakers, --max-speakers and --speaker-names need --speakers (e.g. auto).")
        return None
    return SpeakerOptions.parse(args.speakers, args.min_speakers, args.max_speakers, args.speaker_names)


def subtitle_layout(args: argparse.Namespace) -> SubtitleLayout:
    """Subtitle flags -> a validated layout (raises OptionsError)."""
    layout = SubtitleLayout(max_line_width=args.max_line_width, max_line_count=args.max_line_count)
    layout.validate()
    if args.aligner and not args.word_timestamps:
        raise OptionsError("--aligner chooses the aligner for --word-timestamps; add --word-timestamps.")
    return layout


def aligner_wanted(args: argparse.Namespace) -> str | None:
    """The forced aligner to load for --word-timestamps; None without the flag, or (with a note) when it is not
    on this computer yet: word times are then estimated, and the transcripts say so."""
    if not args.word_timestamps:
        return None
    aligner = args.aligner or os.environ.get(hub.ALIGNER_ENV) or hub.DEFAULT_ALIGNER
    try:
        hub.locate_model(aligner, env=hub.ALIGNER_ENV)
    except ModelNotFoundError as e:
        print(f"note: {e} Until then, word times are estimated from the speech found.", file=sys.stderr)
        return None
    return aligner


def load_aligner(args: argparse.Namespace, device: str):
    """The loaded forced aligner for --word-timestamps, or None (see `aligner_wanted`)."""
    aligner = aligner_wanted(args)
    if aligner is None:
        return None
    from .aligner import QwenAligner

    return QwenAligner.load(aligner, device=device)


def write_stdout(content: str | bytes) -> None:
    """Text to stdout; DOCX bytes as they are (``--format docx --output-dir - > notes.docx``)."""
    if isinstance(content, str):
        sys.stdout.write(content)
        return
    sys.stdout.flush()  # text written before goes out first
    sys.stdout.buffer.write(content)
    sys.stdout.buffer.flush()


def load_models(args: argparse.Namespace):
    """The engine and (for --word-timestamps) the aligner; loads torch, so only once the command line is good."""
    from .engine import QwenEngine, show_loading_bars

    show_loading_bars(args.verbose)
    engine = QwenEngine.load(
        args.model or os.environ.get(hub.MODEL_ENV) or hub.DEFAULT_MODEL, device=args.device, dtype=args.dtype
    )
    return engine, load_aligner(args, args.device)
