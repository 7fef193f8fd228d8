"""The last resort of the per-unit boundary, in worker processes: a unit stuck outside Python.

SIGALRM (vloom/guard.py) interrupts Python code, sleeps and the regex engine, but not a C
call that never returns to the interpreter (a parser caught in a pathological input). In a
worker process of a parallel ingest (executor.py), a watchdog thread sees a unit still running
`2 * budget + HARD_GRACE` seconds after it began, records the unit's label in its part's
quarantine file and ends the process. The driver runs the part again; this time the boundary
skips the quarantined unit and rejects it as "<unit>_timeout", so the ledger adds up and the
run goes on. One process (`--workers 1`) has no watchdog: ending it would end the run.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from vloom import ondisk

HARD_GRACE = 5.0
HARD_EXIT_CODE = 75


class HardStop:
    """The quarantine of one part and the watchdog over the unit that runs now."""

    def __init__(self, quarantine: Path) -> None:
        self.file = quarantine
        self.labels: set[str] = set()
        if quarantine.exists():
            self.labels = set(ondisk.read_json(quarantine))
        self._lock = threading.Lock()
        self._label: str | None = None
        self._deadline = float("inf")
        self._stop = threading.Event()
        threading.Thread(target=self._watch, daemon=True, name="vloom-unit-watchdog").start()

    def begin(self, label: str, budget: float) -> None:
        with self._lock:
            self._label, self._deadline = label, time.monotonic() + 2 * budget + HARD_GRACE

    def end(self) -> None:
        with self._lock:
            self._label, self._deadline = None, float("inf")

    def close(self) -> None:
        self._stop.set()

    def _watch(self) -> None:
        while not self._stop.wait(0.5):
            with self._lock:
                label, late = self._label, time.monotonic() > self._deadline
            if label is not None and late:
                ondisk.atomic_write_json(self.file, sorted(self.labels | {label}), indent=None)
                os._exit(HARD_EXIT_CODE)


# set by executor._part_task in a worker process for the part it runs; None elsewhere
current: HardStop | None = None
