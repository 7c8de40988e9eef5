"""Where models live, and the one place that may go online: `download_model`.

Loading never touches the network: `locate_model` resolves a folder or a Hugging Face repo id
against the local cache only (`local_files_only=True`). Only an explicit download (CLI
`python -m asr download`, or the app's download button) connects, to the Hugging Face hub or
to the mirror named by `endpoint` / `HF_ENDPOINT`: a preset of `DOWNLOAD_SOURCES` (hf-mirror.com
works from mainland China) or any mirror's URL.

How a download survives trouble (huggingface_hub 2.x does the transfer):

- A dropped connection is resumed where it stopped: the client asks for the rest of the file
  (``Range: bytes=N-``) up to five times in a row, and the count starts again whenever bytes arrive.
- Every file is written under a temporary name and moved into place only when complete, and the
  model counts as there (`check_model_folder`) only when its weights are. A download that fails or
  is cancelled keeps the files it finished, so the next try fetches only the rest, and deletes the
  file it was in the middle of; a partial model never looks complete.
"""

from __future__ import annotations

import errno
import logging
import shutil
import socket
import threading
from pathlib import Path
from urllib.parse import urlsplit

from . import netwatch
from .errors import DownloadCancelled, DownloadError, ModelNotFoundError
from .results import format_size

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "Qwen/Qwen3-ASR-0.6B-hf"
DEFAULT_ALIGNER = "Qwen/Qwen3-ForcedAligner-0.6B-hf"  # word times (Qwen3ASRForTokenClassification)
LARGE_MODEL = "Qwen/Qwen3-ASR-1.7B-hf"  # more accurate, slower
MODEL_BYTES = {  # download size of each model we offer: shown before the download, and checked against free disk
    DEFAULT_MODEL: 1_880_000_000,
    LARGE_MODEL: 4_700_000_000,
    DEFAULT_ALIGNER: 1_840_000_000,
}
MODEL_SIZES = {model: f"about {format_size(size)}" for model, size in MODEL_BYTES.items()}  # as shown to users
MODEL_ENV = "QWEN3_ASR_MODEL"  # overrides DEFAULT_MODEL: a repo id or a folder
ALIGNER_ENV = "QWEN3_ASR_ALIGNER"  # overrides DEFAULT_ALIGNER: a repo id or a folder
HUGGING_FACE = "https://huggingface.co"
HF_MIRROR = "https://hf-mirror.com"  # a public mirror of the hub that is reachable from mainland China
DOWNLOAD_SOURCES = {  # preset name -> endpoint; any other mirror is given by its URL
    "huggingface": HUGGING_FACE,
    "hf-mirror": HF_MIRROR,
}
# Files a checkpoint needs besides its weights; any one name of a tuple will do.
_REQUIRED_FILES = (
    ("config.json",),
    ("tokenizer.json", "vocab.json"),
    ("tokenizer_config.json",),
    ("processor_config.json", "preprocessor_config.json"),
)
_DOWNLOAD_PATTERNS = ["*.json", "*.safetensors", "*.jinja", "*.txt"]


def _how_to_get(model: str, env: str) -> str:
    """The command-line advice: download `model`, or point `env` (MODEL_ENV or ALIGNER_ENV) at a folder."""
    kind = "Qwen3-ForcedAligner" if env == ALIGNER_ENV else "Qwen3-ASR"
    return (
        f"Download it with `python -m asr download --model {model}` (add `--endpoint URL` for a mirror), "
        f"or set {env} to a folder that holds a {kind} checkpoint."
    )


def _default_for(env: str) -> str:
    return DEFAULT_ALIGNER if env == ALIGNER_ENV else DEFAULT_MODEL


def check_model_folder(folder: Path, *, env: str = MODEL_ENV) -> None:
    """Raise `ModelNotFoundError` naming the first file a checkpoint folder lacks."""
    how = _how_to_get(_default_for(env), env)
    for names in _REQUIRED_FILES:
        if not any((folder / name).is_file() for name in names):
            missing = " or ".join(names)
            raise ModelNotFoundError(f"The model folder {folder} is incomplete: {missing} is missing.", how)
    if not any(folder.glob("*.safetensors")):
        raise ModelNotFoundError(f"The model folder {folder} has no weights (*.safetensors).", how)


def is_repo_id(model: str) -> bool:
    """True for "owner/name" (a Hugging Face repo id), False for a folder path."""
    parts = model.split("/")
    return len(parts) == 2 and all(parts) and not model.startswith((".", "~", "/"))


def locate_model(model: str, *, env: str = MODEL_ENV) -> Path:
    """Return the local folder of `model` (a folder path or a cached repo id), without any network use.

    `env` is the variable that chooses this kind of model (MODEL_ENV, or ALIGNER_ENV for the aligner), named in
    the advice.

    Raises:
        ModelNotFoundError: the model is not on this computer; the message says how to get it.
    """
    folder = Path(model).expanduser()
    if folder.is_dir():
        check_model_folder(folder, env=env)
        return folder
    if not is_repo_id(model):
        raise ModelNotFoundError(f"No model folder at {model}.", _how_to_get(_default_for(env), env))
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        # The same patterns as the download: the cached tree listing also names README.md and
        # .gitattributes, which download_model skips, and without the patterns huggingface_hub
        # calls the snapshot incomplete (IncompleteSnapshotError).
        folder = Path(snapshot_download(model, local_files_only=True, allow_patterns=_DOWNLOAD_PATTERNS))
    except LocalEntryNotFoundError as e:
        raise ModelNotFoundError(f"The model {model} is not on this computer yet.", _how_to_get(model, env)) from e
    check_model_folder(folder, env=env)
    return folder


def _one_line_reason(error: BaseException) -> str:
    """Why a download failed, on one line (huggingface_hub's messages span several lines)."""
    from huggingface_hub.errors import LocalEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

    if isinstance(error, RepositoryNotFoundError):
        return "there is no such repository there (404)"
    if isinstance(error, RevisionNotFoundError):
        return "that revision does not exist there (404)"
    if isinstance(error, LocalEntryNotFoundError) and error.__cause__ is not None:
        error = error.__cause__  # "Got: <the real error> ... cannot find the snapshot on disk": report the real one
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else 'no details'}"


def default_endpoint() -> str:
    """Where a download goes when no mirror is given: HF_ENDPOINT, or https://huggingface.co."""
    from huggingface_hub import constants

    return constants.ENDPOINT


def resolve_endpoint(source: str | None) -> str:
    """The hub URL for a `DOWNLOAD_SOURCES` preset name or a mirror's URL; None means `default_endpoint()`.

    Raises:
        DownloadError: `source` is neither a preset nor an http(s) URL with a host.
    """
    if source is None:
        return default_endpoint()
    source = source.strip()
    if source in DOWNLOAD_SOURCES:
        return DOWNLOAD_SOURCES[source]
    parts = urlsplit(source)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        presets = ", ".join(DOWNLOAD_SOURCES)
        raise DownloadError(
            f"{source!r} is not a download source. Use one of {presets}, or a mirror's address such as {HF_MIRROR}."
        )
    return source.rstrip("/")


class _Cancelled(Exception):
    """Raised inside the download's threads to stop it; `download_model` reports `DownloadCancelled`."""


def _stoppable(tqdm_class: type | None, cancel: threading.Event):
    """A progress class that stops the download at its next chunk once `cancel` is set.

    huggingface_hub has no cancel; its transfer reports every chunk to the progress bar, and an
    error raised there ends the download of that file and deletes its partial copy.
    """
    from huggingface_hub.utils import tqdm as hf_tqdm

    base: type = tqdm_class or hf_tqdm

    class _Stoppable(base):  # a base chosen at run time
        def update(self, n=1):
            if cancel.is_set():
                raise _Cancelled
            return super().update(n)

    return _Stoppable


def _could_not_reach(error: BaseException) -> bool:
    """Whether `error` (or an error under it) means the host could not be found or reached at all."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, socket.gaierror | TimeoutError) or type(current).__name__ == "ConnectTimeout":
            return True
        if isinstance(current, OSError) and current.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
            return True
        current = current.__cause__ or current.__context__
    return False


def _failure_message(model: str, where: str, error: BaseException) -> str:
    """What went wrong with a download, in words, and what to try next."""
    if _could_not_reach(error):
        host = urlsplit(where).hostname or where
        instead = "Try the mirror" if where == HUGGING_FACE else "Try another download source"
        return (
            f"This computer could not reach {host}: no internet connection, or the name could not be looked up. "
            f"{instead}, or copy the model folder from another computer."
        )
    return (
        f"Could not download {model} from {where}: {_one_line_reason(error)}. "
        "Check the connection or the mirror URL, and that there is enough free disk space."
    )


def cache_folder() -> Path:
    """Where downloads go: the Hugging Face cache (`HF_HUB_CACHE`, or ~/.cache/huggingface/hub)."""
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def check_disk_space(model: str) -> None:
    """Refuse a download of one of our models that the disk cannot hold (with 10% to spare), before it starts.

    Raises:
        DownloadError: not enough free space; the message says how much there is and is needed, and where.
    """
    needed = MODEL_BYTES.get(model)
    if needed is None:
        return  # another repo: its size is not known before its listing is fetched
    folder = cache_folder()
    existing = next(parent for parent in (folder, *folder.parents) if parent.exists())
    free = shutil.disk_usage(existing).free
    if free < needed * 1.1:
        raise DownloadError(
            f"Not enough free disk space for {model}: it needs {MODEL_SIZES[model].removeprefix('about ')}, "
            f"and {format_size(free)} are free where models are kept ({folder}). Free some space, or set "
            "HF_HUB_CACHE to a folder on a disk with room."
        )


def download_model(
    model: str = DEFAULT_MODEL,
    *,
    endpoint: str | None = None,
    tqdm_class=None,
    cancel: threading.Event | None = None,
) -> Path:
    """Fetch `model` into the Hugging Face cache (with progress bars) and return its folder.

    Network use during the download is counted as the user's own (`netwatch.user_download`).

    Args:
        model: a Hugging Face repo id such as "Qwen/Qwen3-ASR-0.6B-hf".
        endpoint: a `DOWNLOAD_SOURCES` preset name or a hub mirror's URL; None uses `HF_ENDPOINT`
            or huggingface.co.
        tqdm_class: progress bar class (huggingface_hub's default prints to stderr).
        cancel: set it from another thread to stop the download within one chunk (10 MB).

    Raises:
        DownloadCancelled: `cancel` was set; finished files are kept, the partial one is deleted.
        DownloadError: the repo id or source is malformed, or the hub or mirror could not deliver it.
    """
    if not is_repo_id(model):
        raise DownloadError(f"{model!r} is not a Hugging Face repo id like {DEFAULT_MODEL!r}.")
    where = resolve_endpoint(endpoint)
    check_disk_space(model)
    from huggingface_hub import snapshot_download

    logger.info("Downloading %s from %s", model, where)
    progress = _stoppable(tqdm_class, cancel) if cancel is not None else tqdm_class
    try:
        with netwatch.user_download():
            folder = Path(
                snapshot_download(model, endpoint=where, allow_patterns=_DOWNLOAD_PATTERNS, tqdm_class=progress)
            )
    except Exception as e:  # network, HTTP and disk errors all mean the same to the user
        if cancel is not None and cancel.is_set():  # _Cancelled, however huggingface_hub wrapped it
            raise DownloadCancelled(
                f"The download of {model} was cancelled. The files it had finished are kept, so downloading "
                "again fetches only the rest; the file it was in the middle of was deleted."
            ) from e
        raise DownloadError(_failure_message(model, where, e)) from e
    check_model_folder(folder)
    return folder
