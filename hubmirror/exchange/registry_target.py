"""Where a registry artifact is: `oci://HOST[:PORT]/REPO[:TAG|@sha256:…]`, parsed and checked against the
distribution spec's name rules (without importing any network client: `oci:` model references are parsed by it too).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hubmirror.errors import UsageError
from hubmirror.exchange.oci_layout import DIGEST_RE

_REPOSITORY = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*\Z")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}\Z")
_HOST = re.compile(r"^[A-Za-z0-9.-]+(:[0-9]{1,5})?\Z|^\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?\Z")


@dataclass(frozen=True)
class Target:
    """`oci://HOST[:PORT]/REPO[:TAG|@sha256:…]`."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def reference(self) -> str | None:
        return self.digest or self.tag

    def __str__(self) -> str:
        suffix = f"@{self.digest}" if self.digest else (f":{self.tag}" if self.tag else "")
        return f"oci://{self.registry}/{self.repository}{suffix}"


def is_registry_target(text: str) -> bool:
    return str(text).startswith("oci://")


def parse_target(text: str) -> Target:
    """Parse `oci://HOST[:PORT]/REPO[:TAG|@sha256:…]`; anything malformed is a one-line usage error."""
    host, _, path = str(text)[len("oci://"):].partition("/")
    digest = tag = None
    if "@" in path:
        path, _, digest = path.partition("@")
        if not DIGEST_RE.match(digest):
            raise UsageError(f"{text}: the digest is not sha256:<64 hex digits>")
    head, _, last = path.rpartition("/")
    if ":" in last:
        last, _, tag = last.partition(":")
        if not _TAG.match(tag):
            raise UsageError(f"{text}: {tag!r} is not a valid tag ([A-Za-z0-9_][A-Za-z0-9._-]{{0,127}})")
    repository = f"{head}/{last}" if head else last
    if not _HOST.match(host) or not _REPOSITORY.match(repository):
        raise UsageError(f"{text}: expected oci://HOST[:PORT]/REPO[:TAG|@sha256:…] (lower-case repository)")
    return Target(host, repository, tag, digest)
