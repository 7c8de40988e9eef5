"""Live dictation: audio in as it is heard, drafts and finals out, a `Transcript` at the end (see session.py)."""

from .session import LiveEvent, LiveEventType, LiveOptions, LiveSession, LiveSessionBusy

__all__ = ["LiveEvent", "LiveEventType", "LiveOptions", "LiveSession", "LiveSessionBusy"]
