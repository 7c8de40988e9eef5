"""The benchmark's spoken sentences, voiced once with espeak-ng and cached, shared by the benchmarks and the
GPU tests: a machine without espeak-ng (the lent GPU) reads the cache that `bench/gpu_check.sh prepare` wrote."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from testbed.speech import SENTENCES, speak

EXTRA_SENTENCES = (
    "Our quarterly report shows steady growth in every region except the north.",
    "Remember to back up your files before installing the new operating system.",
    "The train to the airport leaves every fifteen minutes from platform four.",
    "She said the meeting was moved to Thursday because of the holiday.",
    "Could you send me the slides from yesterday's presentation, please?",
    "The library will be closed on Sunday for maintenance work on the roof.",
    "In the second half of the lecture we will look at the history of printing.",
    "He forgot his umbrella at the restaurant and had to walk home in the rain.",
    "The new software release fixes three bugs and improves battery life.",
    "Thank you all for coming, and let us begin with a short introduction.",
    "My grandmother grows tomatoes, beans and sunflowers in her small garden.",
    "The committee approved the proposal by a vote of seven to two.",
    "Please keep your questions short so that everyone has a chance to speak.",
    "The museum's new exhibition covers two thousand years of Chinese painting.",
    "We measured the temperature every hour for three days in a row.",
    "If the server goes down again, call the engineer on duty immediately.",
)


def all_sentences() -> tuple[str, ...]:
    """The tests' sentences, then the benchmark's own."""
    return (*SENTENCES, *EXTRA_SENTENCES)


def voiced_sentences(path: Path | None) -> dict[str, np.ndarray]:
    """Every sentence spoken by espeak-ng, read from `path` (int16 .npz) or, when it is missing, made here
    and saved there: a machine without espeak-ng (the lent GPU) then builds the same inputs."""
    if path is not None and path.is_file():
        with np.load(path) as stored:
            texts = json.loads(str(stored["texts"]))
            return {text: stored[f"s{i}"].astype(np.float32) / 32767 for i, text in enumerate(texts)}
    voiced = {text: speak(text) for text in all_sentences()}
    if path is not None:
        waves = enumerate(voiced.values())
        pcm = {f"s{i}": np.round(np.clip(wave, -1, 1) * 32767).astype(np.int16) for i, wave in waves}
        np.savez_compressed(path, texts=json.dumps(list(voiced)), **pcm)
        voiced = voiced_sentences(path)  # the same int16-rounded samples as a later reader gets
    return voiced
