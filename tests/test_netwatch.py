"""The privacy panel's line about network use (counting itself is tested in test_download and test_netns)."""

from __future__ import annotations

import pytest

from asr.netwatch import NetworkUse, _asks_the_network, _leaves_machine


@pytest.mark.parametrize(
    ("use", "line"),
    [
        (NetworkUse(0, 0, 0, 0), "none"),
        (NetworkUse(1, 0, 1, 0), "1 name look-up, 0 connections, all for the model download you started"),
        (NetworkUse(2, 3, 2, 3), "2 name look-ups, 3 connections, all for the model download you started"),
        (
            NetworkUse(2, 1, 1, 1),
            "2 name look-ups, 1 connection; 2 of them for the model download you started, the others not",
        ),
        (NetworkUse(1, 1, 0, 0), "1 name look-up, 1 connection, none of them a download you started"),
    ],
)
def test_summary_never_says_none_after_a_lookup(use, line):
    assert use.summary() == line


@pytest.mark.parametrize(
    ("host", "asks"),
    [("huggingface.co", True), (b"hf-mirror.com", True), ("localhost", False), ("app.localhost", False),
     ("127.0.0.1", False), ("::1", False), ("93.184.216.34", False), (None, False), ("", False)],
)  # fmt: skip
def test_which_lookups_ask_a_name_server(host, asks):
    assert _asks_the_network(host) is asks


@pytest.mark.parametrize(
    ("address", "leaves"),
    [(("93.184.216.34", 443), True), (("huggingface.co", 443), True), (("127.0.0.1", 8501), False),
     (("::1", 8501, 0, 0), False), ("/tmp/socket", False)],
)  # fmt: skip
def test_which_connections_leave_the_machine(address, leaves):
    assert _leaves_machine(address) is leaves
