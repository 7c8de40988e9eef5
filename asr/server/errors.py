"""Errors in OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``.

Clients (the `openai` package first) read this body for the message and retry by default; every 4xx
carries ``x-should-retry: false`` because sending the same bad request again cannot help. No traceback
ever goes into a body: unexpected failures are logged and answered with a generic sentence.
"""

from __future__ import annotations

import logging

from starlette.responses import JSONResponse

from ..errors import (
    ASRError,
    AudioDecodeError,
    DeviceMemoryError,
    ModelLoadError,
    ModelNotFoundError,
    OptionsError,
)

logger = logging.getLogger(__name__)

UNEXPECTED = "Something went wrong while transcribing; the server's log has the details."


class APIError(Exception):
    """A refusal or failure that becomes an OpenAI-style error response."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code
        self.headers = dict(headers or {})

    @property
    def type(self) -> str:
        if self.status == 401:
            return "authentication_error"
        if self.status == 429:
            return "rate_limit_error"
        return "invalid_request_error" if self.status < 500 else "server_error"

    def body(self) -> dict[str, dict[str, str | None]]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def response(self) -> JSONResponse:
        headers = dict(self.headers)
        if 400 <= self.status < 500 or self.code == "model_not_found":  # retrying cannot help
            headers["x-should-retry"] = "false"
        return JSONResponse(self.body(), status_code=self.status, headers=headers)


def from_asr_error(error: ASRError) -> APIError:
    """Our library's error as the HTTP status a client can act on; the message is already a user's sentence."""
    message = str(error)
    if isinstance(error, ModelNotFoundError):
        return APIError(503, message, code="model_not_found")
    if isinstance(error, (ModelLoadError, DeviceMemoryError)):
        return APIError(503, message, code="model_unavailable")
    if isinstance(error, AudioDecodeError):
        return APIError(400, message, param="file", code="invalid_file")
    if isinstance(error, OptionsError):
        return APIError(400, message, code="invalid_value")
    logger.error("Transcription failed: %s", type(error).__name__)
    return APIError(500, UNEXPECTED)


def unexpected(error: BaseException) -> APIError:
    """A bug or an exhausted machine: the trace goes to the log (no audio or text in it), a sentence to the client."""
    logger.error("Transcription failed unexpectedly", exc_info=error)
    return APIError(500, UNEXPECTED)
