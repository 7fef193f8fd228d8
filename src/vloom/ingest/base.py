"""The contract every ingestion source follows.

A source is a function `(inputs, ledger, opts) -> Iterator[Document]`:
- `inputs` are the paths the user named (files or directories; the source walks directories);
- for every input unit (a page, a PDF, a pair, a WARC record) it calls `ledger.input += 1`
  and then either yields a Document (the runner counts it kept) or calls
  `ledger.reject(reason)` with a short named reason ("html_too_deep", "pdf_encrypted", ...);
  a source may also `ledger.drop(<kind>, reason)` for inputs it skips on purpose (e.g. a page
  with no content, a scanned PDF page); it never raises for one bad input;
- it never writes outside `opts.out_dir`, and reads only what it was pointed at (plus the
  network when `opts.fetch` is on).
Every unit runs inside a `UnitBoundary` (`boundary.call`, and `boundary.stream` around one
file's units): an exception or a run past `opts.unit_timeout` seconds inside one unit becomes
the rejection "<unit>_error:<ExceptionType>" or "<unit>_timeout" (unit: page, record, pair,
row, file), one stderr line names the file and unit (not with `opts.quiet`), and the run goes
on; only an `IngestError` (an option or input no unit can use) stops it.
Sources register by name in `SOURCES` as "module:function" so the CLI imports only the one used.
"""

from __future__ import annotations

import gzip
import os
import stat
import sys
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, TypeVar

from vloom.doc import Document
from vloom.guard import UnitTimeout, time_budget
from vloom.ledger import Ledger

T = TypeVar("T")


class IngestError(ValueError):
    """An ingestion input or option that cannot be used at all; the message is one line."""


@dataclass
class IngestOptions:
    out_dir: Path
    fetch: bool = False  # download http(s) images (off by default: no network unless asked)
    fetch_workers: int = 8
    fetch_timeout: float = 10.0
    # networks/hosts fetch may reach although internal (loopback, private...): "10.0.0.0/8", "::1"
    fetch_allow: list[str] = field(default_factory=list)
    max_image_bytes: int = 20 * 1024 * 1024
    min_text_chars: int = 1  # a page whose main text is shorter is dropped ("no_content")
    language: str | None = None  # override for every document; default: from the input
    unit_timeout: float = 60.0  # seconds one page/record/pair/row may take (<= 0: no budget)
    quiet: bool = False  # no stderr line per unit that failed (the ledger still counts it)
    # the directory a file was found in when the parallel runner hands a source one file
    # (ids, relative paths and the image root stay those of the whole walk)
    input_root: Path | None = None
    extra: dict = field(default_factory=dict)  # source-specific options


def inside_root(path: Path, root: Path) -> bool:
    """True when `path`, with every symlink followed, lies under `root` (also resolved)."""
    try:
        real, base = Path(os.path.realpath(path)), Path(os.path.realpath(root))
    except (OSError, ValueError):
        return False
    return real == base or base in real.parents


def primary_language(tag: str) -> str:
    """A language tag's primary subtag, lower case ("en-US", "pt_BR" -> "en", "pt"), or "" when
    it names no language: empty, private use ("x-unknown", Apache FOP's default /Lang, which
    was stored as "x"), grandfathered "i-...", "und" (undetermined), "zxx" (no linguistic
    content), or not two or three letters."""
    primary = tag.strip().replace("_", "-").split("-")[0].lower()
    if len(primary) not in (2, 3) or not primary.isascii() or not primary.isalpha():
        return ""
    return "" if primary in ("und", "zxx") else primary


def symlinked_dirs_note(inputs: list[Path], limit: int = 10_000) -> str:
    """Why a walk of `inputs` found nothing, when an input directory holds symlinks to
    directories (Debian's /usr/share/doc/<package>/docs -> ../../<package>), which walks do
    not follow: " (<first link> and N more: ...)", else "". Looks at `limit` entries at most."""
    links: list[str] = []
    seen = 0
    for inp in inputs:
        if not Path(inp).is_dir():
            continue
        for dirpath, dirnames, _ in os.walk(inp):
            seen += len(dirnames)
            links += [
                os.path.join(dirpath, d)
                for d in dirnames
                if os.path.islink(os.path.join(dirpath, d))
            ]
            if seen > limit:
                break
        if seen > limit:
            break
    if not links:
        return ""
    more = f" and {len(links) - 1} more" if len(links) > 1 else ""
    return f" ({links[0]}{more}: symlinks to directories are not followed)"


def open_regular_fd(path: Path) -> int:
    """A read-only descriptor of a regular file. A FIFO, device, socket or directory raises
    OSError before any read can block: the open is non-blocking and the check is fstat on the
    open descriptor, so a path swapped for a FIFO after a check cannot hang the run."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{path}: not a regular file")
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_regular_file(path: Path) -> BinaryIO:
    """`open_regular_fd` as a binary file object."""
    return os.fdopen(open_regular_fd(path), "rb")


def read_regular_file(path: Path, max_bytes: int | None = None) -> bytes:
    """Read a regular file (see `open_regular_fd`); a file over `max_bytes` raises ValueError
    ("file_too_large") unread."""
    with open_regular_file(path) as f:
        size = os.fstat(f.fileno()).st_size
        if max_bytes is not None and size > max_bytes:
            raise ValueError(f"{path}: file_too_large ({size} > {max_bytes} bytes)")
        data = f.read() if max_bytes is None else f.read(max_bytes + 1)
    if max_bytes is not None and len(data) > max_bytes:  # it grew after the fstat
        raise ValueError(f"{path}: file_too_large (> {max_bytes} bytes)")
    return data


GZIP_SUFFIX = ".gz"
MAX_GUNZIP_BYTES = 1 << 30  # a gzipped file read whole (a PDF) stops here once inflated


class CorruptGzip(ValueError):
    """A `*.gz` input whose stream does not decompress (bad header, truncated, bad CRC)."""


def read_input_file(path: Path, max_bytes: int | None = None) -> bytes:
    """`read_regular_file`, or for a `*.gz` file its decompressed bytes (Debian ships manuals as
    page.html.gz and guide.pdf.gz). Inflation stops past `max_bytes` (MAX_GUNZIP_BYTES when
    None), so a gzip bomb costs no more memory than an honest file: ValueError
    ("file_too_large"); a stream that does not decompress raises CorruptGzip."""
    if not path.name.lower().endswith(GZIP_SUFFIX):
        return read_regular_file(path, max_bytes)
    cap = MAX_GUNZIP_BYTES if max_bytes is None else max_bytes
    with open_regular_file(path) as f:
        try:
            with gzip.GzipFile(fileobj=f) as z:
                data = z.read(cap + 1)
        except (OSError, EOFError, zlib.error) as e:  # BadGzipFile is an OSError
            raise CorruptGzip(f"{path}: gzip_corrupt ({e})") from None
    if len(data) > cap:
        raise ValueError(f"{path}: file_too_large (> {cap} bytes decompressed)")
    return data


# Test seam: called as hook(unit, label) at the start of every unit, inside its boundary (a
# test registers one that raises or stalls to check that the run goes on). Worker processes
# also load the hooks named in VLOOM_INGEST_TEST_HOOKS ("module:function,...").
UNIT_HOOKS: list[Callable[[str, str], None]] = []


class UnitBoundary:
    """The failure boundary around one unit of a source (see the module docstring).

    Ledger rule: the unit's input is counted (`ledger.input += 1`) before its work starts, and
    between units input == kept + dropped + rejected (the runner counts a yielded Document kept
    before the source resumes). A failure rejects whatever input is not yet settled - the unit
    in progress, or the rows of a batch counted at once - and a failure before any unit was
    counted counts the file itself as one rejected input. So the ledger adds up either way.
    """

    def __init__(self, ledger: Ledger, opts: IngestOptions, unit: str) -> None:
        self.ledger, self.unit = ledger, unit
        self.budget = opts.unit_timeout if opts.unit_timeout and opts.unit_timeout > 0 else None
        self.quiet = opts.quiet

    def call(self, label: str, fn: Callable[..., T], *args: object, **kw: object) -> T | None:
        """`fn(*args, **kw)` for one unit under the time budget; None once a failure is counted.

        In a worker process, a unit stuck outside Python is ended by a watchdog (hardstop.py)
        and skipped here when its part runs again."""
        from vloom.ingest import hardstop

        hard = hardstop.current if self.budget is not None else None
        if hard is not None and label in hard.labels:
            self.fail(label, UnitTimeout(), quiet=True)  # reported when it stalled
            return None
        try:
            if hard is not None:
                hard.begin(label, self.budget or 0.0)
            with time_budget(self.budget):
                for hook in UNIT_HOOKS:
                    hook(self.unit, label)
                return fn(*args, **kw)
        except IngestError:
            raise
        except (Exception, UnitTimeout) as e:
            self.fail(label, e, whole_file=False)
            return None
        finally:
            if hard is not None:
                hard.end()

    def stream(self, label: str, units: Iterator[T], unit: str = "file") -> Iterator[T]:
        """One file's units as they come; an exception between units (the file's own reading)
        ends the file as "<unit>_error:<Type>", keeping what it yielded before."""
        try:
            yield from units
        except IngestError:
            raise
        except Exception as e:
            self.fail(label, e, unit)

    def fail(
        self,
        label: str,
        exc: BaseException,
        unit: str | None = None,
        quiet: bool = False,
        whole_file: bool = True,
    ) -> None:
        """Count the failure: the unsettled inputs are rejected; with none open, a file that
        failed before its first unit counts as one input, a unit that had settled itself before
        it failed (e.g. the alarm came just as it returned) is left as it counted itself."""
        unit = unit or self.unit
        kind = "timeout" if isinstance(exc, UnitTimeout) else f"error:{type(exc).__name__}"
        reason = f"{unit}_timeout" if isinstance(exc, UnitTimeout) else f"{unit}_{kind}"
        led = self.ledger
        open_units = led.input - (led.kept + led.n_dropped + led.n_rejected)
        if open_units <= 0:
            if not whole_file:
                return
            led.input += 1
            open_units = 1
        led.reject(reason, open_units)
        if not (self.quiet or quiet):
            detail = "" if isinstance(exc, UnitTimeout) else str(exc).splitlines()[0:1]
            msg = f": {detail[0]}" if detail else ""
            print(f"vloom ingest: {label}: {reason}{msg}"[:500], file=sys.stderr)


Source = Callable[[list[Path], Ledger, IngestOptions], Iterator[Document]]

SOURCES: dict[str, str] = {
    "html": "vloom.ingest.html:ingest_html",
    "warc": "vloom.ingest.warc:ingest_warc",
    "pdf": "vloom.ingest.pdf:ingest_pdf",
    "pairs": "vloom.ingest.pairs:ingest_pairs",
    "hf": "vloom.ingest.hf_dataset:ingest_hf",
}


def get_source(kind: str) -> Source:
    import importlib

    if kind not in SOURCES:
        raise IngestError(f"unknown source kind {kind!r}; known: {', '.join(sorted(SOURCES))}")
    mod, fn = SOURCES[kind].split(":")
    return getattr(importlib.import_module(mod), fn)
