"""The ledger: where every input document ended up, written as `ledger.json` by each stage.

Shape (a contract other tools read):
    {"input": n, "kept": n, "dropped": {"<step>": {"<reason>": n}}, "rejected": {"<reason>": n}}
with input == kept + sum(dropped) + sum(rejected). Extra keys (e.g. "funnel") may follow.
"""

from __future__ import annotations

import json
import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LEDGER_FILE = "ledger.json"


@dataclass
class Ledger:
    input: int = 0
    kept: int = 0
    dropped: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    rejected: Counter = field(default_factory=Counter)
    extra: dict[str, Any] = field(default_factory=dict)

    def drop(self, step: str, reason: str, n: int = 1) -> None:
        self.dropped[step][reason] += n

    def reject(self, reason: str, n: int = 1) -> None:
        self.rejected[reason] += n

    @property
    def n_dropped(self) -> int:
        return sum(sum(c.values()) for c in self.dropped.values())

    @property
    def n_rejected(self) -> int:
        return sum(self.rejected.values())

    def check(self) -> None:
        """Raise if the books do not balance: a document went missing or was counted twice."""
        total = self.kept + self.n_dropped + self.n_rejected
        if total != self.input:
            raise AssertionError(
                f"ledger does not add up: input {self.input} != kept {self.kept} + dropped "
                f"{self.n_dropped} + rejected {self.n_rejected}"
            )

    def merge(self, other: Ledger) -> Ledger:
        self.input += other.input
        self.kept += other.kept
        for step, c in other.dropped.items():
            self.dropped[step].update(c)
        self.rejected.update(other.rejected)
        return self

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "input": self.input,
            "kept": self.kept,
            "dropped": {s: dict(sorted(c.items())) for s, c in self.dropped.items()},
            "rejected": dict(sorted(self.rejected.items())),
        }
        d.update(self.extra)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Ledger:
        led = cls(input=int(d["input"]), kept=int(d["kept"]))
        for step, reasons in d.get("dropped", {}).items():
            led.dropped[step].update({k: int(v) for k, v in reasons.items()})
        led.rejected.update({k: int(v) for k, v in d.get("rejected", {}).items()})
        led.extra = {
            k: v for k, v in d.items() if k not in ("input", "kept", "dropped", "rejected")
        }
        return led

    def write(self, out_dir: str | os.PathLike) -> Path:
        self.check()
        path = Path(out_dir) / LEDGER_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{LEDGER_FILE}.tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        os.replace(tmp, path)
        return path

    @classmethod
    def read(cls, out_dir: str | os.PathLike) -> Ledger:
        path = Path(out_dir)
        if path.is_dir():
            path = path / LEDGER_FILE
        return cls.from_dict(json.loads(path.read_text()))
