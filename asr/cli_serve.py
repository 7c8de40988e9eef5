"""`python -m asr serve`: the OpenAI-compatible endpoint on this machine (asr/server/, docs/server.md)."""

from __future__ import annotations

import argparse
import os

from . import hub
from .cli_common import EXIT_OK, command_failed, usage_error
from .errors import ASRError, OptionsError


def add_serve_parser(commands) -> None:
    """`serve`: its own arguments (not the transcribing ones: each request brings its options)."""
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


def run_serve(args: argparse.Namespace) -> int:
    """Serve until Ctrl-C; the exit code."""
    from .server.serve import serve
    from .server.settings import API_KEY_ENV, ServerSettings

    api_key = args.api_key or os.environ.get(API_KEY_ENV) or None
    settings = ServerSettings(host=args.host, port=args.port, api_key=api_key, max_upload_mb=args.max_upload_mb)
    model = args.model or os.environ.get(hub.MODEL_ENV) or hub.DEFAULT_MODEL
    try:
        aligner = args.aligner or os.environ.get(hub.ALIGNER_ENV)
        serve(settings, model, device=args.device, dtype=args.dtype, aligner=aligner)
    except OptionsError as e:
        return usage_error(e)
    except ASRError as e:
        return command_failed(e)
    return EXIT_OK
