"""Private temporary folders that never outlive their work.

Where the code needs audio on disk (a long recording's decoded samples, see `audio.py`), it
goes into a folder made by `private_workdir`: created by `tempfile.mkdtemp` (mode 0700, readable
by this user only), with generated names (never the user's file name), and removed when the work
ends, whether it succeeded, failed or was cancelled. `remove_stale_workdirs` clears what a crashed
run (power cut, killed process) left behind.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

logger = logging.getLogger(__name__)

PREFIX = "qwen3asr-"  # every folder we create starts with this, so leftovers can be found
KEEP_ENV = "QWEN3_ASR_KEEP_TEMP"  # "1" keeps the folder for debugging and logs where it is
STALE_AFTER_S = 24 * 3600

_lock = threading.Lock()
_ended_but_present: set[Path] = set()  # folders whose work ended but which could not be removed (or were kept)


def _keep_requested() -> bool:
    return os.environ.get(KEEP_ENV, "").strip().lower() in ("1", "true", "yes")


@contextmanager
def private_workdir() -> Iterator[Path]:
    """A fresh folder only this user can read, removed on exit, on exceptions and on cancel."""
    path = Path(tempfile.mkdtemp(prefix=PREFIX))
    try:
        yield path
    finally:
        if _keep_requested():
            logger.warning("Keeping temporary folder %s because %s is set", path, KEEP_ENV)
        else:
            shutil.rmtree(path, ignore_errors=True)
        if path.exists():
            with _lock:
                _ended_but_present.add(path)


def leftover_workdirs() -> list[Path]:
    """Folders this process made whose work has ended but which still exist (the app's privacy check)."""
    with _lock:
        _ended_but_present.intersection_update({p for p in _ended_but_present if p.exists()})
        return sorted(_ended_but_present)


def remove_stale_workdirs(max_age_s: float = STALE_AFTER_S, root: Path | None = None) -> int:
    """Delete our folders older than `max_age_s` in the temp root; returns how many were removed."""
    root = Path(root or tempfile.gettempdir())
    cutoff = time.time() - max_age_s
    removed = 0
    for path in root.glob(f"{PREFIX}*"):
        try:
            if path.is_dir() and not path.is_symlink() and path.stat().st_mtime < cutoff:
                shutil.rmtree(path)
                removed += 1
        except OSError:  # another process removed it, or it is not ours to remove
            continue
    if removed:
        logger.info("Removed %d temporary folder(s) left by earlier runs", removed)
    return removed
