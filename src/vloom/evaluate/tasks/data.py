"""Reading evaluation files with clear errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import torch

from vloom.media import to_array


def read_rows(path: Path, required: tuple[str, ...], limit: int | None) -> list[dict[str, Any]]:
    if not path.exists():
        raise FileNotFoundError(f"{path}: evaluation file not found")
    table = pq.read_table(path)
    missing = [c for c in required if c not in table.column_names]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)}")
    rows = table.slice(0, limit).to_pylist() if limit else table.to_pylist()
    for i, r in enumerate(rows):
        opts = r.get("options")
        if opts is not None and (not opts or any(o is None or o == "" for o in opts)):
            raise ValueError(f"{path}: row {i} ({r.get('id')}) has an empty answer option")
        if opts is not None and not 0 <= int(r["answer"]) < len(opts):
            raise ValueError(
                f"{path}: row {i} ({r.get('id')}) answer index {r['answer']} is out of range"
            )
    return rows


def answer_text(row: dict[str, Any], option: str) -> str:
    """The continuation scored for an option: the row's answer template filled in, if it has one."""
    template = row.get("template")
    return template.format(option) if template else option


def read_table_rows(
    path: Path, required: tuple[str, ...], limit: int | None
) -> list[dict[str, Any]]:
    """Rows of an evaluation Parquet file that has the required columns (no option checks)."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: evaluation file not found")
    table = pq.read_table(path)
    missing = [c for c in required if c not in table.column_names]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)}")
    return table.slice(0, limit).to_pylist() if limit else table.to_pylist()


def pixels(data: bytes, size: int) -> torch.Tensor:
    """One image as the model's input batch [1, size, size, 3]."""
    return torch.from_numpy(to_array(data, size))[None]
