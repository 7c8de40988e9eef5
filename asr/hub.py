"""Where models live, and the one place that may go online: `download_model`.

Loading never touches the network: `locate_model` resolves a folder or a Hugging Face repo id
against the local cache only (`local_files_only=True`). Only an explicit download (CLI
`python -m asr download`, or the app's download button) connects, to the Hugging Face hub or
to the mirror named by `endpoint` / `HF_ENDPOINT`.
"""

from __future__ import annotations

import logging
from pathlib import Path

from .errors import DownloadError, ModelNotFoundError

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "Qwen/Qwen3-ASR-0.6B-hf"
DEFAULT_ALIGNER = "Qwen/Qwen3-ForcedAligner-0.6B-hf"  # word times (Qwen3ASRForTokenClassification)
MODEL_SIZES = {  # download size shown to users before they agree to fetch a model
    "Qwen/Qwen3-ASR-0.6B-hf": "about 1.9 GB",
    "Qwen/Qwen3-ASR-1.7B-hf": "about 4.7 GB",
    DEFAULT_ALIGNER: "about 1.8 GB",
}
MODEL_ENV = "QWEN3_ASR_MODEL"  # overrides DEFAULT_MODEL: a repo id or a folder
# Files a checkpoint needs besides its weights; any one name of a tuple will do.
_REQUIRED_FILES = (
    ("config.json",),
    ("tokenizer.json", "vocab.json"),
    ("tokenizer_config.json",),
    ("processor_config.json", "preprocessor_config.json"),
)
_DOWNLOAD_PATTERNS = ["*.json", "*.safetensors", "*.jinja", "*.txt"]


def _how_to_get(model: str) -> str:
    return (
        f"Download it with `python -m asr download --model {model}` (add `--endpoint URL` for a mirror), "
        f"or set {MODEL_ENV} to a folder that holds a Qwen3-ASR checkpoint."
    )


def check_model_folder(folder: Path) -> None:
    """Raise `ModelNotFoundError` naming the first file a checkpoint folder lacks."""
    for names in _REQUIRED_FILES:
        if not any((folder / name).is_file() for name in names):
            missing = " or ".join(names)
            raise ModelNotFoundError(
                f"The model folder {folder} is incomplete: {missing} is missing. {_how_to_get(DEFAULT_MODEL)}"
            )
    if not any(folder.glob("*.safetensors")):
        raise ModelNotFoundError(
            f"The model folder {folder} has no weights (*.safetensors). {_how_to_get(DEFAULT_MODEL)}"
        )


def is_repo_id(model: str) -> bool:
    """True for "owner/name" (a Hugging Face repo id), False for a folder path."""
    parts = model.split("/")
    return len(parts) == 2 and all(parts) and not model.startswith((".", "~", "/"))


def locate_model(model: str) -> Path:
    """Return the local folder of `model` (a folder path or a cached repo id), without any network use.

    Raises:
        ModelNotFoundError: the model is not on this computer; the message says how to get it.
    """
    folder = Path(model).expanduser()
    if folder.is_dir():
        check_model_folder(folder)
        return folder
    if not is_repo_id(model):
        raise ModelNotFoundError(f"No model folder at {model}. {_how_to_get(DEFAULT_MODEL)}")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        # The same patterns as the download: the cached tree listing also names README.md and
        # .gitattributes, which download_model skips, and without the patterns huggingface_hub
        # calls the snapshot incomplete (IncompleteSnapshotError).
        folder = Path(snapshot_download(model, local_files_only=True, allow_patterns=_DOWNLOAD_PATTERNS))
    except LocalEntryNotFoundError as e:
        raise ModelNotFoundError(f"The model {model} is not on this computer yet. {_how_to_get(model)}") from e
    check_model_folder(folder)
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


def download_model(model: str = DEFAULT_MODEL, *, endpoint: str | None = None, tqdm_class=None) -> Path:
    """Fetch `model` into the Hugging Face cache (with progress bars) and return its folder.

    Args:
        model: a Hugging Face repo id such as "Qwen/Qwen3-ASR-0.6B-hf".
        endpoint: a hub mirror URL; None uses `HF_ENDPOINT` or huggingface.co.
        tqdm_class: progress bar class (huggingface_hub's default prints to stderr).

    Raises:
        DownloadError: the repo id is malformed, or the hub or mirror could not deliver it.
    """
    if not is_repo_id(model):
        raise DownloadError(f"{model!r} is not a Hugging Face repo id like {DEFAULT_MODEL!r}.")
    from huggingface_hub import snapshot_download

    logger.info("Downloading %s from %s", model, endpoint or default_endpoint())
    try:
        folder = Path(
            snapshot_download(model, endpoint=endpoint, allow_patterns=_DOWNLOAD_PATTERNS, tqdm_class=tqdm_class)
        )
    except Exception as e:  # network, HTTP and disk errors all mean the same to the user
        where = endpoint or default_endpoint()
        raise DownloadError(
            f"Could not download {model} from {where}: {_one_line_reason(e)}. "
            "Check the connection or the mirror URL, and that there is enough free disk space."
        ) from e
    check_model_folder(folder)
    return folder
