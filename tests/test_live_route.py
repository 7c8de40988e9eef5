"""The live WebSocket route (live_page.py) in process, with the real tiny engine: who may connect, one session
per model, a dropped client frees it, a whole session from the browser's rate to a result (with speakers too),
and the tickets of gone pages are dropped."""

from __future__ import annotations

import json
import time

import av
import numpy as np
import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

import asr
import live_page
from asr.live import LiveOptions
from testbed.conversations import conversation
from testbed.speech import SENTENCES, speech_with_pauses

BASE = "http://127.0.0.1:8531"
ORIGIN = {"origin": BASE}
RATE = 48_000


@pytest.fixture(scope="module")
def client():
    return TestClient(Starlette(routes=live_page.routes()), base_url=BASE, client=("127.0.0.1", 50_000))


@pytest.fixture(scope="module")
def options():
    return LiveOptions(transcribe=asr.TranscribeOptions(decode=asr.DecodeOptions(language="English")))


@pytest.fixture(scope="module")
def speech_48k() -> np.ndarray:
    """Two sentences as a browser captures them: 48 kHz float32."""
    samples, _ = speech_with_pauses(SENTENCES[:2], (1.2,))
    resampler = av.AudioResampler(format="flt", layout="mono", rate=RATE)
    frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="flt", layout="mono")
    frame.sample_rate = asr.SAMPLE_RATE
    frames = [*resampler.resample(frame), *resampler.resample(None)]
    return np.concatenate([f.to_ndarray().reshape(-1) for f in frames]).astype("<f4")


def _url(ticket: str, host: str = "127.0.0.1:8531") -> str:
    return f"ws://{host}{live_page.PATH}?ticket={ticket}"


@pytest.mark.parametrize(
    ("origin", "host", "client_host"),
    [
        ("http://evil.example", "127.0.0.1:8531", "127.0.0.1"),  # another site's page
        ("http://127.0.0.1:9999", "127.0.0.1:8531", "127.0.0.1"),  # another local server's page
        (None, "127.0.0.1:8531", "127.0.0.1"),  # no Origin at all: not a browser page
        ("http://192.168.1.20:8531", "192.168.1.20:8531", "192.168.1.33"),  # another computer on the LAN
    ],
)
def test_only_the_pages_own_connections_on_this_computer_are_accepted(engine, options, origin, host, client_host):
    ticket = live_page.open_ticket(engine, options, None)
    other = TestClient(Starlette(routes=live_page.routes()), base_url=BASE, client=(client_host, 50_000))
    headers = {"origin": origin} if origin else {}
    with pytest.raises(WebSocketDisconnect) as refused, other.websocket_connect(_url(ticket, host), headers=headers):
        pass
    assert refused.value.code == 1008


def test_a_connection_without_the_pages_ticket_is_refused(client):
    with pytest.raises(WebSocketDisconnect) as refused, client.websocket_connect(_url("guessed"), headers=ORIGIN):
        pass
    assert refused.value.code == 1008


def test_a_session_from_the_browsers_rate_to_a_result(client, engine, options, speech_48k):
    ticket = live_page.open_ticket(engine, options, None)
    with client.websocket_connect(_url(ticket), headers=ORIGIN) as socket:
        socket.send_text(json.dumps({"sample_rate": RATE}))
        for start in range(0, len(speech_48k), RATE // 10):
            socket.send_bytes(speech_48k[start : start + RATE // 10].tobytes())
        socket.send_text(json.dumps({"type": "stop"}))
        messages: list[dict] = []
        while not messages or messages[-1]["type"] != "done":
            messages.append(json.loads(socket.receive_text()))
    finals = [m for m in messages if m["type"] == "final"]
    assert len(finals) == 2
    taken = live_page.take_result(ticket)
    assert taken is not None
    transcript, wav = taken
    assert transcript.text.split("\n") == [s.text for s in transcript.segments] and transcript.segments
    assert " ".join(m["text"] for m in finals) == " ".join(s.text for s in transcript.segments)
    assert wav[:4] == b"RIFF" and asr.read_source_info(wav).duration_s == pytest.approx(
        len(speech_48k) / RATE, abs=0.05
    )
    assert live_page.take_result(ticket) is None  # handed over once


def test_a_second_session_is_refused_with_a_message_and_a_dropped_client_frees_the_model(
    client, engine, options, speech_48k
):
    first, second = (live_page.open_ticket(engine, options, None) for _ in range(2))
    with client.websocket_connect(_url(first), headers=ORIGIN) as socket:
        socket.send_text(json.dumps({"sample_rate": RATE}))
        socket.send_bytes(speech_48k[: RATE // 2].tobytes())
        with client.websocket_connect(_url(second), headers=ORIGIN) as refused:
            message = json.loads(refused.receive_text())
        assert message["type"] == "error" and "Another live session" in message["message"]
    # The first client went away without Stop: its session ends and the model is free for the next one.
    deadline = time.monotonic() + 10
    while True:
        with client.websocket_connect(_url(second), headers=ORIGIN) as socket:
            socket.send_text(json.dumps({"sample_rate": RATE}))
            socket.send_text(json.dumps({"type": "stop"}))
            message = json.loads(socket.receive_text())
        if message["type"] == "done" or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert message["type"] == "done"


def test_the_tickets_of_gone_pages_are_dropped_but_not_while_in_use(client, engine, options, monkeypatch):
    """A closed tab's ticket (its model, and a result nobody took) does not stay in memory; a running one does."""
    monkeypatch.setattr(live_page, "TICKET_UNSEEN_S", 0.0)  # gone at the next look (60 s in the app)
    gone = live_page.open_ticket(engine, options, None, still_wanted=lambda: False)
    unknown = live_page.open_ticket(engine, options, None)  # no runtime to ask: it lasts only while seen
    page_open = True
    running = live_page.open_ticket(engine, options, None, still_wanted=lambda: page_open)
    open_page = live_page.open_ticket(engine, options, None, still_wanted=lambda: True)  # a look at the others
    for dropped in (gone, unknown):
        assert dropped not in live_page._tickets
        with pytest.raises(WebSocketDisconnect) as refused, client.websocket_connect(_url(dropped), headers=ORIGIN):
            pass
        assert refused.value.code == 1008
    with client.websocket_connect(_url(running), headers=ORIGIN) as socket:
        socket.send_text(json.dumps({"sample_rate": RATE}))
        page_open = False  # the tab is closed while its session still runs
        live_page.open_ticket(engine, options, None, replaces=open_page, still_wanted=lambda: True)  # another look
        assert running in live_page._tickets  # its page is gone, but its session runs: kept
        socket.send_text(json.dumps({"type": "stop"}))
        assert json.loads(socket.receive_text())["type"] == "done"
    assert live_page.take_result(running) is not None  # the result waits for its page...
    live_page.open_ticket(engine, options, None, still_wanted=lambda: True)
    assert running not in live_page._tickets  # ...until its page has been gone for a while


@pytest.mark.slow
def test_with_speakers_on_stop_finds_them_and_says_so(client, engine):
    """The real CAM++ over two espeak-ng voices: the page hears the pass's progress, the result has both."""
    speakers = LiveOptions(
        transcribe=asr.TranscribeOptions(
            decode=asr.DecodeOptions(language="English"), speakers=asr.SpeakerOptions(count=2)
        )
    )
    samples = conversation("short_two").samples.astype("<f4")
    ticket = live_page.open_ticket(engine, speakers, None)
    with client.websocket_connect(_url(ticket), headers=ORIGIN) as socket:
        socket.send_text(json.dumps({"sample_rate": asr.SAMPLE_RATE}))
        for start in range(0, len(samples), asr.SAMPLE_RATE // 10):
            socket.send_bytes(samples[start : start + asr.SAMPLE_RATE // 10].tobytes())
        socket.send_text(json.dumps({"type": "stop"}))
        messages: list[dict] = []
        while not messages or messages[-1]["type"] not in ("done", "error"):
            messages.append(json.loads(socket.receive_text()))
    assert messages[-1]["type"] == "done", messages[-1]
    said = [m["text"] for m in messages if m["type"] == "progress"]
    assert said and all(text.startswith("Finding speakers… ") for text in said) and said[-1].endswith("100%")
    taken = live_page.take_result(ticket)
    assert taken is not None
    transcript, _ = taken
    assert [s.id for s in transcript.speakers or ()] == ["S1", "S2"]
    assert {turn.speaker for turn in transcript.speaker_turns} == {"S1", "S2"}
    assert all(s.speaker in ("S1", "S2") for s in transcript.segments if s.text)
