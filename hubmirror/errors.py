"""Exceptions that the CLI turns into one-line messages and exit codes (1 failure, 2 usage)."""


class HubmirrorError(Exception):
    """A failure the user should read about: printed as one line, exit code 1."""

    exit_code = 1


class UsageError(HubmirrorError):
    """The command was given something it cannot use (a malformed reference, an unknown source): exit code 2."""

    exit_code = 2


class NotFoundError(HubmirrorError):
    """The upstream says the repository, revision or file does not exist."""


class AccessDeniedError(HubmirrorError):
    """The upstream refused access (gated or private repository, bad or missing token)."""


class IntegrityError(HubmirrorError):
    """Bytes did not match the size or digest that was expected of them."""


class UnsafePathError(HubmirrorError):
    """A file name from upstream or from a bundle would escape the directory it belongs in."""


class NoMirrorError(HubmirrorError):
    """The root directory holds no catalog."""


class Cancelled(HubmirrorError):
    """Another file of the same pull failed for good, or the user interrupted it; partial bytes are kept for resume."""


class TransferBrokenError(HubmirrorError):
    """A download broke off mid-body (reset, stalled past the read timeout, short): resumable from the bytes held.
    `reason` says how, in a few words."""

    def __init__(self, message: str, reason: str = "broken"):
        super().__init__(message)
        self.reason = reason


class DiskFullError(HubmirrorError):
    """The mirror's disk (or quota) is full: nothing half-written becomes visible; partial downloads stay in tmp/."""
