"""The API server (asr/server/) as its clients see it: the real `openai` client (3.51.0, no retries) on loopback,
Open WebUI's request byte for byte, and each bad input with its status and OpenAI's error shape.

The tiny checkpoint writes random text, the same for the same audio: every answer is compared with the
library's own transcript of the same bytes, made in this process by the same engine.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
from urllib.parse import urlsplit

import httpx2
import openai
import pytest
from openai.types.audio import TranscriptionTextSegmentEvent
from server_fixtures import TEST_KEY, RunningServer, running_server

import asr
from asr import tempfiles
from asr.loopback import is_loopback
from asr.server.app import Service
from asr.server.errors import APIError
from asr.server.form import language
from asr.server.security import host_allowed, key_matches, origin_allowed
from asr.server.settings import ServerSettings
from testbed.corpus import clip, pyav_bytes, soundfile_bytes, text

ERROR_FIELDS = {"message", "type", "param", "code"}


def client(server: RunningServer, api_key: str = "not-checked") -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key=api_key, max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def expected(engine, speech_wav: bytes) -> asr.Transcript:
    """The library's transcript of the test speech; the tiny checkpoint's text must not be empty."""
    transcript = asr.transcribe_all(speech_wav, engine=engine)
    assert transcript.text.strip() and len(transcript.segments) >= 1
    return transcript


# -- the openai client in every response format ------------------------------------------------------------------


def test_json(api_server, speech_wav, expected):
    result = client(api_server).audio.transcriptions.create(model="whisper-1", file=("speech.wav", speech_wav))
    assert result.text == expected.text
    assert result.usage is not None and result.usage.type == "duration"
    assert result.usage.seconds == 4  # 3.7 s, rounded up as OpenAI bills


@pytest.mark.parametrize("fmt", ["text", "srt", "vtt"])
def test_plain_formats_are_raw_text(api_server, speech_wav, expected, fmt):
    """Not JSON strings (vllm#49095): the body is the file, as `asr.render` writes it."""
    result = client(api_server).audio.transcriptions.create(
        model="whisper-1", file=("speech.wav", speech_wav), response_format=fmt
    )
    assert result == asr.render(expected, "txt" if fmt == "text" else fmt)
    raw = httpx2.post(
        f"{api_server.base_url}/audio/transcriptions",
        files={"file": ("speech.wav", speech_wav)},
        data={"response_format": fmt},
        timeout=120,
    )
    assert raw.headers["content-type"] == "text/plain; charset=utf-8"
    assert raw.text == result and not raw.text.startswith('"')


def test_verbose_json_with_words_and_segments(api_server, speech_wav, expected):
    result = client(api_server).audio.transcriptions.create(
        model="whisper-1",
        file=("speech.wav", speech_wav),
        response_format="verbose_json",
        timestamp_granularities=["word", "segment"],
        language="en-US",
    )
    forced = asr.transcribe_all(speech_wav, engine=api_server.service.engine, options=_english())
    assert result.text == forced.text and result.language == "english"
    assert result.duration == pytest.approx(expected.info.duration_s, abs=1e-3)
    spoken = [segment for segment in forced.segments if segment.text]
    assert result.segments is not None and result.words is not None
    assert [(s.id, s.text) for s in result.segments] == list(enumerate(segment.text for segment in spoken))
    for ours, theirs in zip(spoken, result.segments, strict=True):
        assert (theirs.start, theirs.end) == (round(ours.start_s, 3), round(ours.end_s, 3))
        assert theirs.seek == round(ours.start_s * 100) and theirs.tokens == [] and theirs.temperature == 0.0
        assert theirs.avg_logprob == 0.0 and theirs.no_speech_prob == 0.0 and theirs.compression_ratio > 0
        assert theirs.model_extra is not None
        assert theirs.model_extra["flags"] == [flag.value for flag in ours.flags]  # our extra field rides along
    words = [word for segment in spoken for word in segment.words]
    assert [w.word for w in result.words] == [w.text for w in words] and words
    assert all(a.start <= b.start for a, b in zip(result.words, result.words[1:], strict=False))


def test_verbose_json_gives_segments_only_by_default(api_server, speech_wav):
    result = client(api_server).audio.transcriptions.create(
        model="anything", file=("speech.wav", speech_wav), response_format="verbose_json"
    )
    assert result.segments and result.words is None


def test_stream_deltas_join_to_the_done_text(api_server, long_speech_wav, engine):
    expected = asr.transcribe_all(long_speech_wav, engine=engine)
    assert len([s for s in expected.segments if s.text]) >= 2, "one segment would not show the deltas joining"
    events = list(
        client(api_server).audio.transcriptions.create(
            model="whisper-1", file=("long.wav", long_speech_wav), stream=True
        )
    )
    deltas = [event.delta for event in events if event.type == "transcript.text.delta"]
    assert [event.type for event in events] == ["transcript.text.delta"] * len(deltas) + ["transcript.text.done"]
    done = events[-1]
    assert done.type == "transcript.text.done"
    assert len(deltas) >= 2 and "".join(deltas) == done.text == expected.text


def test_with_a_key(serve_engine, speech_wav, expected):
    with serve_engine(api_key=TEST_KEY) as server:
        result = client(server, TEST_KEY).audio.transcriptions.create(model="whisper-1", file=("a.wav", speech_wav))
        assert result.text == expected.text
        assert [model.id for model in client(server, TEST_KEY).models.list()] == [server.service.model_id, "whisper-1"]
        with pytest.raises(openai.AuthenticationError) as wrong:
            client(server, TEST_KEY + "x").audio.transcriptions.create(model="whisper-1", file=("a.wav", speech_wav))
        _assert_error(wrong.value.response, 401, "invalid_api_key")
        key_in_url = httpx2.get(f"{server.base_url}/models?api_key={TEST_KEY}", timeout=10)
        _assert_error(key_in_url, 401, "key_in_url")
        assert httpx2.get(f"{server.url}/health", timeout=10).json()["status"] == "ok"  # no key needed to ask


def test_models_and_health(api_server):
    models = client(api_server).models.list()
    assert [model.id for model in models] == [api_server.service.model_id, "whisper-1"]
    assert client(api_server).models.retrieve("whisper-1").id == "whisper-1"
    with pytest.raises(openai.NotFoundError) as missing:
        client(api_server).models.retrieve("gpt-4o-transcribe")
    _assert_error(missing.value.response, 404, "model_not_found")
    assert api_server.health() == {"status": "ok", "model": api_server.service.model_id, "running": 0, "waiting": 0}


# -- Open WebUI --------------------------------------------------------------------------------------------------


def test_open_webui_request_byte_for_byte(api_server, speech_webm, engine):
    """What Open WebUI's backend (routers/audio.py) sends with `requests`: its form fields first, then a WebM
    recording from the browser under a .wav name (open-webui#14101), with no Content-Type on the file part."""
    boundary = "8a5d1f1a9f0c4c2e9d1b7e3f6a2c4b10"
    fields = [("model", "whisper-1"), ("response_format", "verbose_json"), ("timestamp_granularities[]", "segment")]
    body = b"".join(
        [
            *(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in fields),
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '.encode(),
            b'filename="0b7c6d0e-3f57-4a41-9f0e-6d6f2a3c1b2e.wav"\r\n\r\n',
            speech_webm,
            f"\r\n--{boundary}--\r\n".encode(),
        ]
    )
    url = urlsplit(api_server.url)
    head = (
        f"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: {url.netloc}\r\nUser-Agent: python-requests/2.32.3\r\n"
        "Accept-Encoding: gzip, deflate\r\nAccept: */*\r\nConnection: keep-alive\r\n"
        "Authorization: Bearer sk-open-webui\r\n"
        f"Content-Length: {len(body)}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\n\r\n"
    )
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=120)
    connection.send(head.encode() + body)
    response = http.client.HTTPResponse(connection.sock, method="POST")
    response.begin()
    answer = json.loads(response.read())
    connection.close()
    assert response.status == 200, answer
    expected = asr.transcribe_all(speech_webm, engine=engine)
    assert answer["text"] == expected.text and answer["text"]
    assert [segment["text"] for segment in answer["segments"]] == [s.text for s in expected.segments if s.text]
    assert {"id", "start", "end", "text"} <= set(answer["segments"][0]) and "words" not in answer


# -- bad input: each gets its status, OpenAI's error body, x-should-retry: false, and no traceback ----------------


def _assert_error(response: httpx2.Response, status: int, code: str | None = None, param: str | None = None) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == ERROR_FIELDS, body
    assert body["error"]["message"] and "Traceback" not in response.text and 'File "' not in response.text
    if status < 500:
        assert response.headers["x-should-retry"] == "false"
    if code is not None:
        assert body["error"]["code"] == code, body
    if param is not None:
        assert body["error"]["param"] == param, body
    return body["error"]


def _refused(server: RunningServer, file: bytes, status: int = 400, **fields) -> dict:
    with pytest.raises(openai.APIStatusError) as refused:
        client(server).audio.transcriptions.create(model="whisper-1", file=("upload.wav", file), **fields)
    return _assert_error(refused.value.response, status)


def test_not_audio(api_server):
    error = _refused(api_server, text())
    assert error["param"] == "file" and "not an audio or video file" in error["message"]


def test_empty_file(api_server):
    assert "empty (0 bytes)" in _refused(api_server, b"")["message"]


def test_truncated_file(api_server, speech_webm):
    error = _refused(api_server, speech_webm[:300])
    assert error["param"] == "file" and "truncated or damaged" in error["message"]


def test_video_without_sound(api_server):
    error = _refused(api_server, pyav_bytes("mp4", [], video_s=2.0))
    assert "no audio track" in error["message"]


def test_too_big(serve_engine):
    with serve_engine(max_upload_mb=0.2) as server:
        big = soundfile_bytes(clip())  # 119 kB, over 0.2 MB + the form's allowance with four copies
        error = _refused(server, big * 4, 413)
        assert "larger than this server's limit" in error["message"] and error["code"] == "request_too_large"
        chunked = httpx2.post(  # no Content-Length: stopped while it is read
            f"{server.base_url}/audio/transcriptions",
            content=iter([big] * 4),
            headers={"content-type": "multipart/form-data; boundary=x"},
            timeout=30,
        )
        _assert_error(chunked, 413, "request_too_large")


def test_unknown_language(api_server, speech_wav):
    error = _refused(api_server, speech_wav, language="klingon")
    assert error["param"] == "language" and "Unknown language 'klingon'" in error["message"]


@pytest.mark.parametrize(
    "fields, param",
    [
        ({"response_format": "diarised_json"}, "response_format"),
        ({"speakers": "many"}, "speakers"),
        ({"speakers": "9"}, "speakers"),
        (
            {"response_format": "diarized_json", "known_speaker_references[]": "data:audio/wav;base64,AAAA"},
            "known_speaker_references",
        ),
        ({"known_speaker_names[]": "Alice"}, "known_speaker_names"),
        ({"speakers": "auto", "known_speaker_names[]": ""}, "known_speaker_names"),
        ({"timestamp_granularities[]": "sentence"}, "timestamp_granularities"),
        ({"temperature": "2"}, "temperature"),
        ({"stream": "maybe"}, "stream"),
    ],
)
def test_bad_fields(api_server, speech_wav, fields, param):
    response = httpx2.post(
        f"{api_server.base_url}/audio/transcriptions", files={"file": ("a.wav", speech_wav)}, data=fields, timeout=30
    )
    _assert_error(response, 400, param=param)


def test_no_file_and_no_form(api_server):
    _assert_error(httpx2.post(f"{api_server.base_url}/audio/transcriptions", data={"model": "x"}, timeout=30), 400)
    _assert_error(httpx2.post(f"{api_server.base_url}/audio/transcriptions", json={"file": "x"}, timeout=30), 400)


def test_foreign_origin(api_server, speech_wav):
    """A page elsewhere may POST a form here without a preflight; it is refused before the model hears it."""
    for origin in ("http://evil.example", "null", api_server.url.replace("127.0.0.1", "localhost")):
        response = httpx2.post(
            f"{api_server.base_url}/audio/transcriptions",
            files={"file": ("a.wav", speech_wav)},
            headers={"origin": origin},
            timeout=30,
        )
        _assert_error(response, 403, "foreign_origin")
        assert "access-control-allow-origin" not in response.headers  # CORS stays off
    same = httpx2.get(f"{api_server.url}/health", headers={"origin": api_server.url}, timeout=10)
    assert same.status_code == 200


def test_wrong_host(api_server):
    """DNS rebinding: a page at rebind.example resolved to 127.0.0.1 still sends its own name as Host."""
    port = urlsplit(api_server.url).port
    for host in (f"rebind.example:{port}", "localhost.evil.example", ""):
        response = httpx2.get(f"{api_server.url}/health", headers={"host": host}, timeout=10)
        _assert_error(response, 400, "invalid_host")
    for host in (f"localhost:{port}", f"[::1]:{port}", "127.0.0.1"):
        assert httpx2.get(f"{api_server.url}/health", headers={"host": host}, timeout=10).status_code == 200


@pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")  # the client marks translations deprecated
def test_translations(api_server, speech_wav):
    with pytest.raises(openai.BadRequestError) as refused:
        client(api_server).audio.translations.create(model="whisper-1", file=("a.wav", speech_wav))
    error = _assert_error(refused.value.response, 400, "translation_unsupported")
    assert "does not translate" in error["message"]


def test_missing_model_is_503_with_how_to_download(tmp_path, speech_wav):
    problem = asr.ModelNotFoundError("The model X is not on this computer yet. Run python -m asr download.")
    from asr.server.errors import from_asr_error

    service = Service(ServerSettings(port=0), None, model_problem=from_asr_error(problem))
    with running_server(service) as server:
        with pytest.raises(openai.InternalServerError) as refused:
            client(server).audio.transcriptions.create(model="whisper-1", file=("a.wav", speech_wav))
        error = _assert_error(refused.value.response, 503, "model_not_found")
        assert "python -m asr download" in error["message"]
        assert refused.value.response.headers["x-should-retry"] == "false"  # retrying cannot bring the model
        assert server.health()["status"] == "no_model"


def test_every_path_leaves_no_temporary_folder(api_server, long_speech_wav):
    """The upload stays in memory; what the pipeline spills it deletes, after answers and after refusals alike."""
    before = set(tempfiles.leftover_workdirs())
    client(api_server).audio.transcriptions.create(model="whisper-1", file=("a.wav", long_speech_wav))
    _refused(api_server, text())
    assert set(tempfiles.leftover_workdirs()) == before


# -- the pieces on their own ----------------------------------------------------------------------------------


def test_host_and_origin_rules():
    assert host_allowed("127.0.0.1:8000", "127.0.0.1") and host_allowed("[::1]:1", "127.0.0.1")
    assert host_allowed("LOCALHOST", "127.0.0.1") and host_allowed("127.0.0.2", "127.0.0.1")
    assert not host_allowed("192.168.1.5:8000", "127.0.0.1") and not host_allowed("attacker.example", "127.0.0.1")
    assert host_allowed("192.168.1.5:8000", "0.0.0.0") and not host_allowed("attacker.example:8000", "0.0.0.0")
    assert host_allowed("box.lan:8000", "box.lan")
    assert origin_allowed(None, "127.0.0.1:8000") and origin_allowed("http://127.0.0.1:8000", "127.0.0.1:8000")
    assert not origin_allowed("http://127.0.0.1:8501", "127.0.0.1:8000")  # another local page is foreign too
    assert not origin_allowed("", "127.0.0.1:8000") and not origin_allowed("null", "127.0.0.1:8000")
    # Malformed headers (an unclosed IPv6 bracket makes urlsplit raise) are refused, not a traceback.
    assert not host_allowed("[::1", "127.0.0.1") and not origin_allowed("http://[::1", "[::1]:8000")


def test_key_rules():
    assert key_matches("Bearer abc", "abc") and key_matches("bearer  abc ", "abc")
    assert not key_matches("Bearer abd", "abc") and not key_matches("abc", "abc") and not key_matches(None, "abc")
    assert not key_matches("Bearer é", "abc")


def test_language_forms():
    assert language("en") == language("en-US") == language("en_gb") == language("English") == "English"
    assert language("") is None and language(None) is None and language("yue") == "Cantonese"
    with pytest.raises(APIError) as refused:
        language("xx-YY")
    assert refused.value.param == "language" and refused.value.status == 400


def test_non_loopback_host_needs_a_key():
    assert is_loopback("localhost") and is_loopback("127.0.0.1") and is_loopback("[::1]")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")
    with pytest.raises(asr.OptionsError, match="--api-key"):
        ServerSettings(host="0.0.0.0").validate()
    ServerSettings(host="0.0.0.0", api_key="k").validate()
    assert "secret" not in repr(ServerSettings(api_key="secret"))


def test_cli_refuses_a_public_host_without_a_key():
    result = subprocess.run(
        [sys.executable, "-m", "asr", "serve", "--host", "0.0.0.0"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2 and "--api-key" in result.stderr and "Traceback" not in result.stderr


def _english() -> asr.TranscribeOptions:
    return asr.TranscribeOptions(decode=asr.DecodeOptions(language="English"))


# -- speakers: diarized_json and our speakers field, on real CAM++ weights and a two-voice conversation ----------


@pytest.mark.slow
def test_diarized_json_labels_two_speakers_with_known_names(api_server, engine):
    from testbed.conversations import conversation

    talk = conversation("short_two")
    wav = soundfile_bytes(talk.samples)
    result = client(api_server).audio.transcriptions.create(
        model="gpt-4o-transcribe-diarize",
        file=("talk.wav", wav),
        response_format="diarized_json",
        known_speaker_names=["Alice"],
        chunking_strategy="auto",
    )
    options = asr.TranscribeOptions(speakers=asr.SpeakerOptions(names=("Alice",)))
    expected = asr.transcribe_all(wav, engine=engine, options=options)
    spoken = [s for s in expected.segments if s.text]
    labels = {"S1": "Alice", "S2": "B"}
    assert result.task == "transcribe" and result.text == expected.text
    assert [(s.id, s.type, s.text, s.speaker) for s in result.segments] == [
        (f"seg_{i}", "transcript.text.segment", s.text, labels[s.speaker or ""]) for i, s in enumerate(spoken)
    ]
    assert {s.id for s in expected.speakers or ()} == {"S1", "S2"}


@pytest.mark.slow
def test_verbose_json_with_speakers_and_a_diarized_stream(api_server, engine):
    from testbed.conversations import conversation

    wav = soundfile_bytes(conversation("short_two").samples)
    expected = asr.transcribe_all(wav, engine=engine, options=asr.TranscribeOptions(speakers=asr.SpeakerOptions()))
    spoken = [s for s in expected.segments if s.text]
    verbose = client(api_server).audio.transcriptions.create(
        model="whisper-1", file=("talk.wav", wav), response_format="verbose_json", extra_body={"speakers": "auto"}
    )
    assert verbose.segments is not None and verbose.model_extra is not None
    assert [s.model_extra["speaker"] for s in verbose.segments if s.model_extra] == [s.speaker for s in spoken]
    assert verbose.model_extra["speakers"] == [{"id": "S1", "name": "Speaker 1"}, {"id": "S2", "name": "Speaker 2"}]
    events = list(
        client(api_server).audio.transcriptions.create(
            model="gpt-4o-transcribe-diarize", file=("talk.wav", wav), response_format="diarized_json", stream=True
        )
    )
    assert [e.type for e in events] == ["transcript.text.segment"] * len(spoken) + ["transcript.text.done"]
    labels = {"S1": "A", "S2": "B"}
    segments = [e for e in events if isinstance(e, TranscriptionTextSegmentEvent)]
    assert [(e.text, e.speaker) for e in segments] == [(s.text, labels[s.speaker or ""]) for s in spoken]
