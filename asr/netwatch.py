"""Watch this process for network use that leaves the machine (for the app's privacy panel).

An audit hook (`sys.addaudithook`, PEP 578) sees every name look-up (``socket.getaddrinfo``,
``socket.gethostbyname``) and every ``socket.connect`` the process makes, from our code or any
library, whether it succeeds or not: a failed look-up of huggingface.co is network use too. Look-ups
of local names (localhost) or of plain addresses, and connections to loopback or Unix sockets,
stay on this computer and are not counted. What happens while a model download that the user
started is running (`user_download`) is counted as that download's. Hooks cannot be removed, so the
watch is installed once per process and lasts.
"""

from __future__ import annotations

import ipaddress
import socket
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from .loopback import is_loopback

_lock = threading.Lock()
_installed = False
_downloads_running = 0
# (kind, for the user's download) -> count; kind is "lookup" or "connection"
_counts: dict[tuple[str, bool], int] = {}
_LOOKUP_EVENTS = frozenset({"socket.getaddrinfo", "socket.gethostbyname"})


@dataclass(frozen=True)
class NetworkUse:
    """What left this computer since `start_watching`, and how much of it a download the user started made."""

    lookups: int  # name look-ups of other machines
    connections: int  # connections to other machines, failed ones included
    download_lookups: int  # of `lookups`, made while a model download the user started was running
    download_connections: int  # of `connections`, likewise

    def summary(self) -> str:
        """One line for people: "none", or the counts and whose they were."""
        if not self.lookups and not self.connections:
            return "none"
        counts = f"{_plural(self.lookups, 'name look-up')}, {_plural(self.connections, 'connection')}"
        own = self.download_lookups + self.download_connections
        if own == self.lookups + self.connections:
            return f"{counts}, all for the model download you started"
        if own:
            return f"{counts}; {own} of them for the model download you started, the others not"
        return f"{counts}, none of them a download you started"


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _leaves_machine(address: object) -> bool:
    """True for an internet address; False for loopback, Unix sockets and other local endpoints."""
    if not isinstance(address, tuple) or not address or not isinstance(address[0], str):
        return False  # Unix socket path, or an address family without a host
    return not is_loopback(address[0].split("%", 1)[0])  # a host name other than localhost is network use


def _asks_the_network(host: object) -> bool:
    """True when looking `host` up asks a name server: a name other than localhost, not a plain address."""
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str) or not host:
        return False  # None or "": the local machine
    host = host.split("%", 1)[0].rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return False
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return True
    return False


def _audit(event: str, args: tuple) -> None:
    if event in _LOOKUP_EVENTS:
        kind = "lookup" if _asks_the_network(args[0]) else None
    elif event == "socket.connect":
        kind = "connection" if isinstance(args[0], socket.socket) and _leaves_machine(args[1]) else None
    else:
        return
    if kind is not None:
        with _lock:
            key = (kind, _downloads_running > 0)
            _counts[key] = _counts.get(key, 0) + 1


def start_watching() -> None:
    """Install the audit hook (once per process; later calls do nothing)."""
    global _installed
    with _lock:
        if not _installed:
            sys.addaudithook(_audit)
            _installed = True


@contextmanager
def user_download() -> Iterator[None]:
    """Count the network use inside this block as a model download the user asked for.

    The count is by time, not by thread (the download runs on a pool of threads): anything else that
    went online at the same moment would be counted with it, and nothing in this app does.
    """
    global _downloads_running
    with _lock:
        _downloads_running += 1
    try:
        yield
    finally:
        with _lock:
            _downloads_running -= 1


def network_use() -> NetworkUse:
    """Look-ups and connections to other machines since `start_watching`, and the user's downloads' share."""
    with _lock:
        counts = dict(_counts)
    return NetworkUse(
        lookups=counts.get(("lookup", False), 0) + counts.get(("lookup", True), 0),
        connections=counts.get(("connection", False), 0) + counts.get(("connection", True), 0),
        download_lookups=counts.get(("lookup", True), 0),
        download_connections=counts.get(("connection", True), 0),
    )


def outside_connections() -> int:
    """How many connections to other machines this process opened (or tried) since `start_watching`."""
    return network_use().connections
