"""What `python -m asr serve` is started with: frozen, checked before the model is loaded."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import OptionsError
from ..loopback import is_loopback

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_MAX_UPLOAD_MB = 200.0  # an hour of 16-bit 16 kHz WAV is 115 MB; OpenAI's own limit is 25 MB
DEFAULT_MAX_WAITING = 4  # requests queued behind the running one; more get 429
FORM_FIELDS_BYTES = 64 * 1024  # room for the form's other fields and the multipart framing, beyond the file
API_KEY_ENV = "QWEN3_ASR_API_KEY"  # read by the CLI: a key on the command line shows in the process list


@dataclass(frozen=True)
class ServerSettings:
    """How the server listens and what it accepts.

    Attributes:
        host: the address to bind; anything but loopback needs `api_key`.
        port: the TCP port; 0 picks a free one (the server prints which).
        api_key: when set, every /v1 request must carry ``Authorization: Bearer <api_key>``. Never printed.
        max_upload_mb: larger request bodies are refused with 413 before they are read.
        max_waiting: requests that may wait while one runs; the next one gets 429.
    """

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    api_key: str | None = field(default=None, repr=False)
    max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB
    max_waiting: int = DEFAULT_MAX_WAITING

    @property
    def max_body_bytes(self) -> int:
        return round(self.max_upload_mb * 1e6) + FORM_FIELDS_BYTES

    def validate(self) -> None:
        """Raise `OptionsError` for settings that cannot work or would expose the model to the network."""
        if not is_loopback(self.host) and not self.api_key:
            raise OptionsError(
                f"--host {self.host} lets other computers reach the server: set a key with --api-key "
                f"(or ${API_KEY_ENV}), or keep the default --host {DEFAULT_HOST}."
            )
        if self.api_key is not None and not (self.api_key.isascii() and self.api_key.isprintable() and self.api_key):
            raise OptionsError("The API key must be printable ASCII without line breaks, e.g. a long random word.")
        if not 0 <= self.port <= 65535:
            raise OptionsError(f"--port must be between 0 and 65535, got {self.port}.")
        if not self.max_upload_mb > 0:
            raise OptionsError(f"--max-upload-mb must be positive, got {self.max_upload_mb:g}.")
        if self.max_waiting < 0:
            raise OptionsError(f"The waiting queue cannot be negative, got {self.max_waiting}.")
