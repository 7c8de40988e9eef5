"""The page through Streamlit's AppTest, with the real engine on the tiny checkpoint (QWEN3_ASR_MODEL)."""

from __future__ import annotations

import io
import json
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import docx
import numpy as np
import pytest
import soundfile as sf
from streamlit.runtime.media_file_manager import MediaFileManager
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
from streamlit.testing.v1 import AppTest

import asr
from asr.results import SegmentFlag
from testbed.speech import SENTENCES, silence, speak

APP = str(Path(__file__).parents[1] / "app.py")


def _wav(samples: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, 16_000, format="WAV")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def meeting_wav() -> bytes:
    return _wav(np.concatenate([speak(SENTENCES[0]), silence(3.0), speak(SENTENCES[1])]))


@pytest.fixture
def app(monkeypatch, tiny_model_dir) -> AppTest:
    monkeypatch.setenv("QWEN3_ASR_MODEL", str(tiny_model_dir))
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    assert not at.exception
    return at


def _results(at: AppTest) -> list[tuple[int, asr.FileResult]]:
    """(card id, result) of each card, in the order they were first made."""
    return [(card.id, card.result) for card in at.session_state.cards.values()]


def _finish(at: AppTest, timeout_s: float = 60) -> None:
    """Rerun the page (as the polling fragment would) until the background job has handed over."""
    deadline = time.monotonic() + timeout_s
    while "job" in at.session_state:
        assert time.monotonic() < deadline, "transcription did not finish"
        time.sleep(0.2)
        at.run()
    assert not at.exception


def test_upload_transcribe_shows_text_segments_and_downloads(app, meeting_wav):
    app.file_uploader(key="uploads-0").set_value(("meeting.wav", meeting_wav, "audio/wav")).run()
    assert any(c.value.startswith("0:1") and "· 16 kHz · mono · PCM 16-bit ·" in c.value for c in app.caption)
    assert app.button(key="transcribe").proto.disabled is False
    app.button(key="transcribe").click().run()
    _finish(app)
    ((_, result),) = _results(app)
    assert result.transcript is not None, result.error
    assert result.name == "meeting.wav" and len(result.transcript.segments) == 2
    assert app.code[0].value == result.transcript.text
    labels = [b.proto.label for b in app.get("download_button")]
    assert labels == ["TXT", "SRT", "VTT", "JSON", "DOCX"]
    assert {b.proto.icon for b in app.get("download_button")} == {":material/download:"}
    assert not app.error


def test_language_and_context_reach_the_engine(app, meeting_wav):
    app.selectbox(key="language").set_value("German")
    app.text_area(key="context").input("Stella, Kubernetes")
    app.file_uploader(key="uploads-0").set_value(("meeting.wav", meeting_wav, "audio/wav")).run()
    app.button(key="transcribe").click().run()
    _finish(app)
    ((_, result),) = _results(app)
    assert result.transcript is not None, result.error
    assert result.transcript.info.options.decode.language == "German"
    assert result.transcript.info.options.decode.context == "Stella, Kubernetes"
    assert result.transcript.languages == ("German",)


def test_recording_is_transcribed(app):
    recording = _wav(np.concatenate([silence(0.5), speak(SENTENCES[2]), silence(0.5)]))
    app.audio_input(key="recording-0").set_value(("recording.wav", recording, "audio/wav")).run()
    app.button(key="transcribe").click().run()
    _finish(app)
    ((_, result),) = _results(app)
    assert result.transcript is not None, result.error
    assert result.name == "Recording 1.wav" and result.transcript.segments


def test_bad_file_shows_its_error_and_keeps_the_earlier_result(app, meeting_wav):
    app.file_uploader(key="uploads-0").set_value(("meeting.wav", meeting_wav, "audio/wav")).run()
    app.button(key="transcribe").click().run()
    _finish(app)
    app.file_uploader(key="uploads-0").set_value(
        [("meeting.wav", meeting_wav, "audio/wav"), ("notes.mp3", b"my notes, not audio\n" * 40, "audio/mpeg")]
    ).run()
    assert any("not an audio or video file" in e.value for e in app.error)  # shown as soon as it is added
    app.button(key="transcribe").click().run()  # "Transcribe again": the good file runs, the bad one is skipped
    _finish(app)
    assert [r.name for _, r in _results(app)] == ["meeting.wav"] and not _results(app)[0][1].error
    assert len(app.code) == 1 and not app.exception


def test_edits_flow_into_every_download(app, meeting_wav, monkeypatch):
    served: dict[str, bytes] = {}  # file name -> bytes, recorded as Streamlit stores each download
    real_store = MemoryMediaFileStorage.load_and_get_id

    def recording_store(self, path_or_data, mimetype, kind, filename=None):
        if filename:
            served[filename] = path_or_data
        return real_store(self, path_or_data, mimetype, kind, filename)

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", recording_store)
    app.file_uploader(key="uploads-0").set_value(("meeting.wav", meeting_wav, "audio/wav")).run()
    app.button(key="transcribe").click().run()
    _finish(app)
    ((result_id, _),) = _results(app)
    app.session_state[f"edit-{result_id}"] = {"edited_rows": {1: {"Text": "Please call Stella."}}}
    app.run()
    assert app.code[0].value.endswith("\nPlease call Stella.")
    assert sorted(served) == ["meeting.docx", "meeting.json", "meeting.srt", "meeting.txt", "meeting.vtt"]
    document = docx.Document(io.BytesIO(served.pop("meeting.docx")))
    assert document.paragraphs[0].text == "meeting.wav"
    assert document.paragraphs[-1].text.endswith("  Please call Stella.")
    for name, data in served.items():
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        assert "Please call Stella." in text, name
    assert json.loads(served["meeting.json"])["segments"][1]["text"] == "Please call Stella."


def test_clear_resets_inputs_and_results(app, meeting_wav):
    app.file_uploader(key="uploads-0").set_value(("meeting.wav", meeting_wav, "audio/wav")).run()
    app.button(key="transcribe").click().run()
    _finish(app)
    assert app.button(key="transcribe").proto.label == "Transcribe again"
    app.button(key="clear").click().run()
    assert app.session_state.cards == {} and app.session_state.input_nonce == 1
    assert app.button(key="transcribe").proto.disabled  # nothing to transcribe until a new input arrives


def test_missing_model_offers_a_download_and_downloads_nothing_by_itself(monkeypatch, tmp_path):
    monkeypatch.setenv("QWEN3_ASR_MODEL", str(tmp_path / "no-model-here"))
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.exception
    assert any(w.value.startswith("No model folder at") for w in at.warning)  # says what is wrong with it
    assert at.button(key="download_model").proto.label == "Download Qwen3-ASR-0.6B (about 1.9 GB)"
    assert "download_job" not in at.session_state  # nothing started without the click
    hugging_face, *others = at.radio(key="source-model").options
    assert hugging_face.startswith("Hugging Face (") and others == ["hf-mirror.com (mainland China)", "Another mirror"]
    at.radio(key="source-model").set_value("Another mirror").run()
    assert at.button(key="download_model").proto.disabled  # a mirror needs its URL first
    at.text_input(key="mirror-model").input("https://mirror.example.org").run()
    assert not at.button(key="download_model").proto.disabled


def test_a_move_to_the_cpu_after_out_of_memory_is_shown_with_the_result(app, meeting_wav, monkeypatch):
    """No GPU here, so the engine's generate is made to run out of memory until `fall_back_to_cpu` is called."""
    engine = asr.QwenEngine
    real_transcribe, moved = engine.transcribe_chunks, list[bool]()

    def full_gpu(self, chunks, **kwargs):
        if not moved:
            raise asr.DeviceMemoryError("Ran out of cuda memory on a batch of 1 chunk(s).")
        return real_transcribe(self, chunks, **kwargs)

    notice = "The cuda ran out of memory even for one chunk, so the model moved to the CPU."

    def to_cpu(self):
        moved.append(True)
        return notice

    monkeypatch.setattr(engine, "transcribe_chunks", full_gpu)
    monkeypatch.setattr(engine, "fall_back_to_cpu", to_cpu)
    app.file_uploader(key="uploads-0").set_value(("meeting.wav", meeting_wav, "audio/wav")).run()
    app.button(key="transcribe").click().run()
    _finish(app)
    ((_, result),) = _results(app)
    assert result.transcript is not None, result.error
    assert result.transcript.segments and not result.error
    assert [w.value for w in app.warning] == [notice]


def test_word_timestamps_switch_times_words_and_says_so_on_the_card(
    monkeypatch, tiny_model_dir, tiny_aligner_dir, meeting_wav
):
    monkeypatch.setenv("QWEN3_ASR_MODEL", str(tiny_model_dir))
    monkeypatch.setenv("QWEN3_ASR_ALIGNER", str(tiny_aligner_dir))
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.selectbox(key="language").set_value("English")
    at.toggle(key="word_timestamps").set_value(True).run()
    assert any(c.value.startswith(f"Aligner: {tiny_aligner_dir}") for c in at.caption)
    at.file_uploader(key="uploads-0").set_value(("meeting.wav", meeting_wav, "audio/wav")).run()
    at.button(key="transcribe").click().run()
    _finish(at)
    ((_, result),) = _results(at)
    assert result.transcript is not None, result.error
    segments = result.transcript.segments
    assert segments and all(s.words and SegmentFlag.APPROXIMATE_TIMES not in s.flags for s in segments)
    assert result.transcript.info.aligner == str(tiny_aligner_dir)
    assert f"Made with {tiny_model_dir.name} · English · word timestamps" in [c.value for c in at.caption]
    player = at.get("audio")[-1]  # after the upload's own preview player
    assert player.proto.start_time == 0 and not player.proto.autoplay  # Play (a browser test) moves it
    assert not at.exception


def test_word_timestamps_without_the_aligner_offer_its_download(app, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    app.toggle(key="word_timestamps").set_value(True).run()
    assert app.button(key="download_aligner").proto.label == "Download Qwen3-ForcedAligner-0.6B (about 1.8 GB)"
    assert "download_job" not in app.session_state  # nothing is fetched without the click
    app.file_uploader(key="uploads-0").set_value(
        ("talk.wav", _wav(np.concatenate([silence(0.5), speak(SENTENCES[0]), silence(0.5)])), "audio/wav")
    ).run()
    app.button(key="transcribe").click().run()
    _finish(app)
    ((_, result),) = _results(app)
    assert result.transcript is not None, result.error
    assert all(SegmentFlag.APPROXIMATE_TIMES in s.flags for s in result.transcript.segments)
    assert any("times estimated from the speech" in note for note in app.dataframe[-1].value["Note"])


def test_download_all_offers_one_zip_once_several_files_are_done(app, meeting_wav, monkeypatch):
    deferred: dict[str, Callable[[], bytes]] = {}  # file name -> what Streamlit runs when the button is clicked
    real_add = MediaFileManager.add_deferred

    def recording_add(self, data_callable, mimetype, coordinates, file_name=None, **kwargs):
        deferred[file_name] = data_callable
        return real_add(self, data_callable, mimetype, coordinates, file_name, **kwargs)

    monkeypatch.setattr(MediaFileManager, "add_deferred", recording_add)
    app.file_uploader(key="uploads-0").set_value(("meeting.wav", meeting_wav, "audio/wav")).run()
    app.button(key="transcribe").click().run()
    _finish(app)
    assert not deferred  # one file: its own buttons are enough
    app.file_uploader(key="uploads-0").set_value(
        [("call.wav", meeting_wav, "audio/wav"), ("meeting.wav", meeting_wav, "audio/wav")]
    ).run()
    app.button(key="transcribe").click().run()
    _finish(app)
    (button,) = [b for b in app.get("download_button") if b.proto.id.endswith("-download-all")]
    assert [s.value for s in app.subheader] == ["call.wav", "meeting.wav"]  # the inputs' order
    by_name = {card.result.name: card for card in app.session_state.cards.values()}
    cards = [by_name["call.wav"], by_name["meeting.wav"]]
    assert button.proto.label == "Download all (2 files, every format, .zip)"
    with zipfile.ZipFile(io.BytesIO(deferred["transcripts.zip"]())) as archive:
        bases = ["call", "meeting"]
        assert archive.namelist() == [f"{base}.{fmt}" for base in bases for fmt in asr.FORMATS]
        texts = [archive.read(f"{base}.txt").decode("utf-8") for base in bases]
    assert texts == [asr.WRITERS["txt"](card.result.transcript) for card in cards]


def test_chinese_script_choice_reaches_the_options(app, meeting_wav):
    app.selectbox(key="chinese_script").set_value("Traditional, Hong Kong (繁體)")
    app.file_uploader(key="uploads-0").set_value(("meeting.wav", meeting_wav, "audio/wav")).run()
    app.button(key="transcribe").click().run()
    _finish(app)
    ((_, result),) = _results(app)
    assert result.transcript is not None, result.error
    assert result.transcript.info.options.chinese_script == "traditional-hk"


def test_model_choice_offers_the_larger_model_with_its_size(monkeypatch, tmp_path):
    monkeypatch.delenv("QWEN3_ASR_MODEL", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert at.button(key="download_model").proto.label == "Download Qwen3-ASR-0.6B (about 1.9 GB)"
    assert at.selectbox(key="model_choice").options == ["Qwen3-ASR-0.6B", "Qwen3-ASR-1.7B"]
    assert "about 1.9 GB · faster" in [c.value for c in at.sidebar.caption]
    at.selectbox(key="model_choice").set_value("Qwen/Qwen3-ASR-1.7B-hf").run()
    at.run()  # the page reruns itself after the switch
    assert "about 4.7 GB · more accurate, slower" in [c.value for c in at.sidebar.caption]
    assert at.session_state.model == "Qwen/Qwen3-ASR-1.7B-hf"
    assert at.button(key="download_model").proto.label == "Download Qwen3-ASR-1.7B (about 4.7 GB)"
    assert "download_job" not in at.session_state and not at.exception


def test_a_download_the_disk_cannot_hold_is_refused_before_it_starts(monkeypatch, tmp_path):
    """The disk cannot be filled here, so its free space is reported smaller than it is."""
    import shutil

    monkeypatch.delenv("QWEN3_ASR_MODEL", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**12, 10**12 - 10**9, 10**9))
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert any(e.value.startswith("Not enough free disk space for Qwen/Qwen3-ASR-0.6B-hf") for e in at.error)
    assert at.button(key="download_model").proto.disabled
    with pytest.raises(asr.DownloadError, match=r"1\.0 GB are free"):
        asr.download_model(asr.DEFAULT_MODEL)  # the CLI's download refuses it too, before going online
