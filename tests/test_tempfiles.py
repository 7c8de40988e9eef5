"""Private work folders: permissions, generated names, removal on every way out."""

from __future__ import annotations

import os
import stat
import time

import pytest

from asr import tempfiles


def test_folder_is_private_and_removed(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfiles.tempfile, "tempdir", str(tmp_path))
    with tempfiles.private_workdir() as work:
        assert work.parent == tmp_path and work.name.startswith(tempfiles.PREFIX)
        assert stat.S_IMODE(work.stat().st_mode) == 0o700
        (work / "samples.f32").write_bytes(b"\0" * 16)
        assert work not in tempfiles.leftover_workdirs()  # in use, not left over
    assert not work.exists() and work not in tempfiles.leftover_workdirs()


def test_folder_is_removed_after_an_exception(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfiles.tempfile, "tempdir", str(tmp_path))
    with pytest.raises(RuntimeError), tempfiles.private_workdir() as work:
        (work / "partial").write_bytes(b"x")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_keep_switch_keeps_and_logs_the_path(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(tempfiles.tempfile, "tempdir", str(tmp_path))
    monkeypatch.setenv(tempfiles.KEEP_ENV, "1")
    with caplog.at_level("WARNING"), tempfiles.private_workdir() as work:
        pass
    assert work.exists() and str(work) in caplog.text
    assert work in tempfiles.leftover_workdirs()  # the app's privacy panel reports it


def test_stale_folders_of_ours_are_removed(tmp_path):
    old = tmp_path / f"{tempfiles.PREFIX}old"
    fresh = tmp_path / f"{tempfiles.PREFIX}fresh"
    other = tmp_path / "someone-elses"
    for folder in (old, fresh, other):
        folder.mkdir()
        (folder / "file").write_bytes(b"x")
    two_days_ago = time.time() - 2 * 24 * 3600
    os.utime(old, (two_days_ago, two_days_ago))
    os.utime(other, (two_days_ago, two_days_ago))
    assert tempfiles.remove_stale_workdirs(root=tmp_path) == 1
    assert not old.exists() and fresh.exists() and other.exists()
