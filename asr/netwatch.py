"""Watch this process for connections that leave the machine (for the app's privacy panel).

An audit hook (`sys.addaudithook`, PEP 578) sees every `socket.connect` the process makes, from
our code or any library. Connections to loopback or Unix sockets stay on this computer and are not
counted. Hooks cannot be removed, so the watch is installed once per process and lasts.
"""

from __future__ import annotations

import ipaddress
import socket
import sys
import threading

_lock = threading.Lock()
_installed = False
_outside = 0


def _leaves_machine(address: object) -> bool:
    """True for an internet address; False for loopback, Unix sockets and other local endpoints."""
    if not isinstance(address, tuple) or not address or not isinstance(address[0], str):
        return False  # Unix socket path, or an address family without a host
    host = address[0].split("%", 1)[0]
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True  # a host name: resolving and reaching it is network use


def _audit(event: str, args: tuple) -> None:
    global _outside
    if event == "socket.connect" and isinstance(args[0], socket.socket) and _leaves_machine(args[1]):
        with _lock:
            _outside += 1


def start_watching() -> None:
    """Install the audit hook (once per process; later calls do nothing)."""
    global _installed
    with _lock:
        if not _installed:
            sys.addaudithook(_audit)
            _installed = True


def outside_connections() -> int:
    """How many connections to other machines this process opened since `start_watching`."""
    with _lock:
        return _outside
