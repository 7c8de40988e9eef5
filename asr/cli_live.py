"""`python -m asr live`: dictation in the terminal, from the microphone or a file played in real time."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .cli_common import (
    EXIT_OK,
    add_transcription_arguments,
    chosen_formats,
    command_failed,
    load_models,
    subtitle_layout,
    transcribe_options,
    usage_error,
    write_stdout,
)
from .errors import ASRError, OptionsError
from .progress import Stage


def add_live_parser(commands) -> None:
    """`live`: the transcribing arguments (without batching) and where the sound comes from."""
    live = commands.add_parser("live", help="dictate: text appears as you speak (the default microphone)")
    live.add_argument("--from-file", type=Path, metavar="FILE", help="play FILE in real time instead of the mic")
    live.add_argument("--speed", type=float, default=1.0, help="play --from-file this many times faster (default: 1)")
    add_transcription_arguments(live, files=False)


def run_live(args: argparse.Namespace) -> int:
    """Dictate until Ctrl-C or the file's end, then write the transcript; the exit code."""
    from .live import LiveOptions, LiveSession, terminal

    try:
        options = LiveOptions(transcribe=transcribe_options(args))
        options.validate()
        layout = subtitle_layout(args)
        if args.speed <= 0:
            raise OptionsError(f"--speed must be positive, got {args.speed}.")
    except OptionsError as e:
        return usage_error(e)
    formats = chosen_formats(args)
    to_stdout = str(args.output_dir) == "-"
    name = args.from_file.name if args.from_file else time.strftime("live-%Y%m%d-%H%M%S")
    try:
        pieces = terminal.file_pieces(args.from_file, args.speed) if args.from_file else terminal.open_microphone()
        engine, aligner = load_models(args)
        session = LiveSession(engine, options=options, aligner=aligner)
        if not args.from_file:
            print("Listening; press Ctrl-C to stop.", file=sys.stderr)
        display = terminal.Display(terminal.display_stream(to_stdout))
        transcript = terminal.run_session(session, pieces, display, stage=_say_stage)
        output_dir = None if to_stdout else args.output_dir
        for written in terminal.write_outputs(
            transcript, session.events, formats, layout, name, output_dir, write_stdout
        ):
            print(f"wrote {written}", file=sys.stderr)
    except ASRError as e:
        return command_failed(e)
    return EXIT_OK


def _say_stage(stage: Stage, share: float) -> None:
    """The pass after Stop that can take a while (--speakers: seconds per minute heard), said once on stderr."""
    if stage is Stage.SPEAKERS and share == 0.0:
        print(f"{stage.words}…", file=sys.stderr)
