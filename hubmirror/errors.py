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
