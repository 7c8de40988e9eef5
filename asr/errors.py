"""One exception family for everything the user can cause or fix.

Every message says what is wrong and what to do; callers (CLI, app) show
``str(error)`` as is, so no traceback ever reaches a user.
"""


class ASRError(Exception):
    """Base class of every error this package raises on purpose."""


class AudioDecodeError(ASRError):
    """The input could not be read as audio (missing, empty, not audio, no audio track)."""


class OptionsError(ASRError):
    """An option has a value we cannot use (unknown language, bad batch size, ...)."""


class ModelLoadError(ASRError):
    """The model exists but could not be loaded (corrupt files, out of memory, bad device)."""


class ModelNotFoundError(ModelLoadError):
    """The model is not on this computer; the message says how to get it.

    `problem` is the message without the command-line advice, for a front end that offers its own way to get
    the model (the page's download button and folder field).
    """

    def __init__(self, problem: str, how_to_get: str = "") -> None:
        super().__init__(f"{problem} {how_to_get}".strip())
        self.problem, self.how_to_get = problem, how_to_get

    def __reduce__(self):  # pickled whole (a Ray worker's error reaches the driver), not rebuilt from `args`
        return type(self), (self.problem, self.how_to_get)


class DeviceMemoryError(ASRError):
    """The GPU or the computer ran out of memory while transcribing; the message says what to try."""


class DownloadError(ASRError):
    """Fetching the model failed (network, mirror, disk)."""


class DownloadCancelled(DownloadError):
    """The caller stopped a download; files it had finished are kept, the one in progress is deleted."""


class TranscriptionCancelled(ASRError):
    """The caller asked to stop; segments yielded before this are complete and valid."""


class AlignmentError(ASRError):
    """The forced aligner could not time a batch; its chunks keep estimated word times instead."""
