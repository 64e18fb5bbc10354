"""Untrusted tar and zip archives, read safely: their regular files by checked name, within caps.

Every entry's name must be a plain relative path (`hubmirror.safepath.check_relative_path`, after tar's leading
`./`); links, devices, fifos and sparse members are refused, zip symlinks by their mode bits too; a file name may
appear once. The caps bound the member count, the total and the single unpacked size, and each zip member's
compression ratio (zip bombs). All of it is checked from the archive's headers before any member is read, so a
refused archive leaves nothing behind; a damaged one is a one-line IntegrityError, whenever it shows. Tests lower the
caps with monkeypatch.
"""

from __future__ import annotations

import lzma
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO

from hubmirror.errors import IntegrityError, UnsafePathError
from hubmirror.safepath import check_relative_path

MAX_MEMBERS = 100_000
MAX_TOTAL_SIZE = 64 << 30
MAX_MEMBER_SIZE = 32 << 30
MAX_ZIP_RATIO = 200
ZIP_RATIO_MIN_SIZE = 1 << 20  # smaller zip members (a short file of zeros) may inflate more than the ratio
CHUNK = 1 << 20

# what reading a damaged archive raises (only archive bytes are read under it, so an OSError is the archive's too)
_DAMAGED = (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, lzma.LZMAError, OSError)
_ZIP_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA)
_ZIP_ENCRYPTED = 0x1

Allow = Callable[[str], object]


@contextmanager
def _reading(what: str) -> Iterator[None]:
    """Turn a damaged or truncated archive's read errors into a one-line IntegrityError about `what`."""
    try:
        yield
    except _DAMAGED as exc:
        raise IntegrityError(f"{what}: the archive is unreadable ({exc})") from None


def chunks(member: IO[bytes], what: str) -> Iterator[bytes]:
    """An open member's bytes, a chunk at a time; a damaged member (a bad CRC, a cut stream) is an IntegrityError."""
    with _reading(what):
        while chunk := member.read(CHUNK):
            yield chunk


class _Admission:
    """The checks every entry of one archive passes, in archive order: count, name, `allow`, duplicates, sizes."""

    def __init__(self, what: str, allow: Allow | None, sized: bool):
        self.what, self.allow, self.sized = what, allow, sized
        self.files: dict = {}
        self.count = self.total = 0

    def _name(self, name: str) -> None:
        self.count += 1
        if self.count > MAX_MEMBERS:
            raise IntegrityError(f"{self.what}: the archive holds more than {MAX_MEMBERS} members")
        try:
            check_relative_path(name)
        except UnsafePathError as exc:
            raise UnsafePathError(f"{self.what}: {exc}") from None
        if self.allow is not None and not self.allow(name):
            raise UnsafePathError(f"{self.what}: unexpected member {name!r}")

    def directory(self, name: str) -> None:
        """A directory entry: checked, then skipped (nothing is created for it). The root (`.`) is passed over."""
        if name not in ("", "."):
            self._name(name)

    def file(self, name: str, size: int, info) -> None:
        """A regular file of `size` unpacked bytes, admitted as `info`."""
        self._name(name)
        if name in self.files:
            raise UnsafePathError(f"{self.what}: the archive holds {name!r} twice")
        if self.sized:
            if size > MAX_MEMBER_SIZE:
                raise IntegrityError(f"{self.what}: member {name!r} unpacks to {size} bytes, over the "
                                     f"{MAX_MEMBER_SIZE}-byte cap")
            self.total += size
            if self.total > MAX_TOTAL_SIZE:
                raise IntegrityError(f"{self.what}: the archive unpacks to more than {MAX_TOTAL_SIZE} bytes")
        self.files[name] = info

    def special(self, name: str) -> UnsafePathError:
        return UnsafePathError(f"{self.what}: member {name!r} is a link, device or other special file")


def open_tar(fileobj: IO[bytes], what: str, *, allow: Allow | None = None,
             in_place: bool = False) -> tuple[tarfile.TarFile, dict[str, tarfile.TarInfo]]:
    """Open a tar (gzip, bzip2 or xz compressed, or plain) and check every member: the archive, and its regular
    files by name in archive order. `allow` is a further rule every name must pass. `in_place` is for a caller that
    reads members where they lie in a plain tar, without unpacking: only a plain tar opens, and the size caps
    (which bound unpacking) do not apply."""
    admission = _Admission(what, allow, sized=not in_place)
    with _reading(what):
        tar = tarfile.open(fileobj=fileobj, mode="r:" if in_place else "r:*")
        for info in tar:  # one header at a time, so a cap stops the scan before more is inflated
            name = info.name.removeprefix("./")
            if info.isdir():
                admission.directory(name.rstrip("/"))
            elif info.isfile() and info.sparse is None:
                admission.file(name, info.size, info)
            else:
                raise admission.special(info.name)
    return tar, admission.files


def open_zip(fileobj: IO[bytes], what: str, *,
             allow: Allow | None = None) -> tuple[zipfile.ZipFile, dict[str, zipfile.ZipInfo]]:
    """Open a zip and check every member: the archive, and its regular files by name in archive order. `allow` is a
    further rule every name must pass. Encrypted members and compression methods zipfile cannot read are refused."""
    admission = _Admission(what, allow, sized=True)
    with _reading(what):
        archive = zipfile.ZipFile(fileobj)
    for info in archive.infolist():
        if info.is_dir():
            admission.directory(info.filename.rstrip("/"))
            continue
        if stat.S_IFMT(info.external_attr >> 16) not in (0, stat.S_IFREG):  # 0: no Unix mode recorded
            raise admission.special(info.filename)
        if info.flag_bits & _ZIP_ENCRYPTED or info.compress_type not in _ZIP_METHODS:
            raise IntegrityError(f"{what}: member {info.filename!r} is encrypted or compressed in a way that "
                                 f"cannot be read")
        if info.file_size > ZIP_RATIO_MIN_SIZE and info.file_size > MAX_ZIP_RATIO * info.compress_size:
            raise IntegrityError(f"{what}: member {info.filename!r} inflates from {info.compress_size} to "
                                 f"{info.file_size} bytes, over the {MAX_ZIP_RATIO}:1 cap (a zip bomb?)")
        admission.file(info.filename, info.file_size, info)
    return archive, admission.files
