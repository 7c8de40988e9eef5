"""What a request must pass before any route sees it.

- **Host** must name this machine's loopback (localhost, 127.0.0.1, [::1]) or the configured host. A web page
  that rebinds its own DNS name to 127.0.0.1 still sends its own name here, and is refused (DNS rebinding,
  ollama#17721). An IP address cannot be rebound, so a server bound to every interface (0.0.0.0, only with a
  key) also takes requests addressed to any of its IP addresses.
- **Origin**, when a browser sends one, must be this server's own: browsers send a multipart POST to any
  address without a CORS preflight, so a foreign page's request is refused (403) before it reaches the model.
  CORS stays off: no page elsewhere may read a response.
- **Authorization**: with a key, every /v1 request needs ``Bearer <key>``, compared in constant time. A key in
  the URL is refused and never read: URLs end up in logs and browser histories. The key is never logged.
- **Size**: a declared body over the limit is refused (413) before it is read; `form.read_body` stops an
  undeclared one as it passes the limit.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from urllib.parse import parse_qsl

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from ..loopback import host_name, is_loopback, is_own_origin
from .errors import APIError
from .form import too_large
from .settings import ServerSettings

logger = logging.getLogger(__name__)

WILDCARD_HOSTS = ("0.0.0.0", "::")
_KEY_PARAMETERS = ("api_key", "api-key", "key", "token", "access_token")  # what people try in a URL


def host_allowed(host_header: str, bound_host: str) -> bool:
    """True when the Host header names this machine as the server was told to answer for it."""
    name = host_name(host_header)
    if not name:
        return False
    bound = bound_host.strip("[]").lower()
    if is_loopback(name) or name == bound:
        return True
    return bound in WILDCARD_HOSTS and _is_ip_address(name)


def origin_allowed(origin: str | None, host_header: str) -> bool:
    """No Origin (not a browser), or the server's own: the page was served from this very address."""
    return origin is None or is_own_origin(origin, host_header)


def key_matches(authorization: str | None, api_key: str) -> bool:
    """``Bearer <key>`` with the right key, compared in constant time."""
    scheme, _, given = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode("utf-8", "replace"), api_key.encode("ascii"))


class GuardMiddleware:
    """Refuse what fails the checks above, with OpenAI's error body, before the app sees the request."""

    def __init__(self, app: ASGIApp, settings: ServerSettings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refusal = self.refusal(scope)
            if refusal is not None:
                logger.info("Refused %s %s with %d (%s)", scope["method"], scope["path"], refusal.status, refusal.code)
                await refusal.response()(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def refusal(self, scope: Scope) -> APIError | None:
        """Why this request is refused, or None."""
        headers = Headers(scope=scope)
        host = headers.get("host", "")
        if not host_allowed(host, self.settings.host):
            return APIError(
                400,
                "This server answers only requests addressed to localhost, 127.0.0.1 or [::1] (or the --host "
                "it was started with); the Host header names another machine.",
                code="invalid_host",
            )
        if not origin_allowed(headers.get("origin"), host):
            return APIError(
                403,
                "Requests from other web pages are refused: this server takes requests from programs on this "
                "computer, not from a page in a browser.",
                code="foreign_origin",
            )
        if self.settings.api_key and scope["path"].startswith("/v1/"):
            query = scope.get("query_string", b"").decode("latin-1")
            if any(name.lower() in _KEY_PARAMETERS for name, _ in parse_qsl(query, keep_blank_values=True)):
                return APIError(
                    401,
                    "Keys in the URL are refused (URLs end up in logs and histories): send the key in the "
                    'Authorization header, "Bearer <key>", as the OpenAI clients do with api_key.',
                    code="key_in_url",
                )
            if not key_matches(headers.get("authorization"), self.settings.api_key):
                return APIError(
                    401,
                    "Missing or wrong API key: send the key the server was started with in the Authorization "
                    'header, "Bearer <key>" (the OpenAI clients do this with api_key).',
                    code="invalid_api_key",
                )
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.settings.max_body_bytes:
            return too_large(self.settings.max_body_bytes)
        return None


def _is_ip_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True
