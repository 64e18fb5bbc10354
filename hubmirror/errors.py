"""Exceptions that the CLI turns into one-line messages and exit codes (1 failure, 2 usage)."""

import re
from typing import NamedTuple

_URL = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)([^\s/?#@]*@)?([^\s?#]*)([?#]\S*)?")


def redact(text: str) -> str:
    """`text` with every URL in it as it may be shown in a message, a log or a header: no userinfo (a password), no
    query or fragment (a signature, a token). The one redaction every URL goes through on its way to a person."""
    return _URL.sub(lambda m: m.group(1) + m.group(3), text)


class HubAnswer(NamedTuple):
    """What a Hugging Face Hub's failed HTTP answer said: its status, `X-Error-Code` (None without one) and
    `X-Error-Message`."""

    status: int
    code: str | None
    message: str


class HubmirrorError(Exception):
    """A failure the user should read about: printed as one line, exit code 1. `hub_answer` is set where a Hub's HTTP
    answer caused it (`serve --upstream` passes its status and error code on to clients)."""

    exit_code = 1
    hub_answer: HubAnswer | None = None

    def __str__(self) -> str:  # whatever a message quotes (an upstream's error, a URL), it shows no secret
        return redact(super().__str__())

    @property
    def hub_error_code(self) -> str | None:
        """The Hub's `X-Error-Code` behind this error (`RepoNotFound`, `GatedRepo`, ...), if a Hub answer caused it."""
        return self.hub_answer.code if self.hub_answer else None


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


def reworded(error: HubmirrorError, text: str) -> HubmirrorError:
    """`error` with `text` as its one line: the same class, exit code and attributes (`hub_answer`, `reason`). The one
    way an error is re-worded (naming the file it concerns, a retry's verdict, several failures in one)."""
    import copy

    new = copy.copy(error)
    new.args = (text,)
    return new
