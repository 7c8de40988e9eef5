"""Live dictation: audio in as it is heard, drafts and finals out, a `Transcript` at the end (see session.py)."""

from .options import LiveEvent, LiveEventType, LiveOptions
from .session import LiveSession, LiveSessionBusy

__all__ = ["LiveEvent", "LiveEventType", "LiveOptions", "LiveSession", "LiveSessionBusy"]
