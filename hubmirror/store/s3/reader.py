"""Reading blobs from S3: a seekable reader of ranged GETs with growing windows, and a streamed body."""

from __future__ import annotations

import io

from hubmirror.store.s3.location import client

READ_AHEAD = 8 * 1024 * 1024


class RangedReader(io.RawIOBase):
    """A blob read with ranged GETs (wrapped in a BufferedReader for read-ahead): seekable, as the scanner needs.

    Each GET streams a window of the blob; reading on where the last window ended doubles the next one (up to
    MAX_WINDOW), so a whole-file read costs a few requests, and a seek costs no more than the window it leaves."""

    MAX_WINDOW = 256 * 1024 * 1024

    def __init__(self, bucket: str, key: str, size: int, etag: str | None):
        self.bucket, self.key, self.size, self.etag = bucket, key, size, etag
        self.position = 0
        self._body = None
        self._body_at = self._body_end = 0
        self._window = READ_AHEAD

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            position = offset
        elif whence == io.SEEK_CUR:
            position = self.position + offset
        elif whence == io.SEEK_END:
            position = self.size + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        if position < 0:
            raise OSError(22, "negative seek position")
        self.position = position
        return position

    def _open_window(self, want: int) -> None:
        sequential = self._body_end == self.position and self.position > 0
        self._drop_body()
        self._window = min(self._window * 2, self.MAX_WINDOW) if sequential else READ_AHEAD
        end = min(self.size, self.position + max(want, self._window))
        extra = {"IfMatch": self.etag} if self.etag else {}
        self._body = client().get_object(Bucket=self.bucket, Key=self.key, Range=f"bytes={self.position}-{end - 1}",
                                         **extra)["Body"]
        self._body_at, self._body_end = self.position, end

    def _drop_body(self) -> None:
        if self._body is not None:
            self._body.close()
            self._body = None

    def readinto(self, b) -> int:
        want = min(len(b), self.size - self.position)
        if want <= 0:
            return 0
        if self._body is None or self._body_at != self.position or self._body_end <= self.position:
            self._open_window(want)
        n = min(want, self._body_end - self.position)
        data = self._body.read(n)
        if len(data) != n:
            self._drop_body()
            raise OSError(f"s3://{self.bucket}/{self.key}: asked for {n} bytes at {self.position}, got {len(data)}")
        memoryview(b).cast("B")[:n] = data
        self.position += n
        self._body_at = self.position
        return n

    def readall(self) -> bytes:
        parts = []
        while True:
            buf = bytearray(min(64 * 1024 * 1024, max(0, self.size - self.position)))
            if not buf:
                return b"".join(parts)
            n = self.readinto(buf)
            parts.append(bytes(buf[:n]))

    def close(self) -> None:
        self._drop_body()
        super().close()


def open_seekable(bucket: str, key: str, size: int, etag: str | None) -> io.BufferedReader:
    """Object `key` (of `size` bytes, at `etag`) as a buffered, seekable file (what the scanner reads)."""
    return io.BufferedReader(RangedReader(bucket, key, size, etag), buffer_size=READ_AHEAD)


class StreamedBody(io.RawIOBase):
    """A botocore streaming body as a readable file object (closing it closes the connection)."""

    def __init__(self, body):
        self._body = body

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        data = self._body.read(len(b))
        memoryview(b).cast("B")[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._body.close()
        super().close()
