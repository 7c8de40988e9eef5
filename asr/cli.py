"""`python -m asr`: transcribe files, show their facts, download a model, or serve the OpenAI-style API.

Messages meant for the user (which file failed and why) are printed to stderr here; library
logging never carries file names, audio or transcript text. Exit codes: 0 all done, 1 some
file or the model failed, 2 bad command line, 130 stopped with Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import NoReturn

from . import batch, hub, writers
from .audio import read_source_info
from .bundle import output_bases
from .errors import ASRError, ModelNotFoundError, OptionsError
from .options import (
    CHINESE_SCRIPTS,
    LANGUAGES,
    MAX_SPEAKERS,
    DecodeOptions,
    SpeakerOptions,
    TranscribeOptions,
    normalize_language,
)
from .pipeline import transcribe
from .results import Transcript, format_clock
from .tempfiles import remove_stale_workdirs
from .writers import DEFAULT_LAYOUT, SubtitleLayout

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error message (the default also prints the whole usage)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def _program() -> str:
    """How the user started us, for usage lines and errors: the `asr` command, or `python -m asr`."""
    return "asr" if Path(sys.argv[0]).stem == "asr" else "python -m asr"


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=_program(), description="Private, local speech-to-text with Qwen3-ASR.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = commands.add_parser("transcribe", help="transcribe audio or video files")
    run.add_argument("files", nargs="+", type=Path, metavar="FILE")
    _add_transcription_arguments(run)

    many = commands.add_parser("batch", help="transcribe many files or folders, resumably, here or on a Ray cluster")
    many.add_argument("inputs", nargs="+", metavar="INPUT", help="files, folders (searched recursively), glob patterns")
    _add_transcription_arguments(many)
    many.add_argument(
        "--ray",
        metavar="auto|local|ADDRESS",
        help="run on Ray: this machine's cluster (auto), "
        "a new one here (local), or the cluster at ADDRESS (default: in this process, no Ray)",
    )
    many.add_argument("--workers", type=int, help="Ray actors, each holding the model (default: 1)")
    many.add_argument("--threads-per-worker", type=int, help="CPU threads of each actor (default: 1)")
    many.add_argument("--gpus-per-worker", type=float, help="GPUs of each actor, e.g. 1 or 0.5 (default: 0)")

    live = commands.add_parser("live", help="dictate: text appears as you speak (the default microphone)")
    live.add_argument("--from-file", type=Path, metavar="FILE", help="play FILE in real time instead of the mic")
    live.add_argument("--speed", type=float, default=1.0, help="play --from-file this many times faster (default: 1)")
    _add_transcription_arguments(live, files=False)

    info = commands.add_parser("info", help="show duration, sample rate, channels, codec and container")
    info.add_argument("files", nargs="+", type=Path, metavar="FILE")

    _add_serve_parser(commands)

    download = commands.add_parser("download", help="download a model (the only command that goes online)")
    download.add_argument("--model", default=hub.DEFAULT_MODEL, help=f"repo id (default: {hub.DEFAULT_MODEL})")
    download.add_argument(
        "--endpoint",
        help=f"{', '.join(hub.DOWNLOAD_SOURCES)} or a hub mirror's URL (default: $HF_ENDPOINT or huggingface.co)",
    )
    return parser


def _add_serve_parser(commands) -> None:
    """`serve`: the OpenAI-compatible endpoint (asr/server/, docs/server.md)."""
    from .server import settings

    serve = commands.add_parser("serve", help="answer OpenAI-style /v1/audio/transcriptions requests on this machine")
    serve.add_argument("--host", default=settings.DEFAULT_HOST, help="address to listen on (default: %(default)s)")
    serve.add_argument(
        "--port", type=int, default=settings.DEFAULT_PORT, help="0 picks a free one (default: %(default)s)"
    )
    serve.add_argument("--model", help=f"repo id or folder (default: ${hub.MODEL_ENV} or {hub.DEFAULT_MODEL})")
    serve.add_argument(
        "--api-key", help=f"require this key as 'Authorization: Bearer KEY' (better: set ${settings.API_KEY_ENV})"
    )
    serve.add_argument("--max-upload-mb", type=float, default=settings.DEFAULT_MAX_UPLOAD_MB, help="request size limit")
    serve.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    serve.add_argument("--dtype", default="auto", choices=["auto", "bfloat16", "float16", "float32"])
    serve.add_argument(
        "--aligner",
        metavar="ID_OR_DIR",
        help=f"forced aligner for word times (default: ${hub.ALIGNER_ENV} or {hub.DEFAULT_ALIGNER})",
    )
    serve.add_argument("-v", "--verbose", action="store_true", help="log each request (never audio, names or text)")


def _run_serve(args: argparse.Namespace) -> int:
    from .server.serve import serve
    from .server.settings import API_KEY_ENV, ServerSettings

    api_key = args.api_key or os.environ.get(API_KEY_ENV) or None
    settings = ServerSettings(host=args.host, port=args.port, api_key=api_key, max_upload_mb=args.max_upload_mb)
    model = args.model or os.environ.get(hub.MODEL_ENV) or hub.DEFAULT_MODEL
    try:
        aligner = args.aligner or os.environ.get(hub.ALIGNER_ENV)
        serve(settings, model, device=args.device, dtype=args.dtype, aligner=aligner)
    except OptionsError as e:
        print(f"python -m asr: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except ASRError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _add_transcription_arguments(parser: argparse.ArgumentParser, *, files: bool = True) -> None:
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


def _options(args: argparse.Namespace) -> TranscribeOptions:
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


def _output_paths(files: list[Path], output_dir: Path, formats: tuple[str, ...]) -> list[dict[str, Path]]:
    """meeting.m4a -> meeting.srt; inputs that share a stem keep their suffix (see `bundle.output_bases`)."""
    bases = output_bases([file.name for file in files])
    return [{fmt: output_dir / f"{base}.{fmt}" for fmt in formats} for base in bases]


def _progress_bar(file: Path):
    """A stderr progress bar counting processed / total audio time."""
    from tqdm import tqdm

    bar = tqdm(
        total=0.0,
        desc=file.name,
        unit="s",
        file=sys.stderr,
        leave=True,
        dynamic_ncols=True,
        bar_format="{desc}: {percentage:3.0f}%|{bar}| {postfix} [{elapsed}<{remaining}]",
    )

    def update(processed_s: float, total_s: float) -> None:
        bar.total = total_s
        bar.n = processed_s
        bar.set_postfix_str(f"{format_clock(processed_s)} / {format_clock(total_s)}", refresh=True)

    return bar, update


def _print_notice(text: str) -> None:
    """A change of course during a run (e.g. the GPU ran out of memory), printed above the progress bar."""
    from tqdm import tqdm

    tqdm.write(f"note: {text}", file=sys.stderr)


def _layout(args: argparse.Namespace) -> SubtitleLayout:
    """Subtitle flags -> a validated layout (raises OptionsError)."""
    layout = SubtitleLayout(max_line_width=args.max_line_width, max_line_count=args.max_line_count)
    layout.validate()
    if args.aligner and not args.word_timestamps:
        raise OptionsError("--aligner chooses the aligner for --word-timestamps; add --word-timestamps.")
    return layout


def _aligner_wanted(args: argparse.Namespace) -> str | None:
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


def _load_aligner(args: argparse.Namespace, device: str):
    """The loaded forced aligner for --word-timestamps, or None (see `_aligner_wanted`)."""
    aligner = _aligner_wanted(args)
    if aligner is None:
        return None
    from .aligner import QwenAligner

    return QwenAligner.load(aligner, device=device)


def _write_stdout(content: str | bytes) -> None:
    """Text to stdout; DOCX bytes as they are (``--format docx --output-dir - > notes.docx``)."""
    if isinstance(content, str):
        sys.stdout.write(content)
        return
    sys.stdout.flush()  # text written before goes out first
    sys.stdout.buffer.write(content)
    sys.stdout.buffer.flush()


def _report_missing(files: list[Path]) -> list[Path]:
    """The files that are not there, each reported with the decoder's own message before any model is looked
    for: a typo in a path is the quicker fix, and it should not wait behind a model download."""
    missing = []
    for file in files:
        if file.exists():
            continue
        try:
            read_source_info(file)
        except ASRError as e:
            print(f"{file}: error: {e}", file=sys.stderr)
            missing.append(file)
    return missing


def _load_models(args: argparse.Namespace):
    """The engine and (for --word-timestamps) the aligner; loads torch, so only once the command line is good."""
    from .engine import QwenEngine, show_loading_bars

    show_loading_bars(args.verbose)
    engine = QwenEngine.load(
        args.model or os.environ.get(hub.MODEL_ENV) or hub.DEFAULT_MODEL, device=args.device, dtype=args.dtype
    )
    return engine, _load_aligner(args, args.device)


def _run_transcribe(args: argparse.Namespace) -> int:
    try:
        options = _options(args)
        layout = _layout(args)
    except OptionsError as e:
        print(f"{_program()}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    formats = writers.FORMATS if args.format == "all" else (args.format,)
    to_stdout = str(args.output_dir) == "-"
    missing = _report_missing(args.files)
    files = [file for file in args.files if file not in missing]
    if not files:
        return EXIT_FAILED
    if not to_stdout:
        args.output_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_workdirs()  # what a crashed earlier run may have left
    try:
        engine, aligner = _load_models(args)
    except ASRError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_FAILED
    failed = len(missing)
    for file, outputs in zip(files, _output_paths(files, args.output_dir, formats), strict=True):
        bar, update = _progress_bar(file)
        try:
            segments, info = transcribe(
                file, engine=engine, options=options, progress=update, notice=_print_notice, aligner=aligner
            )
            transcript = Transcript(segments=tuple(segments), info=info)
        except ASRError as e:
            bar.close()
            print(f"{file}: error: {e}", file=sys.stderr)
            failed += 1
            continue
        bar.close()
        for note in info.notes:
            print(f"{file}: {note}", file=sys.stderr)
        for fmt, path in outputs.items():
            if to_stdout:
                _write_stdout(writers.render(transcript, fmt, layout, name=file.name))
            else:
                writers.save(transcript, fmt, path, layout, name=file.name)
                print(f"{file}: wrote {path}", file=sys.stderr)
    return EXIT_FAILED if failed else EXIT_OK


def _batch_jobs(inputs: list[batch.BatchInput], output_dir: Path, formats: tuple[str, ...]) -> list[batch.BatchJob]:
    """Outputs named as `transcribe` names them, in the output folder's copy of each input folder's subfolders."""
    groups: dict[Path, list[Path]] = {}
    for item in inputs:
        groups.setdefault(item.subfolder, []).append(item.path)
    outputs = {}
    for subfolder, files in groups.items():
        # Names alike get no " (2)" here (as `transcribe` gives them): such a name would depend on the inputs' order,
        # and a rerun in another order would take one file's outputs for the other's. `plan_jobs` refuses them.
        plain = [{fmt: output_dir / subfolder / f"{file.name}.{fmt}" for fmt in formats} for file in files]
        named = _output_paths(files, output_dir / subfolder, formats)
        repeated = Counter(file.name for file in files)
        for file, own, unique in zip(files, plain, named, strict=True):
            outputs[file] = own if repeated[file.name] > 1 else unique
    return batch.plan_jobs((item.path, outputs[item.path]) for item in inputs)


def _batch_bar():
    """One stderr bar for the whole batch: audio done / total, with files, hours, speed and time left."""
    from tqdm import tqdm

    bar = tqdm(total=0.0, file=sys.stderr, dynamic_ncols=True, bar_format="{percentage:3.0f}%|{bar}| {desc}")

    def update(progress: batch.BatchProgress) -> None:
        bar.total = max(progress.audio_total_s, 1e-9)
        bar.n = progress.audio_done_s
        bar.set_description_str(progress.describe(), refresh=True)

    return bar, update


def _batch_runner(args: argparse.Namespace, options: TranscribeOptions, model: str) -> batch.Runner:
    """The in-process runner, or Ray actors when --ray is given (call inside `cluster.connected`)."""
    if args.ray is None:
        from .engine import QwenEngine, show_loading_bars

        show_loading_bars(args.verbose)
        engine = QwenEngine.load(model, device=args.device, dtype=args.dtype)
        return batch.LocalRunner(engine, options, _load_aligner(args, args.device))
    from .cluster import RayRunner

    return RayRunner(
        model,
        options=options,
        device=args.device,
        dtype=args.dtype,
        workers=args.workers or 1,
        threads_per_worker=args.threads_per_worker or 1,
        gpus_per_worker=args.gpus_per_worker or 0.0,
        aligner=_aligner_wanted(args),
    )


def _check_batch_arguments(args: argparse.Namespace) -> None:
    """Raise OptionsError for batch arguments that cannot work together."""
    if str(args.output_dir) == "-":
        raise OptionsError("batch writes files and its manifest: give --output-dir a folder, not '-'.")
    if args.ray is None and any(v is not None for v in (args.workers, args.threads_per_worker, args.gpus_per_worker)):
        raise OptionsError("--workers, --threads-per-worker and --gpus-per-worker need --ray (auto, local or ADDRESS).")
    counts = (args.workers, args.threads_per_worker)
    if any(n is not None and n < 1 for n in counts) or (args.gpus_per_worker or 0) < 0:
        raise OptionsError("--workers and --threads-per-worker must be 1 or more, --gpus-per-worker 0 or more.")


def _run_batch(args: argparse.Namespace) -> int:
    try:
        _check_batch_arguments(args)
        options = _options(args)
        layout = _layout(args)
        formats = writers.FORMATS if args.format == "all" else (args.format,)
        jobs = _batch_jobs(batch.find_inputs(args.inputs), args.output_dir, formats)
    except OptionsError as e:
        print(f"{_program()}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    args.output_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_workdirs()
    model = args.model or os.environ.get(hub.MODEL_ENV) or hub.DEFAULT_MODEL
    try:
        with contextlib.ExitStack() as stack:
            if args.ray is not None:
                from .cluster import connected

                workers = (args.workers or 1) * (args.threads_per_worker or 1)
                stack.enter_context(connected(args.ray, num_cpus=workers, verbose=args.verbose))
            bar, update = _batch_bar()
            stack.callback(bar.close)
            runner = _batch_runner(args, options, model)
            summary = batch.run_batch(jobs, runner, batch.Manifest(args.output_dir), update, layout)
    except ASRError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_FAILED
    for line in summary.lines():
        print(line, file=sys.stderr)
    return EXIT_FAILED if summary.failed else EXIT_OK


def _run_live(args: argparse.Namespace) -> int:
    from .live import LiveOptions, LiveSession, terminal

    try:
        options = LiveOptions(transcribe=_options(args))
        options.validate()
        layout = _layout(args)
        if args.speed <= 0:
            raise OptionsError(f"--speed must be positive, got {args.speed}.")
    except OptionsError as e:
        print(f"python -m asr: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    formats = writers.FORMATS if args.format == "all" else (args.format,)
    to_stdout = str(args.output_dir) == "-"
    name = args.from_file.name if args.from_file else time.strftime("live-%Y%m%d-%H%M%S")
    try:
        pieces = terminal.file_pieces(args.from_file, args.speed) if args.from_file else terminal.open_microphone()
        engine, aligner = _load_models(args)
        session = LiveSession(engine, options=options, aligner=aligner)
        if not args.from_file:
            print("Listening; press Ctrl-C to stop.", file=sys.stderr)
        transcript = terminal.run_session(session, pieces, terminal.Display(terminal.display_stream(to_stdout)))
        output_dir = None if to_stdout else args.output_dir
        for written in terminal.write_outputs(
            transcript, session.events, formats, layout, name, output_dir, _write_stdout
        ):
            print(f"wrote {written}", file=sys.stderr)
    except ASRError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _run_info(args: argparse.Namespace) -> int:
    failed = 0
    for file in args.files:
        try:
            facts = read_source_info(file)
        except ASRError as e:
            print(f"{file}: error: {e}", file=sys.stderr)
            failed += 1
            continue
        print(f"{file}: {facts.summary()}")
    return EXIT_FAILED if failed else EXIT_OK


def _run_download(args: argparse.Namespace) -> int:
    try:
        folder = hub.download_model(args.model, endpoint=args.endpoint)
    except ASRError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_FAILED
    print(f"{args.model} is ready in {folder}", file=sys.stderr)
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m asr` and the `asr` console script; returns the exit code."""
    args = _build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if getattr(args, "verbose", False) else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "verbose", False):
        logging.getLogger("transformers").setLevel(logging.ERROR)
    commands = {
        "transcribe": _run_transcribe,
        "batch": _run_batch,
        "live": _run_live,
        "info": _run_info,
        "download": _run_download,
        "serve": _run_serve,
    }
    try:
        return commands[args.command](args)
    except KeyboardInterrupt:
        print("\nStopped (Ctrl-C). Files finished before this were written.", file=sys.stderr)
        return EXIT_INTERRUPTED
