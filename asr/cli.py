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
from collections import Counter
from pathlib import Path
from typing import NoReturn

from . import batch, hub, writers
from .audio import read_source_info
from .bundle import output_bases
from .cli_common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    add_transcription_arguments,
    aligner_wanted,
    chosen_formats,
    command_failed,
    load_aligner,
    load_models,
    program,
    subtitle_layout,
    transcribe_options,
    usage_error,
    write_stdout,
)
from .cli_live import add_live_parser, run_live
from .cli_serve import add_serve_parser, run_serve
from .errors import ASRError, OptionsError
from .options import TranscribeOptions
from .pipeline import transcribe
from .progress import Stage
from .results import Transcript, format_clock
from .tempfiles import remove_stale_workdirs


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error message (the default also prints the whole usage)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=program(), description="Private, local speech-to-text with Qwen3-ASR.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = commands.add_parser("transcribe", help="transcribe audio or video files")
    run.add_argument("files", nargs="+", type=Path, metavar="FILE")
    add_transcription_arguments(run)

    many = commands.add_parser("batch", help="transcribe many files or folders, resumably, here or on a Ray cluster")
    many.add_argument("inputs", nargs="+", metavar="INPUT", help="files, folders (searched recursively), glob patterns")
    add_transcription_arguments(many)
    many.add_argument(
        "--ray",
        metavar="auto|local|ADDRESS",
        help="run on Ray: this machine's cluster (auto), "
        "a new one here (local), or the cluster at ADDRESS (default: in this process, no Ray)",
    )
    many.add_argument("--workers", type=int, help="Ray actors, each holding the model (default: 1)")
    many.add_argument("--threads-per-worker", type=int, help="CPU threads of each actor (default: 1)")
    many.add_argument("--gpus-per-worker", type=float, help="GPUs of each actor, e.g. 1 or 0.5 (default: 0)")

    add_live_parser(commands)

    info = commands.add_parser("info", help="show duration, sample rate, channels, codec and container")
    info.add_argument("files", nargs="+", type=Path, metavar="FILE")

    add_serve_parser(commands)

    download = commands.add_parser("download", help="download a model (the only command that goes online)")
    download.add_argument("--model", default=hub.DEFAULT_MODEL, help=f"repo id (default: {hub.DEFAULT_MODEL})")
    download.add_argument(
        "--endpoint",
        help=f"{', '.join(hub.DOWNLOAD_SOURCES)} or a hub mirror's URL (default: $HF_ENDPOINT or huggingface.co)",
    )
    return parser


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

    processed = ""

    def update(processed_s: float, total_s: float) -> None:
        nonlocal processed
        bar.total = total_s
        bar.n = processed_s
        processed = f"{format_clock(processed_s)} / {format_clock(total_s)}"
        bar.set_postfix_str(processed, refresh=True)

    def on_stage(stage: Stage, share: float) -> None:
        """The pass under way besides the transcription, after the processed time: as the page's line says it."""
        bar.set_postfix_str(
            f"{processed} · {stage.describe(share)}" if processed else stage.describe(share), refresh=True
        )

    return bar, update, on_stage


def _print_notice(text: str) -> None:
    """A change of course during a run (e.g. the GPU ran out of memory), printed above the progress bar."""
    from tqdm import tqdm

    tqdm.write(f"note: {text}", file=sys.stderr)


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


def _run_transcribe(args: argparse.Namespace) -> int:
    try:
        options = transcribe_options(args)
        layout = subtitle_layout(args)
    except OptionsError as e:
        return usage_error(e)
    formats = chosen_formats(args)
    to_stdout = str(args.output_dir) == "-"
    missing = _report_missing(args.files)
    files = [file for file in args.files if file not in missing]
    if not files:
        return EXIT_FAILED
    if not to_stdout:
        args.output_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_workdirs()  # what a crashed earlier run may have left
    try:
        engine, aligner = load_models(args)
    except ASRError as e:
        return command_failed(e)
    failed = len(missing)
    for file, outputs in zip(files, _output_paths(files, args.output_dir, formats), strict=True):
        bar, update, on_stage = _progress_bar(file)
        try:
            segments, info = transcribe(
                file,
                engine=engine,
                options=options,
                progress=update,
                stage=on_stage,
                notice=_print_notice,
                aligner=aligner,
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
                write_stdout(writers.render(transcript, fmt, layout, name=file.name))
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
        return batch.LocalRunner(engine, options, load_aligner(args, args.device))
    from .cluster import RayRunner

    return RayRunner(
        model,
        options=options,
        device=args.device,
        dtype=args.dtype,
        workers=args.workers or 1,
        threads_per_worker=args.threads_per_worker or 1,
        gpus_per_worker=args.gpus_per_worker or 0.0,
        aligner=aligner_wanted(args),
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
        options = transcribe_options(args)
        layout = subtitle_layout(args)
        formats = chosen_formats(args)
        jobs = _batch_jobs(batch.find_inputs(args.inputs), args.output_dir, formats)
    except OptionsError as e:
        return usage_error(e)
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
        return command_failed(e)
    for line in summary.lines():
        print(line, file=sys.stderr)
    return EXIT_FAILED if summary.failed else EXIT_OK


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
        return command_failed(e)
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
        "live": run_live,
        "info": _run_info,
        "download": _run_download,
        "serve": run_serve,
    }
    try:
        return commands[args.command](args)
    except KeyboardInterrupt:
        print("\nStopped (Ctrl-C). Files finished before this were written.", file=sys.stderr)
        return EXIT_INTERRUPTED
