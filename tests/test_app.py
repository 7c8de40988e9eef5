"""The page through Streamlit's AppTest, with the real engine on the tiny checkpoint (QWEN3_ASR_MODEL)."""

from __future__ import annotations

import io
import json
import re
import shutil
import threading
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


def _transcribe(at: AppTest, wav: bytes) -> None:
    """Upload `wav` as meeting.wav, press Transcribe and wait for its card."""
    at.file_uploader(key="uploads-0").set_value(("meeting.wav", wav, "audio/wav")).run()
    at.button(key="transcribe").click().run()
    _finish(at)


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
    _transcribe(app, meeting_wav)
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
    _transcribe(app, meeting_wav)
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
    _transcribe(app, meeting_wav)
    ((result_id, _),) = _results(app)
    app.session_state[f"edit-{result_id}-0"] = {"edited_rows": {1: {"Text": "Please call Stella."}}}
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


def test_play_works_as_a_button_it_plays_the_sentence_clears_its_box_and_keeps_the_edits(app, meeting_wav):
    """`st.data_editor` tells of edits, not clicks: here the edits are given as the browser sends them."""
    _transcribe(app, meeting_wav)
    ((result_id, result),) = _results(app)
    assert result.transcript is not None, result.error
    second = result.transcript.segments[1]
    edit = {0: {"Text": "Please call Stella."}}
    app.session_state[f"edit-{result_id}-0"] = {"edited_rows": edit}
    app.run()
    app.session_state[f"edit-{result_id}-0"] = {"edited_rows": {**edit, 1: {"Play": True}}}  # then a tick
    app.run()
    player = app.get("audio")[-1]
    assert player.proto.start_time == int(second.start_s) and player.proto.autoplay
    table = app.dataframe[-1].value  # a fresh table: no box ticked, the edit written into its rows
    assert not table["Play"].any() and table["Text"][0] == "Please call Stella."
    assert app.code[0].value == f"Please call Stella.\n{second.text}"
    app.session_state[f"edit-{result_id}-1"] = {"edited_rows": {1: {"Play": True}}}  # the same sentence again
    app.run()
    again = app.get("audio")[-1]
    assert again.proto.start_time == player.proto.start_time and again.proto.autoplay
    assert again.proto.id != player.proto.id  # a new player, so the browser plays it from the start again
    assert not app.dataframe[-1].value["Play"].any()
    assert app.code[0].value == f"Please call Stella.\n{second.text}" and not app.exception


def test_clear_resets_inputs_and_results(app, meeting_wav):
    _transcribe(app, meeting_wav)
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
    _transcribe(app, meeting_wav)
    ((_, result),) = _results(app)
    assert result.transcript is not None, result.error
    assert result.transcript.segments and not result.error
    assert [w.value for w in app.warning] == [notice]


def _with_word_timestamps(monkeypatch, tiny_model_dir, tiny_aligner_dir) -> AppTest:
    """The page on the tiny checkpoints, English, word timestamps on."""
    monkeypatch.setenv("QWEN3_ASR_MODEL", str(tiny_model_dir))
    monkeypatch.setenv("QWEN3_ASR_ALIGNER", str(tiny_aligner_dir))
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.selectbox(key="language").set_value("English")
    at.toggle(key="word_timestamps").set_value(True).run()
    return at


def test_word_timestamps_switch_times_words_and_says_so_on_the_card(
    monkeypatch, tiny_model_dir, tiny_aligner_dir, meeting_wav
):
    at = _with_word_timestamps(monkeypatch, tiny_model_dir, tiny_aligner_dir)
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
    assert player.proto.start_time == 0 and not player.proto.autoplay
    ((result_id, _),) = _results(at)
    last = len(segments) - 1
    at.session_state[f"edit-{result_id}-0"] = {"edited_rows": {last: {"Play": True}}}
    at.run()
    player = at.get("audio")[-1]
    assert player.proto.start_time == int(segments[last].start_s) and player.proto.autoplay
    assert not at.exception


def test_the_progress_line_says_when_word_times_are_being_found(
    monkeypatch, tiny_model_dir, tiny_aligner_dir, meeting_wav
):
    """The real tiny aligner takes milliseconds, too short for a poll to see; here it is held after its first layer
    (a test hook around the real `align`, nothing replaced) until the page has shown the line."""
    from asr.aligner import QwenAligner

    real_align = QwenAligner.align
    reached, release = threading.Event(), threading.Event()

    def held_align(self, waves, texts, languages, progress=None):
        def told(share: float) -> None:
            progress(share)
            if 0 < share < 1 and not release.is_set():
                reached.set()
                release.wait(30)

        return real_align(self, waves, texts, languages, None if progress is None else told)

    monkeypatch.setattr(QwenAligner, "align", held_align)
    at = _with_word_timestamps(monkeypatch, tiny_model_dir, tiny_aligner_dir)
    at.file_uploader(key="uploads-0").set_value(("meeting.wav", meeting_wav, "audio/wav")).run()
    at.button(key="transcribe").click().run()
    try:
        assert reached.wait(60), "the aligner never ran"
        at.run()
        (line,) = [bar.text for bar in at.progress]
        assert re.fullmatch(
            r"\*\*meeting\.wav\*\* · Processed 0:0\d(\.\d)? / 0:\d\d · Finding word times… \d+%( · .*)?", line
        ), line
        # Tenths of a second while the run is slower than real time (or its speed is not known yet), else whole ones.
        speed = re.search(r" · (\d+\.\d)× real time", line)
        slow = speed is None or float(speed.group(1)) < 1.0
        assert bool(re.search(r"Processed 0:0\d\.\d /", line)) == slow, line
    finally:
        release.set()
    _finish(at)
    ((_, result),) = _results(at)
    assert result.transcript is not None and all(s.words for s in result.transcript.segments)


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
    _transcribe(app, meeting_wav)
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
    _transcribe(app, meeting_wav)
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


def _captions(at: AppTest) -> list[str]:
    return [c.value for c in at.caption]


def test_transcribe_again_replaces_each_card_in_the_inputs_order_and_says_what_made_it(app, meeting_wav):
    call = _wav(np.concatenate([silence(0.5), speak(SENTENCES[2]), silence(0.5)]))
    app.file_uploader(key="uploads-0").set_value(
        [("meeting.wav", meeting_wav, "audio/wav"), ("call.wav", call, "audio/wav")]
    ).run()
    app.button(key="transcribe").click().run()
    _finish(app)
    model = Path(app.session_state.model).name
    assert [s.value for s in app.subheader] == ["meeting.wav", "call.wav"]
    assert _captions(app).count(f"Made with {model} · language detected · estimated times") == 2
    first_ids = [card_id for card_id, _ in _results(app)]
    assert app.button(key="transcribe").proto.label == "Transcribe again"
    app.selectbox(key="language").set_value("German")
    app.button(key="transcribe").click().run()
    _finish(app)
    assert [s.value for s in app.subheader] == ["meeting.wav", "call.wav"]  # replaced in place, not stacked
    assert _captions(app).count(f"Made with {model} · German · estimated times") == 2
    assert not set(first_ids) & {card_id for card_id, _ in _results(app)}  # new results: no old edits on them
    assert all(r.transcript and r.transcript.info.options.decode.language == "German" for _, r in _results(app))
    app.file_uploader(key="uploads-0").set_value(  # the files in another order: the cards follow them
        [("call.wav", call, "audio/wav"), ("meeting.wav", meeting_wav, "audio/wav")]
    ).run()
    assert [s.value for s in app.subheader] == ["call.wav", "meeting.wav"] and len(app.code) == 2


def test_a_failed_run_again_keeps_the_finished_result(app, meeting_wav, monkeypatch):
    """A run that fails for a reason no input can show here (the model breaks) is simulated: real faults are
    tested in the pipeline's own tests."""
    _transcribe(app, meeting_wav)
    ((_, before),) = _results(app)

    def broken(self, chunks, **kwargs):
        raise asr.ModelLoadError("The model broke down.")

    monkeypatch.setattr(asr.QwenEngine, "transcribe_chunks", broken)
    app.button(key="transcribe").click().run()
    _finish(app)
    ((_, after),) = _results(app)
    assert before.transcript is not None
    assert after is before and app.code[0].value == before.transcript.text
    assert any("did not finish (The model broke down.): this is the earlier result" in w.value for w in app.warning)


def test_aiff_and_wma_are_transcribed_and_a_text_file_is_refused_in_plain_words(app, encode_speech):
    aiff = encode_speech("talk.aiff", format="aiff", codec="pcm_s16be").read_bytes()
    wma = encode_speech("talk.wma", format="asf", codec="wmav2", rate=44_100, codec_options={"b": "64000"}).read_bytes()
    note = b"Meeting notes\n- call Stella\n- budget for next year\n" * 5
    assert (
        "AIFF" in app.file_uploader(key="uploads-0").proto.label
        and "WMA" in app.file_uploader(key="uploads-0").proto.label
    )
    assert list(app.file_uploader(key="uploads-0").proto.type) == []  # the decoder decides, not the browser
    app.file_uploader(key="uploads-0").set_value(
        [("talk.aiff", aiff, "audio/x-aiff"), ("talk.wma", wma, "audio/x-ms-wma"), ("notes.txt", note, "text/plain")]
    ).run()
    assert any(" · PCM 16-bit · " in c for c in _captions(app)) and any(" · WMA · " in c for c in _captions(app))
    (error,) = app.error
    assert "not an audio or video file (it looks like a text file)" in error.value
    app.button(key="transcribe").click().run()
    _finish(app)
    assert [r.name for _, r in _results(app)] == ["talk.aiff", "talk.wma"]
    assert all(r.transcript and r.transcript.segments and not r.error for _, r in _results(app))


def test_the_first_recording_is_recording_1_beside_uploads(app, meeting_wav):
    recording = _wav(np.concatenate([silence(0.5), speak(SENTENCES[2]), silence(0.5)]))
    app.file_uploader(key="uploads-0").set_value(("meeting.wav", meeting_wav, "audio/wav"))
    app.audio_input(key="recording-0").set_value(("recording.wav", recording, "audio/wav")).run()
    assert [m.value for m in app.markdown if m.value.startswith("**")] == ["**meeting.wav**", "**Recording 1.wav**"]


def test_a_model_folder_that_fails_keeps_the_model_choice_and_speaks_of_the_page(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("QWEN3_ASR_MODEL", str(tmp_path / "no-model-here"))
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    (warning,) = at.warning
    assert warning.value.startswith(f"No model folder at {tmp_path / 'no-model-here'}.")
    assert "below" in warning.value and "python -m asr" not in warning.value and "QWEN3_ASR" not in warning.value
    choice = at.selectbox(key="model_choice")
    assert choice.options == ["Qwen3-ASR-0.6B", "Qwen3-ASR-1.7B", "Folder: no-model-here"]
    assert choice.value == str(tmp_path / "no-model-here")
    at.text_input(key="model_folder").input(str(tmp_path / "another")).run()
    at.button(key="use_model_folder").click().run()
    at.run()
    choice = at.selectbox(key="model_choice")  # still there after a second bad folder, with both folders
    assert choice.options[-2:] == ["Folder: no-model-here", "Folder: another"]
    assert choice.value == str(tmp_path / "another") and not at.exception
    choice.set_value(asr.DEFAULT_MODEL).run()
    at.run()
    assert at.button(key="download_model").proto.label == "Download Qwen3-ASR-0.6B (about 1.9 GB)"


def test_the_aligner_folder_field_and_a_failed_aligner_download(app, monkeypatch, tmp_path, tiny_aligner_dir):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    app.toggle(key="word_timestamps").set_value(True).run()
    # A mirror where nothing listens: the download fails at once, and says why where the button is.
    app.radio(key="source-aligner").set_value("Another mirror").run()
    app.text_input(key="mirror-aligner").input("http://127.0.0.1:9").run()
    app.button(key="download_aligner").click().run()
    deadline = time.monotonic() + 60
    while "download_job" in app.session_state:
        assert time.monotonic() < deadline, "the download did not end"
        time.sleep(0.2)
        app.run()
    app.run()
    (error,) = app.sidebar.error
    assert error.value.startswith("The download stopped: Could not download Qwen/Qwen3-ForcedAligner-0.6B-hf from")
    assert "Connection refused" in error.value
    app.run()  # another rerun (any widget) keeps the message until the next try
    assert [e.value for e in app.sidebar.error] == [error.value]
    # A folder of the user's own: a wrong one is named, the right one is used.
    app.text_input(key="aligner_folder").input(str(tmp_path / "nothing")).run()
    app.button(key="use_aligner_folder").click().run()
    assert any(w.value.startswith(f"No model folder at {tmp_path / 'nothing'}.") for w in app.sidebar.warning)
    assert not any("python -m asr" in w.value or "QWEN3_ASR" in w.value for w in app.sidebar.warning)
    app.text_input(key="aligner_folder").input(str(tiny_aligner_dir)).run()
    app.button(key="use_aligner_folder").click().run()
    assert any(c.value.startswith(f"Aligner: {tiny_aligner_dir}") for c in app.sidebar.caption)
    assert not app.sidebar.error and not app.exception


def test_the_leave_page_guard_is_on_while_there_are_results(app, meeting_wav):
    def guard() -> bool:
        (script,) = [h.proto.body for h in app.get("html") if "__transcriberGuard" in h.proto.body]
        return "window.__transcriberGuard = true;" in script

    assert not guard()
    app.file_uploader(key="uploads-0").set_value(("meeting.wav", meeting_wav, "audio/wav")).run()
    app.button(key="transcribe").click().run()
    assert guard()  # while it runs
    _finish(app)
    assert guard()
    app.button(key="clear").click().run()
    assert not guard()


def _reloaded(token: str) -> AppTest:
    """A new session of the page at an address that carries `token`, as a reload of the browser's tab starts one."""
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["session"] = token
    at.run()
    assert not at.exception
    return at


def test_a_reload_brings_back_the_results_and_edits_once_and_clear_forgets_them(app, meeting_wav):
    _transcribe(app, meeting_wav)
    ((result_id, result),) = _results(app)
    app.session_state[f"edit-{result_id}-0"] = {"edited_rows": {1: {"Text": "Please call Stella."}}}
    app.run()
    token = app.query_params["session"]
    reloaded = _reloaded(token)
    assert [card.result for card in reloaded.session_state.cards.values()] == [result]
    assert [header.value for header in reloaded.subheader] == ["meeting.wav"]
    assert reloaded.code[0].value.endswith("\nPlease call Stella.")  # the edit came back with it
    new_token = reloaded.query_params["session"]
    assert new_token != token
    assert not _reloaded(token).session_state.cards  # taken once: a second tab at the old address starts empty
    reloaded.button(key="clear").click().run()
    assert not _reloaded(new_token).session_state.cards  # Clear: nothing is kept


def test_a_kept_page_is_dropped_after_its_idle_time(app, meeting_wav):
    import page_restore

    _transcribe(app, meeting_wav)
    page_restore.STORE.sweep(now=time.monotonic() + page_restore.IDLE_S - 60)
    reloaded = _reloaded(app.query_params["session"])
    assert reloaded.session_state.cards  # within its idle time
    page_restore.STORE.sweep(now=time.monotonic() + page_restore.IDLE_S + 1)
    assert not _reloaded(reloaded.query_params["session"]).session_state.cards


def test_a_damaged_model_folder_is_named_in_the_page_s_own_words(monkeypatch, tmp_path, tiny_model_dir):
    broken = tmp_path / "damaged"
    shutil.copytree(tiny_model_dir, broken)
    (broken / "model.safetensors").write_bytes(b"not safetensors at all")
    monkeypatch.setenv("QWEN3_ASR_MODEL", str(broken))
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    (error,) = at.error
    assert error.value.startswith(f"Could not load the model from {broken}: ")
    assert error.value.endswith("Choose another model in the sidebar, or another folder below.")
    assert "python -m asr" not in error.value
    assert at.selectbox(key="model_choice").options == ["Qwen3-ASR-0.6B", "Qwen3-ASR-1.7B", "Folder: damaged"]
    at.text_input(key="model_folder").input(str(tiny_model_dir)).run()
    at.button(key="use_model_folder").click().run()
    at.run()
    assert not at.error and at.get("file_uploader") and not at.exception  # the good folder is in use
