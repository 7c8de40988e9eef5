"""Privacy as tested behaviour: no network while loading or transcribing, nothing personal in logs."""

from __future__ import annotations

import gc
import json
import logging
import subprocess
import sys
import tempfile
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import asr
import asr.audio.samples
from asr import tempfiles
from testbed.speech import SENTENCES, silence, speak

_AUDITED_RUN = textwrap.dedent(
    """
    import json, socket, sys

    events = []

    def audit(event, args):
        if event in ("socket.connect", "socket.getaddrinfo", "socket.sendto", "socket.bind"):
            events.append([event, repr(args[1] if event != "socket.getaddrinfo" else args[0])])

    sys.addaudithook(audit)
    import asr
    from asr.engine import QwenEngine

    engine = QwenEngine.load(sys.argv[1], device="cpu")
    transcript = asr.transcribe_all(sys.argv[2], engine=engine)
    print(json.dumps({"events": events, "segments": len(transcript.segments)}))
    """
)


def test_no_socket_is_opened_while_loading_and_transcribing(tmp_path, tiny_model_dir):
    audio = tmp_path / "meeting.wav"
    sf.write(audio, speak(SENTENCES[1]), asr.SAMPLE_RATE)
    result = subprocess.run(
        [sys.executable, "-c", _AUDITED_RUN, str(tiny_model_dir), str(audio)],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parents[1],
        timeout=300,
        check=True,
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["segments"] >= 1  # the run really transcribed
    assert report["events"] == []  # not one connection, lookup or bind: not even to loopback


def test_debug_logs_hold_no_file_name_audio_or_text(tmp_path, engine, caplog):
    audio = tmp_path / "Zorblax quarterly secrets.wav"
    sf.write(
        audio,
        np.concatenate([speak(SENTENCES[3]), silence(2.5), speak(SENTENCES[4])]),
        asr.SAMPLE_RATE,
    )
    with caplog.at_level(logging.DEBUG):
        transcript = asr.transcribe_all(audio, engine=engine)
    assert len(transcript.segments) == 2 and caplog.records  # there were logs, and text to leak
    logged = caplog.text
    assert "Zorblax" not in logged and str(tmp_path) not in logged
    for segment in transcript.segments:
        for piece in (segment.text[i : i + 12] for i in range(0, max(1, len(segment.text) - 12), 6)):
            assert piece not in logged


class _FailingEngine:
    """Wraps the real engine and fails on its second call: an error in the middle of a run."""

    def __init__(self, engine):
        self._engine, self.calls = engine, 0
        self.name, self.default_batch_size, self.device = engine.name, 1, engine.device

    def transcribe_chunks(self, chunks, **kwargs):
        self.calls += 1
        if self.calls == 2:
            raise RuntimeError("simulated failure in the middle of a run")
        return self._engine.transcribe_chunks(chunks, **kwargs)

    def fall_back_to_cpu(self) -> str | None:
        return None


@pytest.fixture
def temp_root(tmp_path, monkeypatch):
    """An empty temp root for our folders, with spilling to disk from 1 s of audio on."""
    root = tmp_path / "tmp-root"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    monkeypatch.setattr(asr.audio.samples, "SPILL_AFTER_S", 1.0)
    return root


@pytest.fixture(scope="module")
def three_sentences_wav(tmp_path_factory):
    path = tmp_path_factory.mktemp("wav") / "three.wav"
    samples = np.concatenate(
        [speak(SENTENCES[0]), silence(3.0), speak(SENTENCES[1]), silence(3.0), speak(SENTENCES[2])]
    )
    sf.write(path, samples, asr.SAMPLE_RATE)
    return path


def _ours(root: Path) -> list[Path]:
    return sorted(root.glob(f"{tempfiles.PREFIX}*"))


def test_long_audio_spills_to_a_private_file_removed_after_success(temp_root, engine, three_sentences_wav):
    seen = []
    segments, _ = asr.transcribe(
        three_sentences_wav,
        engine=engine,
        progress=lambda *_: seen.append([p.name for folder in _ours(temp_root) for p in folder.iterdir()]),
    )
    in_memory = asr.decode_audio(three_sentences_wav).samples
    assert len(list(segments)) == 3
    assert seen and all(len(files) == 1 and files[0].endswith(".f32") for files in seen)  # spilled while running
    assert "three" not in "".join(seen[0])  # a generated name, never the user's
    assert _ours(temp_root) == []
    spilled = asr.decode_audio(three_sentences_wav, spill_dir=temp_root)
    assert asr.audio.spill_map(spilled.samples) is not None and np.array_equal(spilled.samples, in_memory)


def _spill_resident_kb() -> int:
    """How much of the spilled samples' file is mapped into this process's memory now (kB; Linux)."""
    resident, in_spill = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        if not line[:1].isupper():  # a mapping's header line: its address range first, its path last
            in_spill = line.endswith(".f32")
        elif in_spill and line.startswith("Rss:"):
            resident += int(line.split()[1])
    return resident


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/self/smaps")
def test_spilled_samples_leave_memory_between_passes(temp_root, engine, three_sentences_wav):
    """The speech scan reads every page of the spilled file, and a mapped page stays resident until the OS needs
    memory: without handing them back, a 30-minute recording kept 110 MB in memory for the whole run."""
    resident_kb = []
    segments, info = asr.transcribe(
        three_sentences_wav, engine=engine, progress=lambda *_: resident_kb.append(_spill_resident_kb())
    )
    assert len(list(segments)) == 3
    file_kb = info.duration_s * asr.SAMPLE_RATE * 4 / 1024
    assert max(resident_kb) > 0.5 * file_kb  # the scans did bring it all into memory
    assert resident_kb[-1] < 0.1 * file_kb  # and it left again: the last report comes after the last batch
    spilled = asr.decode_audio(three_sentences_wav, spill_dir=temp_root)
    before = spilled.samples.astype(np.float64).sum()
    assert _spill_resident_kb() > 0.5 * file_kb
    asr.audio.release_resident_pages(spilled.samples[10:])  # a slice's pages are its whole recording's
    assert _spill_resident_kb() < 0.1 * file_kb
    assert spilled.samples.astype(np.float64).sum() == before  # read back from the file, unchanged


def test_temp_folder_is_removed_after_an_error_mid_run(temp_root, engine, three_sentences_wav):
    failing = _FailingEngine(engine)
    segments, _ = asr.transcribe(three_sentences_wav, engine=failing)
    with pytest.raises(RuntimeError, match="simulated failure"):
        list(segments)
    assert failing.calls == 2 and _ours(temp_root) == []


def test_temp_folder_is_removed_after_cancel(temp_root, engine, three_sentences_wav):
    cancel = threading.Event()
    segments, _ = asr.transcribe(three_sentences_wav, engine=engine, cancel=cancel)
    next(segments)
    assert len(_ours(temp_root)) == 1
    cancel.set()
    with pytest.raises(asr.TranscriptionCancelled):
        next(segments)
    assert _ours(temp_root) == []


def test_temp_folder_is_removed_when_the_iterator_is_dropped_unstarted(temp_root, engine, three_sentences_wav):
    segments, _ = asr.transcribe(three_sentences_wav, engine=engine)
    assert len(_ours(temp_root)) == 1
    del segments
    gc.collect()
    assert _ours(temp_root) == []


def test_temp_folder_is_removed_after_a_decode_error(temp_root, engine):
    with pytest.raises(asr.AudioDecodeError):
        asr.transcribe(b"this is not audio at all" * 50, engine=engine)
    assert _ours(temp_root) == []
