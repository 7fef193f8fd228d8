"""The tables of a Hugging Face `datasets` directory, found and streamed in small batches.

What `datasets` writes, and how each is found:
- `save_to_disk` of a Dataset: `state.json` (its `_data_files` name the Arrow files, in order),
  `dataset_info.json` and `data-0000k-of-0000n.arrow`, Arrow IPC *stream* files;
- `save_to_disk` of a DatasetDict: `dataset_dict.json` (`{"splits": [...]}`), one such
  directory per split;
- the Parquet export (`to_parquet`, the Hub's `data/{split}-0000k-of-0000n.parquet`): any
  `.parquet` files under the directory, sorted; the split comes from the file name, else from
  the parent directory when it is a usual split name;
- a single `.arrow` or `.parquet` file named directly.

Reading never loads a dataset whole and never imports `datasets`: Arrow files are memory-mapped
and cut into slices of at most BATCH_ROWS rows (zero copy: only the slice being converted
becomes Python objects); Parquet is read one row group at a time in batches sized from the row
group's byte size, after the page headers are checked for compression bombs as the pairs source
does (parquet_pages.py). Only regular files are opened (non-blocking, so a FIFO cannot hang the
run). A file that cannot be read counts as one input rejected ("arrow_corrupt",
"parquet_corrupt"; the rows a broken Parquet row group still held count too); a directory that
holds no dataset, or a `state.json` that does not name its files, is an IngestError.
"""

from __future__ import annotations

import json
import mmap
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from vloom.ingest.base import IngestError, open_regular_fd
from vloom.ingest.parquet_pages import PageHeaderError, page_sizes
from vloom.ledger import Ledger

BATCH_ROWS = 64  # rows turned into Python objects at once...
BATCH_BYTES = 64 << 20  # ...and about this many bytes of Arrow data
PAGE_SLACK = 8 << 20  # a Parquet page may exceed the image cap by this much
MAX_PAGE_RATIO = 64  # image bytes hardly compress: a page inflating more than this is a bomb
SPLIT_NAMES = frozenset({"train", "test", "validation", "valid", "val", "dev", "eval"})
_SHARD_NAME = re.compile(r"^(?P<split>[A-Za-z0-9_.]+?)-\d+-of-\d+$")  # Hub: train-00000-of-00002


class TableCorrupt(Exception):
    """A table file that cannot be read; `reason` is its ledger name."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class HFTable:
    path: Path
    fmt: str  # "arrow" | "parquet"
    split: str | None  # None when the layout does not say


def find_tables(inp: Path) -> list[HFTable]:
    """The tables of one input (a dataset directory or a single file), in reading order."""
    if inp.is_file():
        fmt = _fmt(inp)
        if fmt is None:
            raise IngestError(f"{inp}: not a .arrow or .parquet file, nor a datasets directory")
        return [HFTable(inp, fmt, _parquet_split(inp) if fmt == "parquet" else None)]
    if not inp.is_dir():
        raise IngestError(f"{inp}: not a regular file or directory")
    if (inp / "dataset_dict.json").is_file():
        splits = _json(inp / "dataset_dict.json").get("splits")
        if not isinstance(splits, list) or not all(isinstance(s, str) for s in splits):
            raise IngestError(f"{inp / 'dataset_dict.json'}: no list of split names in 'splits'")
        return [t for s in splits for t in _saved(inp / s, s)]
    if (inp / "state.json").is_file():
        return _saved(inp, None)
    # a folder of saved datasets and/or Parquet files: each saved one whole, Parquet by path
    states = sorted(p.parent for p in inp.rglob("state.json"))
    tables = [t for d in states for t in _saved(d, d.name if d.name in SPLIT_NAMES else None)]
    for p in sorted(inp.rglob("*.parquet")):
        if p.is_file() and not any(d in p.parents for d in states):
            tables.append(HFTable(p, "parquet", _parquet_split(p)))
    if not tables:
        raise IngestError(
            f"{inp}: no datasets save_to_disk directory (state.json) or .parquet files in it"
        )
    return tables


def _fmt(p: Path) -> str | None:
    suffix = p.suffix.lower()
    return {".arrow": "arrow", ".parquet": "parquet"}.get(suffix)


def _json(path: Path) -> dict:
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise IngestError(f"{path}: not readable JSON ({type(e).__name__})") from None
    if not isinstance(obj, dict):
        raise IngestError(f"{path}: not a JSON object")
    return obj


def _saved(d: Path, split: str | None) -> list[HFTable]:
    """The Arrow files a `save_to_disk` directory's state.json lists (they must lie inside it)."""
    state = d / "state.json"
    if not state.is_file():
        raise IngestError(f"{state}: missing (not a datasets save_to_disk directory)")
    files = _json(state).get("_data_files")
    if not isinstance(files, list) or not files:
        raise IngestError(f"{state}: no '_data_files' list naming the Arrow files")
    base = d.resolve()
    tables = []
    for entry in files:
        name = entry.get("filename") if isinstance(entry, dict) else None
        target = (d / name).resolve() if isinstance(name, str) else None
        if target is None or not target.is_relative_to(base):
            raise IngestError(f"{state}: bad '_data_files' entry {entry!r}")
        if not target.is_file():
            raise IngestError(f"{state}: lists {name}, which is not a file in {d}")
        tables.append(HFTable(d / name, "arrow", split))
    return tables


def _parquet_split(p: Path) -> str | None:
    m = _SHARD_NAME.match(p.stem)
    if m:
        return m.group("split")
    if p.stem in SPLIT_NAMES:
        return p.stem
    return p.parent.name if p.parent.name in SPLIT_NAMES else None


# ---------------------------------------------------------------- reading


class TableReader:
    """One open table: `schema`, then `batches()` of at most BATCH_ROWS rows."""

    def __init__(self, table: HFTable, max_image_bytes: int) -> None:
        self.table = table
        self.max_image_bytes = max_image_bytes
        try:
            fd = open_regular_fd(table.path)
        except OSError:
            raise TableCorrupt("not_a_regular_file") from None
        try:
            if table.fmt == "arrow":
                self._open_arrow(fd)
            else:
                self._open_parquet(fd)
        finally:
            os.close(fd)

    def _open_arrow(self, fd: int) -> None:
        try:
            # mmap dup()s the descriptor; batches are zero-copy views of the mapped file
            buf = pa.py_buffer(mmap.mmap(fd, 0, access=mmap.ACCESS_READ))
            try:
                self._ipc = pa.ipc.open_stream(buf)  # what save_to_disk writes
            except pa.ArrowInvalid:
                self._ipc = pa.ipc.open_file(buf)  # the IPC file format, from other writers
        except (pa.ArrowException, OSError, ValueError):
            raise TableCorrupt("arrow_corrupt") from None
        self.schema: pa.Schema = self._ipc.schema

    def _open_parquet(self, fd: int) -> None:
        try:
            self._file = os.fdopen(os.dup(fd), "rb")
            self._pf = pq.ParquetFile(self._file)
        except (pa.ArrowException, OSError):
            raise TableCorrupt("parquet_corrupt") from None
        self.schema = self._pf.schema_arrow

    def batches(self, ledger: Ledger) -> Iterator[pa.RecordBatch]:
        """The table's rows in order; a part that cannot be read is counted, not raised."""
        if self.table.fmt == "arrow":
            yield from self._arrow_batches(ledger)
            return
        with self._file:
            for group in range(self._pf.metadata.num_row_groups):
                yield from self._row_group(group, ledger)

    def _arrow_batches(self, ledger: Ledger) -> Iterator[pa.RecordBatch]:
        it = iter(self._ipc) if hasattr(self._ipc, "__iter__") else self._file_batches()
        while True:
            try:
                batch = next(it)
            except StopIteration:
                return
            except (pa.ArrowException, OSError):
                ledger.input += 1  # the rest of a cut stream: how many rows it held is unknown
                ledger.reject("arrow_corrupt")
                return
            yield from _slices(batch, batch.nbytes)

    def _file_batches(self) -> Iterator[pa.RecordBatch]:
        for i in range(self._ipc.num_record_batches):
            yield self._ipc.get_batch(i)

    def _row_group(self, group: int, ledger: Ledger) -> Iterator[pa.RecordBatch]:
        meta = self._pf.metadata.row_group(group)
        n_rows = meta.num_rows
        bomb = self._bomb(group)
        if bomb:
            ledger.input += n_rows
            ledger.reject(bomb, n_rows)
            return
        per_row = max(1, meta.total_byte_size // max(1, n_rows))
        done = 0
        try:
            for batch in self._pf.iter_batches(
                batch_size=max(1, min(BATCH_ROWS, BATCH_BYTES // per_row)), row_groups=[group]
            ):
                done += batch.num_rows
                yield batch
        except (pa.ArrowException, OSError):
            rest = max(1, n_rows - done)  # the rows this row group still held count as lost
            ledger.input += rest
            ledger.reject("parquet_corrupt", rest)

    def _bomb(self, group: int) -> str | None:
        """ "compression_bomb" when a page of this row group inflates past both limits,
        "parquet_corrupt" when its page headers cannot be read, None when safe to decode."""
        meta = self._pf.metadata.row_group(group)
        limit = self.max_image_bytes + PAGE_SLACK
        try:
            for c in range(meta.num_columns):
                chunk = meta.column(c)
                start = chunk.data_page_offset
                if chunk.has_dictionary_page and chunk.dictionary_page_offset:
                    start = min(start, chunk.dictionary_page_offset)
                for raw, packed in page_sizes(self._file, start, chunk.total_compressed_size):
                    if raw > limit and raw > MAX_PAGE_RATIO * max(1, packed):
                        return "compression_bomb"
        except (PageHeaderError, OSError):
            return "parquet_corrupt"
        return None


def _slices(batch: pa.RecordBatch, nbytes: int) -> Iterator[pa.RecordBatch]:
    per_row = max(1, nbytes // max(1, batch.num_rows))
    step = max(1, min(BATCH_ROWS, BATCH_BYTES // per_row))
    for start in range(0, batch.num_rows, step):
        yield batch.slice(start, step)
