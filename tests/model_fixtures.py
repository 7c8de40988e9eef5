"""Fixtures for the real engine on the tiny checkpoint (registered by conftest.py)."""

from __future__ import annotations

import pytest

from testbed.speech import SENTENCES, speak
from testbed.tiny_model import write_tiny_aligner, write_tiny_checkpoint


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A tiny random Qwen3-ASR checkpoint written by the suite (see testbed/tiny_model.py)."""
    return write_tiny_checkpoint(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def engine(tiny_model_dir):
    """The engine as the app and CLI load it, on the tiny checkpoint."""
    from asr.engine import QwenEngine

    return QwenEngine.load(str(tiny_model_dir), device="cpu")


@pytest.fixture(scope="session")
def tiny_aligner_dir(tmp_path_factory):
    """A tiny random Qwen3-ForcedAligner checkpoint written by the suite (testbed/tiny_model.py --aligner)."""
    return write_tiny_aligner(tmp_path_factory.mktemp("tiny-aligner"))


@pytest.fixture(scope="session")
def aligner(tiny_aligner_dir):
    """The forced aligner as the app and CLI load it, on the tiny checkpoint."""
    from asr.aligner import QwenAligner

    return QwenAligner.load(str(tiny_aligner_dir), device="cpu")


@pytest.fixture(scope="session")
def golden_clip():
    """One spoken sentence whose VAD chunk spans the whole clip."""
    return speak(SENTENCES[0])


@pytest.fixture(scope="session")
def other_clip():
    return speak(SENTENCES[2])
