"""Who may talk to a server on this computer: loopback names and addresses, and a browser page's own origin.

One set of checks for the two servers that take requests: the OpenAI-style API (`asr.server.security`) and the
page's live route (live_page.py); the network watch (`asr.netwatch`) counts what is not loopback.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit


def is_loopback(host: str | None) -> bool:
    """True for names and addresses that only this machine can reach: localhost, 127.0.0.0/8, ::1."""
    name = (host or "").strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def host_name(host_header: str) -> str:
    """The name or address in a Host header, without its port: "[::1]:8000" -> "::1"; "" when it has none."""
    value = host_header.strip().lower()
    if not value:
        return ""
    try:
        return (urlsplit(f"//{value}").hostname or "").strip("[]")
    except ValueError:  # e.g. an unclosed "[::1"
        return ""


def is_own_origin(origin: str, host_header: str) -> bool:
    """True when a browser's Origin is the very address its request went to (scheme http or https, same host
    and port): the page was served from here."""
    host = host_header.strip().lower()
    try:
        parts = urlsplit(origin.strip().lower())
    except ValueError:
        return False
    return bool(host) and parts.scheme in ("http", "https") and parts.netloc == host
