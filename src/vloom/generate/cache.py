"""The generation cache: one JSON file per valid generation, named by its content key.

`DIR/ab/abcdef...json` holds `{"text": ..., "backend": identity}` for key `abcdef...` (the
sha256 of the backend identity and the request, `generator.request_key`). Files are written
atomically (vloom.ondisk), so a killed run leaves whole entries or none, and several runs
may share a directory. No pickle; a corrupt or foreign file reads as a miss (and is
overwritten by the next valid generation for that key). One file per entry costs an inode
each; ~1 KB per generation, fine for the millions a curation run makes on a local disk.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from vloom.ondisk import atomic_write_json, read_json

_KEY = re.compile(r"[0-9a-f]{64}")


class GenerationCache:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        if not _KEY.fullmatch(key):
            raise ValueError(f"generation cache: {key!r} is not a sha256 hex key")
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        p = self.path(key)
        try:
            rec = read_json(p)
        except (FileNotFoundError, ValueError):
            return None
        return rec if isinstance(rec, dict) else None

    def put(self, key: str, record: dict[str, Any]) -> None:
        try:
            atomic_write_json(self.path(key), record, indent=None, ensure_ascii=False)
        except FileNotFoundError:
            # two threads of one process wrote this key at once (they share the temporary
            # name); the other's rename won, and the entry is whole
            if not self.path(key).exists():
                raise

    def __len__(self) -> int:
        return sum(1 for _ in self.root.glob("??/*.json"))
