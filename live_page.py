"""The page's Live tab: a components-v2 component that streams the microphone to `asr.live` over a WebSocket.

The browser captures the microphone with an AudioWorklet at its own rate (Firefox refuses a 16 kHz
AudioContext on a microphone) and sends 100 ms of float32 PCM at a time to ``/live/ws``, a route served by
Streamlit's own process (``st.App`` in app.py), so the model the page loaded serves live too. No WebRTC:
it would contact STUN/TURN servers on the internet, and browser and server are on one machine anyway.

The route accepts only what the page itself opens: a same-origin connection (``Origin`` matches ``Host``)
from the loopback address, carrying a ticket that the page's own script run made for its model and options.
One live session at a time per model (`asr.live.LiveSession` refuses a second one, and the page says so);
a client that disconnects ends its session and frees the model at once. The audio stays in memory.

A ticket holds its page's model and, once stopped, the result until the page takes it. Tickets of pages that are
gone (closed tabs) are dropped after `TICKET_UNSEEN_S` whenever a ticket is opened or used, so neither a model
switched away from nor a recording nobody took stays in memory.

With speakers on, Stop ends in the speaker pass a file gets (`LiveSession.finish`), and the tab shows its
progress ("Finding speakers… 40%").
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st
from starlette.middleware import Middleware
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketDisconnected

import asr

logger = logging.getLogger(__name__)

PATH = "/live/ws"
_POLL_S = 0.1  # how often new drafts and finals are sent to the page
_MAX_MESSAGE_BYTES = 4 * 192_000  # one second of float32 at 192 kHz: more than any microphone sends at a time
TICKET_UNSEEN_S = 60.0  # a ticket not in use whose page has been gone (or unheard of) this long is dropped


@dataclass
class _Ticket:
    """What one page's Start may use: its model and options; the result comes back here when it stops."""

    engine: Any
    options: asr.LiveOptions
    aligner: Any
    still_wanted: Callable[[], bool] | None = None  # whether its page is still open (None: not known)
    seen_at: float = field(default_factory=time.monotonic)  # when its page last ran, used it, or was open
    users: int = 0  # live connections on it now
    result: tuple[asr.Transcript, bytes] | None = field(default=None, repr=False)


_tickets: dict[str, _Ticket] = {}
_tickets_lock = threading.Lock()


def _prune() -> None:
    """Drop the tickets not in use whose page has not been seen for `TICKET_UNSEEN_S` (holding `_tickets_lock`)."""
    now = time.monotonic()
    for key, ticket in list(_tickets.items()):
        if ticket.users or (ticket.still_wanted is not None and ticket.still_wanted()):
            ticket.seen_at = now
        elif now - ticket.seen_at >= TICKET_UNSEEN_S:
            del _tickets[key]


def _use_ticket(key: str) -> _Ticket | None:
    """The ticket a connection names, counted as in use until `_let_go`; None: there is none (or no more)."""
    with _tickets_lock:
        _prune()
        ticket = _tickets.get(key)
        if ticket is not None:
            ticket.users += 1
        return ticket


def _let_go(ticket: _Ticket) -> None:
    with _tickets_lock:
        ticket.users -= 1
        ticket.seen_at = time.monotonic()


def refusal(headers: dict[str, str], client_host: str | None) -> str | None:
    """Why a WebSocket handshake is refused (None: accepted): only the page itself, on this computer, may connect."""
    host_header = headers.get("host", "")
    if not (asr.is_loopback(client_host) and asr.is_loopback(asr.host_name(host_header))):
        return "live dictation works only on this computer (open the page on localhost)"
    if not asr.is_own_origin(headers.get("origin", ""), host_header):
        return "live dictation accepts only the page's own connections"
    return None


def _event_message(event: asr.LiveEvent) -> str:
    return json.dumps(
        {"type": str(event.type), "text": event.text, "start_s": event.audio_start_s, "end_s": event.audio_end_s}
    )


@dataclass
class _Progress:
    """What a finishing session is doing, in the page's words (set on its thread, sent by `_send_events`)."""

    text: str | None = None

    def stage(self, stage: asr.Stage, share: float) -> None:
        self.text = stage.describe(share)


async def _send_events(websocket: WebSocket, session: asr.LiveSession, progress: _Progress) -> None:
    """Drafts and finals to the page as they come, whether the session waits for a file transcription, and
    the progress of the passes after Stop."""
    waiting, said = False, None
    while True:
        for event in session.poll():
            await websocket.send_text(_event_message(event))
        if session.waiting_for_turn != waiting:
            waiting = session.waiting_for_turn
            await websocket.send_text(json.dumps({"type": "waiting", "waiting": waiting}))
        if progress.text != said:
            said = progress.text
            await websocket.send_text(json.dumps({"type": "progress", "text": said}))
        await asyncio.sleep(_POLL_S)


async def live_socket(websocket: WebSocket) -> None:
    """The live route: audio in (a JSON header, then binary float32 PCM, then ``{"type": "stop"}``), events out."""
    reason = refusal(dict(websocket.headers), websocket.client.host if websocket.client else None)
    ticket = _use_ticket(websocket.query_params.get("ticket", "")) if reason is None else None
    if reason is None and ticket is None:
        reason = "this page's live session has expired: reload the page"
    if reason is not None or ticket is None:
        logger.warning("Live connection refused: %s", reason)
        await websocket.close(code=1008, reason=reason)  # before accept: the handshake fails with HTTP 403
        return
    try:
        await _serve(websocket, ticket)
    finally:
        _let_go(ticket)


async def _serve(websocket: WebSocket, ticket: _Ticket) -> None:
    """One live session on an accepted connection; its result goes to the ticket."""
    await websocket.accept()
    try:
        session = await asyncio.to_thread(
            asr.LiveSession, ticket.engine, options=ticket.options, aligner=ticket.aligner
        )
    except asr.ASRError as e:  # another live session has the model, or CAM++ (speakers) cannot be loaded
        logger.warning("Live session not started: %s", e)
        await websocket.send_text(json.dumps({"type": "error", "message": str(e)}))
        await websocket.close(code=1013 if isinstance(e, asr.LiveSessionBusy) else 1011)
        return
    progress = _Progress()
    sender = asyncio.create_task(_send_events(websocket, session, progress))
    finished = False
    try:
        rate = await _receive_rate(websocket)
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return  # the tab was closed or the network dropped: `finally` frees the model
            if message.get("bytes") is not None:
                data = message["bytes"]
                if len(data) > _MAX_MESSAGE_BYTES or len(data) % 4:
                    raise ValueError("an audio message of an unexpected size")
                await asyncio.to_thread(session.feed, np.frombuffer(data, dtype="<f4"), rate)
            elif json.loads(message.get("text") or "{}").get("type") == "stop":
                break
        transcript = await asyncio.to_thread(session.finish, stage=progress.stage)
        finished = True
        ticket.result = (transcript, session.wav_bytes())
        sender.cancel()
        for event in session.poll():
            await websocket.send_text(_event_message(event))
        if progress.text is not None:  # the pass's end, which a short pass may finish before the sender's next look
            await websocket.send_text(json.dumps({"type": "progress", "text": progress.text}))
        await websocket.send_text(json.dumps({"type": "done"}))
        await websocket.close()
    except (ValueError, asr.ASRError) as e:
        explanation = str(e) if isinstance(e, asr.ASRError) else "The page sent audio the server cannot read."
        logger.warning("Live session ended: %s", explanation)
        await websocket.send_text(json.dumps({"type": "error", "message": explanation}))
        await websocket.close(code=1011)
    except WebSocketDisconnect:
        pass  # gone while we were sending: `finally` frees the model
    finally:
        sender.cancel()
        if not finished:  # stop the decode at its next step and let go of the model, without blocking the server
            threading.Thread(target=session.close, name="live-close", daemon=True).start()


async def _receive_rate(websocket: WebSocket) -> int:
    """The first message: ``{"sample_rate": 48000}``, the rate the browser captures at."""
    header = json.loads(await websocket.receive_text())
    rate = int(header.get("sample_rate", 0))
    if not 8_000 <= rate <= 192_000:
        raise ValueError(f"sample rate {rate}")
    return rate


def middleware() -> list[Middleware]:
    """The middleware app.py gives `st.App`."""
    return [Middleware(QuietClosedStreams)]


def routes() -> list[WebSocketRoute]:
    """The routes app.py gives `st.App`."""
    return [WebSocketRoute(PATH, live_socket)]


class QuietClosedStreams:
    """ASGI middleware: a page's own Streamlit WebSocket that the browser closed mid-message ends quietly.

    Streamlit 1.67's Starlette server raises `WebSocketDisconnected` from ``/_stcore/stream`` when a tab closes at
    the wrong moment, and uvicorn logs it as a traceback; nothing is wrong, the connection is simply gone.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await self.app(scope, receive, send)
        except WebSocketDisconnected:
            if scope.get("type") != "websocket":
                raise
            logger.debug("A page's WebSocket closed while a message was under way")


_ASSETS: dict[str, str] = {
    kind: Path(__file__).with_name(f"live_page.{kind}").read_text(encoding="utf-8") for kind in ("html", "css", "js")
}


def open_ticket(
    engine: Any,
    options: asr.LiveOptions,
    aligner: Any,
    replaces: str | None = None,
    still_wanted: Callable[[], bool] | None = None,
) -> str:
    """A new ticket (an unguessable string) for a page's model and options; `replaces` is dropped.

    `still_wanted` says whether the page is still open (app.py's `page_is_connected`); without it the ticket
    lasts `TICKET_UNSEEN_S` after its page last ran or used it.
    """
    ticket = secrets.token_urlsafe(24)
    with _tickets_lock:
        _prune()
        _tickets.pop(replaces or "", None)
        _tickets[ticket] = _Ticket(engine, options, aligner, still_wanted)
    return ticket


def _ticket_for(engine: Any, options: asr.LiveOptions, aligner: Any, still_wanted: Callable[[], bool] | None) -> str:
    """This page's ticket for its current model and options (a new one when they change, or it was dropped)."""
    state = st.session_state
    current = state.get("live_ticket")
    with _tickets_lock:
        ticket = _tickets.get(current) if current else None
        if ticket is not None:
            ticket.seen_at = time.monotonic()
    if ticket is None or (ticket.engine, ticket.options, ticket.aligner) != (engine, options, aligner):
        state.live_ticket = open_ticket(engine, options, aligner, replaces=current, still_wanted=still_wanted)
    return state.live_ticket


def take_result(ticket: str) -> tuple[asr.Transcript, bytes] | None:
    """The transcript and WAV of the ticket's last stopped session, once (None: none since)."""
    with _tickets_lock:
        entry = _tickets.get(ticket)
        if entry is None:
            return None
        result, entry.result = entry.result, None
    return result


def live_panel(
    engine: Any, options: asr.TranscribeOptions, aligner: Any, still_wanted: Callable[[], bool] | None = None
) -> asr.FileResult | None:
    """The Live tab; returns the session as a normal result once the user pressed Stop (else None).

    With speakers in `options`, the result has them too; `still_wanted` says whether the page is still open.
    """
    ticket = _ticket_for(engine, asr.LiveOptions(transcribe=options), aligner, still_wanted)
    st.caption(
        "Speak and watch the text appear; Stop turns it into a transcript like a file's. "
        "The audio goes only to this computer's own server, and stays in its memory."
    )
    # Registered in the run, as Streamlit's own examples do (registering the same again is a no-op).
    component = st.components.v2.component(
        "transcriber_live", html=_ASSETS["html"], css=_ASSETS["css"], js=_ASSETS["js"]
    )
    result = component(key="live", data={"ticket": ticket, "path": PATH}, on_stopped_change=lambda: None)
    if not result.stopped:
        return None
    taken = take_result(ticket)
    if taken is None:
        return None
    transcript, wav = taken
    st.session_state.live_count = st.session_state.get("live_count", 0) + 1
    return asr.FileResult(f"Live dictation {st.session_state.live_count}.wav", transcript=transcript, audio=wav)
