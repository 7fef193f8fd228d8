"""On-disk contracts every stage shares: file names, atomic writes, staged output directories.

A stage's output directory is either complete (its marker file is there and parses) or it is
not there at all: files are written to a temporary sibling, fsynced and renamed, and whole
directories are built under `.tmp-<name>-<pid>` and renamed into place. A kill at any moment
leaves the old state or the new one, never a marker that says "complete" over half the data.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

# Completion markers and shared file names (one spelling for every reader and writer).
LEDGER = "ledger.json"  # every stage that reads documents (ingest, curate, pack)
MANIFEST = "manifest.json"  # synth: written last
STATS = "stats.json"  # pack: written last
TOKENIZER = "tokenizer.json"  # pack
RUN_CONFIG = "config.json"  # a run directory's resolved config (and a checkpoint's meta)
METRICS = "metrics.jsonl"  # train: one JSON object per logged step
TRAIN_SUMMARY = "train_summary.json"  # train: written after checkpoints/final
RESULTS = "results.json"  # eval
# eval Parquet metadata: the registered answer plug-in that converts a set to multiple choice
DISTRACTORS_KEY = "vloom.distractors"
CHECKPOINTS = "checkpoints"
FINAL = "final"
WEIGHTS = "model.safetensors"
OPTIMIZER = "optimizer.safetensors"
STATE = "state.json"


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # some filesystems (and Windows) cannot open a directory
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary sibling of `path` to write; when the block finishes it is fsynced, renamed
    over `path` and the directory fsynced. On any error the temporary file is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to a temporary sibling, fsync it, rename it over `path`, fsync the directory."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int | None = 2, **kw: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=indent, **kw) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    """Parse a JSON file; a truncated or corrupt one is a one-line ValueError naming it."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: corrupt JSON ({e.msg} at line {e.lineno})") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not UTF-8 text") from None


def read_json_object(path: str | os.PathLike, what: str | None = None) -> dict[str, Any]:
    """A JSON file that must hold an object (a model's config.json, a tokenizer's settings);
    missing, corrupt or not an object are one-line errors naming the file (and `what` it is)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: not found" + (f" ({what})" if what else ""))
    d = read_json(path)
    if not isinstance(d, dict):
        raise ValueError(f"{path}: not a JSON object")
    return d


def complete(path: str | os.PathLike) -> bool:
    """A completion marker counts only if it exists and parses: a torn file means incomplete."""
    path = Path(path)
    if not path.is_file():
        return False
    try:
        read_json(path)
    except (OSError, ValueError):
        return False
    return True


def training_complete(run_dir: str | os.PathLike) -> bool:
    """The one test of a finished training run: the final checkpoint and the summary."""
    run = Path(run_dir)
    return complete(run / CHECKPOINTS / FINAL / STATE) and complete(run / TRAIN_SUMMARY)


def check_out_dir(out_dir: str | os.PathLike, inputs: Iterable[str | os.PathLike] = ()) -> Path:
    """The absolute output directory, refused where writing it would touch an input.

    An output equal to an input, inside one, or holding one would delete or mix the input when
    the stage replaces its output, so each is a one-line error before anything is written.
    """
    out = Path(os.path.realpath(out_dir))
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out_dir}: output exists and is not a directory")
    for inp in inputs:
        p = Path(os.path.realpath(inp))
        if p == out:
            raise ValueError(f"{inp}: the output directory cannot also be an input")
        if out in p.parents:
            raise ValueError(f"{inp}: an input lies inside the output directory {out_dir}")
        if p in out.parents:
            raise ValueError(f"{out_dir}: the output directory lies inside the input {inp}")
    return out


@contextlib.contextmanager
def staged_dir(
    out_dir: str | os.PathLike,
    overwrite: bool = False,
    inputs: Iterable[str | os.PathLike] = (),
) -> Iterator[Path]:
    """Yield a temporary directory that becomes `out_dir` only if the block finishes.

    A run killed mid-write leaves only a `.tmp-<name>-<pid>` directory beside the target, never
    a directory under the target's name that looks finished. `overwrite` replaces an existing
    non-empty `out_dir` (the old one stays whole until the new one is complete).
    """
    out = check_out_dir(out_dir, inputs)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out_dir}: output directory exists and is not empty")
    out.parent.mkdir(parents=True, exist_ok=True)
    for stale in out.parent.glob(f".tmp-{out.name}-*"):  # a killed earlier run's leftovers
        shutil.rmtree(stale, ignore_errors=True)
    tmp = out.parent / f".tmp-{out.name}-{os.getpid()}"
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    replace_dir(tmp, out)


def replace_dir(src: Path, dst: Path) -> None:
    """Put the complete directory `src` at `dst`; the old `dst` is removed only after the swap."""
    old = None
    if dst.exists():
        old = dst.parent / f".old-{dst.name}-{os.getpid()}"
        if old.exists():
            shutil.rmtree(old)
        os.replace(dst, old)
    os.replace(src, dst)
    _fsync_dir(dst.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
