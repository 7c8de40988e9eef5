"""The page's speaker parts through AppTest: the switch, the Speaker column, renames, moves and merges."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import pytest
import soundfile as sf
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
from streamlit.testing.v1 import AppTest

from testbed.conversations import conversation

APP = str(Path(__file__).parents[1] / "app.py")
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


@pytest.fixture(scope="module")
def two_speakers_wav() -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, conversation("short_two").samples, 16_000, format="WAV")
    return buffer.getvalue()


@pytest.fixture
def served(monkeypatch) -> dict[str, bytes]:
    """File name -> bytes of each download, recorded as Streamlit stores it."""
    files: dict[str, bytes] = {}
    real_store = MemoryMediaFileStorage.load_and_get_id

    def recording_store(self, path_or_data, mimetype, kind, filename=None):
        if filename:
            files[filename] = path_or_data
        return real_store(self, path_or_data, mimetype, kind, filename)

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", recording_store)
    return files


def _transcribed(monkeypatch, tiny_model_dir, wav: bytes, count: str = "Auto") -> tuple[AppTest, int]:
    monkeypatch.setenv("QWEN3_ASR_MODEL", str(tiny_model_dir))
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    assert [s.label for s in at.selectbox if s.key == "speaker_count"] == []  # the count shows once switched on
    at.toggle(key="speakers").set_value(True).run()
    at.selectbox(key="speaker_count").set_value(count).run()
    at.file_uploader(key="uploads-0").set_value(("talk.wav", wav, "audio/wav")).run()
    at.button(key="transcribe").click().run()
    deadline = time.monotonic() + 1500
    while "job" in at.session_state:
        snapshot = at.session_state.job.snapshot()
        assert time.monotonic() < deadline, f"transcription did not finish: {snapshot.status} {snapshot.processed_s}"
        time.sleep(2.0)
        at.run()
    assert not at.exception
    ((result_id, result),) = [(card.id, card.result) for card in at.session_state.cards.values()]
    assert result.transcript.info.options.speakers is not None
    return at, result_id


def test_switch_column_rename_move_and_merge_reach_the_copy_block_and_downloads(
    monkeypatch, tiny_model_dir, two_speakers_wav, served
) -> None:
    at, result_id = _transcribed(monkeypatch, tiny_model_dir, two_speakers_wav, count="2")
    (card,) = at.session_state.cards.values()
    transcript = card.result.transcript
    assert [s.id for s in transcript.speakers] == ["S1", "S2"]
    table = at.dataframe[-1].value
    assert list(table["Speaker"]) == [s.speaker for s in transcript.segments]
    assert at.code[0].value.startswith(("Speaker 1: ", "Speaker 2: "))
    assert len(at.get("audio")) >= 4  # the upload's preview, the result's player, and one clip per speaker

    at.text_input(key=f"name-{result_id}-S1").set_value("Alice").run()
    assert "Alice: " in at.code[0].value and "Speaker 1" not in at.code[0].value
    vtt = served["talk.vtt"].decode() if isinstance(served["talk.vtt"], bytes) else served["talk.vtt"]
    assert "<v Alice>" in vtt and "<v Speaker 1>" not in vtt
    assert json.loads(served["talk.json"])["speakers"][0] == {"id": "S1", "name": "Alice"}

    at.text_input(key=f"name-{result_id}-S2").set_value("Alice").run()  # a name taken: refused, said why
    assert any("already called 'Alice'" in c.value for c in at.caption)
    assert "Speaker 2: " in at.code[0].value

    second = next(i for i, s in enumerate(transcript.segments) if s.speaker == "S2")
    at.session_state[f"edit-{result_id}-0"] = {"edited_rows": {second: {"Speaker": "S1"}}}
    at.run()
    moved = json.loads(served["talk.json"])["segments"][second]
    assert moved["speaker"] == "S1"

    at.selectbox(key=f"merge-from-{result_id}").set_value("S2")
    at.selectbox(key=f"merge-into-{result_id}").set_value("S1")
    at.button(key=f"merge-{result_id}").click().run()
    assert "Speaker 2" not in at.code[0].value and at.code[0].value.startswith("Alice: ")
    assert json.loads(served["talk.json"])["speakers"] == [{"id": "S1", "name": "Alice"}]

    # A reload brings the names, the move and the merge back with the result (page_restore).
    reloaded = AppTest.from_file(APP, default_timeout=180)
    reloaded.query_params["session"] = at.query_params["session"]
    reloaded.run()
    assert not reloaded.exception
    assert reloaded.code[0].value == at.code[0].value
