"""Extended tar headers (PAX 'x'/'g', GNU long names 'L'/'K') checked before tarfile parses them.

tarfile reads such a header's whole body into memory (a few KB of gzip can claim gigabytes),
and Python before 3.8.20 / 3.9.20 / 3.10.15 / 3.11.10 / 3.12.6 parses PAX bodies with a regex
that is quadratic in runs of digits (CVE-2024-6232: 80 KB of digits took 14.6 s on 3.11.7).
`GuardedTarInfo`, passed to `tarfile.open(..., tarinfo=GuardedTarInfo)`, refuses a body over
`MAX_EXTENDED_HEADER` bytes unread, and a PAX body whose records are malformed or hold a digit
run longer than `MAX_DIGIT_RUN`, before tarfile's own parser sees it: `UnsafeTarHeader`,
which is not a TarError, so a caller can tell it from a merely broken archive.
"""

from __future__ import annotations

import re
import tarfile
from typing import Any

MAX_EXTENDED_HEADER = 1 << 20  # real PAX headers hold a path and a few times: well under this
MAX_DIGIT_RUN = 32  # mtime "1700000000.123456789", sizes, ids: runs of 20 digits at most
_DIGIT_RUN = re.compile(rb"\d{%d}" % (MAX_DIGIT_RUN + 1))
_LENGTH_DIGITS = 20  # the length prefix of one record


class UnsafeTarHeader(Exception):
    """An extended header too large or malformed to hand to tarfile."""


def check_pax(body: bytes) -> None:
    """Raise UnsafeTarHeader unless `body` is a sequence of "LEN key=value\\n" records.

    Trailing NUL padding is tolerated. Linear in len(body).
    """
    pos, n = 0, len(body)
    while pos < n:
        if body[pos] == 0:
            if body.count(0, pos) != n - pos:
                raise UnsafeTarHeader("PAX header: data after NUL padding")
            break
        space = body.find(b" ", pos, pos + _LENGTH_DIGITS + 1)
        digits = body[pos:space] if space > pos else b""
        if not digits.isdigit():
            raise UnsafeTarHeader(f"PAX header: no record length at byte {pos}")
        end = pos + int(digits)
        record = body[space + 1 : end]
        if end > n or not record.endswith(b"\n") or b"=" not in record[1:]:
            raise UnsafeTarHeader(f"PAX header: malformed record at byte {pos}")
        pos = end
    if _DIGIT_RUN.search(body):
        raise UnsafeTarHeader(f"PAX header: a run of more than {MAX_DIGIT_RUN} digits")


def _check_size(info: tarfile.TarInfo) -> None:
    if info.size > MAX_EXTENDED_HEADER:
        raise UnsafeTarHeader(
            f"extended header of {info.size} bytes (type {info.type!r}, cap {MAX_EXTENDED_HEADER})"
        )


class _Replay:
    """A file object that returns `buf` first, then reads on from `inner`."""

    def __init__(self, buf: bytes, inner: Any) -> None:
        self._buf, self._inner = buf, inner

    def read(self, size: int = -1) -> bytes:
        if not self._buf:
            return self._inner.read(size)
        if size < 0:
            head, self._buf = self._buf, b""
            return head + self._inner.read()
        head, self._buf = self._buf[:size], self._buf[size:]
        return head + (self._inner.read(size - len(head)) if len(head) < size else b"")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class GuardedTarInfo(tarfile.TarInfo):
    """TarInfo whose extended headers are size-capped and checked (see the module docstring)."""

    def _proc_gnulong(self, tarfile):  # type: ignore[no-untyped-def]
        _check_size(self)
        return super()._proc_gnulong(tarfile)

    def _proc_pax(self, tarfile):  # type: ignore[no-untyped-def]
        _check_size(self)
        # Read the body as tarfile would, check it, then let tarfile read the same bytes again.
        buf = tarfile.fileobj.read(self._block(self.size))
        if len(buf) < self.size:
            raise tarfile_module.ReadError("unexpected end of data in a PAX header")
        check_pax(buf[: self.size])
        inner = tarfile.fileobj
        tarfile.fileobj = _Replay(buf, inner)
        try:
            return super()._proc_pax(tarfile)
        finally:
            tarfile.fileobj = inner  # the body and the next header were read through the replay


tarfile_module = tarfile  # the methods above take a parameter that shadows the module's name
