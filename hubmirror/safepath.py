"""Validation of repository-relative file names that come from untrusted upstream metadata."""

from __future__ import annotations

import posixpath

from hubmirror.errors import UnsafePathError

_FORBIDDEN_CHARS = {"\x00", "\\"}


def check_relative_path(path: str) -> str:
    """Return `path` unchanged if it is a plain relative POSIX path inside its repository, else raise UnsafePathError.

    Refused: empty names, absolute paths, drive letters, backslashes, NUL and control characters, and any `.` or `..`
    segment (even one that would normalise back inside, such as `a/../b`), so that a name maps to exactly one place.
    """
    if not isinstance(path, str) or not path:
        raise UnsafePathError(f"refusing empty file name {path!r}")
    if path.startswith("/") or (len(path) > 1 and path[1] == ":"):
        raise UnsafePathError(f"refusing absolute file name {path!r}")
    if any(ch in _FORBIDDEN_CHARS or ord(ch) < 32 for ch in path):
        raise UnsafePathError(f"refusing file name with a control character or backslash: {path!r}")
    segments = path.split("/")
    if any(seg in ("", ".", "..") for seg in segments):
        raise UnsafePathError(f"refusing file name with an empty, '.' or '..' segment: {path!r}")
    if posixpath.normpath(path) != path:
        raise UnsafePathError(f"refusing non-canonical file name {path!r}")
    return path
