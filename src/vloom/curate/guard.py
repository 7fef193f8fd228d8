"""The per-document guard: one document that a step cannot finish must not stall the run.

Each step gets `budget` seconds of its own time per document (time spent upstream, pulling
the document, does not count). Past it, or when the step raises on the document, the
document is rejected in the ledger under a named reason, and the run goes on without it:

    rejected: {"<step>:timeout": n}                 the step ran past its budget
    rejected: {"<step>:error:<ExceptionType>": n}   the step raised (e.g. "refine:error:KeyError")

How: `run_steps` wraps every stage of its chain of generators (`Chain`), so the guard
knows which step runs now and on which input row. The budget is a SIGALRM interval timer
(`signal.setitimer`), re-armed whenever control passes between steps; its handler raises
`DocTimeout` (a BaseException, so a step's `except Exception` cannot swallow it) in the
step's own code: Python code, `time.sleep` and the regex engine are interrupted. For code
that never returns to the interpreter, a watchdog thread in worker processes records the
document and ends the worker after `2 * budget + HARD_GRACE` seconds; the executor then
restarts the pass without it (`executor.drive`). Without a main thread (no signals), only
that watchdog applies. Exceptions surface as `DocFailed(step, row, reason)`; the executor
records the row in the shard's quarantine file and reruns the shard's pass without it.
A `CurateError` (a config or plug-in that cannot work on any document) still stops the run,
as does an error before a step's first document or after its last. A step that works on
batches (minhash signatures, 512 documents) is charged to the batch's last document; the
default budget (`CurateConfig.doc_timeout`, 120 s) is far above any linear step's cost.
The run-level cap (`executor.MAX_QUARANTINE_SHARE`) stops a step that fails on everything.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from vloom.curate.base import CurateError
from vloom.guard import UnitTimeout as DocTimeout  # the one SIGALRM budget (vloom/guard.py)
from vloom.guard import arm, disarm

HARD_GRACE = 5.0  # past twice the budget + this, a worker stuck outside Python is ended
HARD_EXIT_CODE = 75


class DocFailed(Exception):
    """A step could not finish one document: `row` of the input shard, `reason` for the ledger."""

    def __init__(self, step: str, row: int, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason} on row {row}{': ' + detail if detail else ''}")
        self.step, self.row, self.reason, self.detail = step, row, reason, detail


def reason_for(step: str, exc: BaseException) -> str:
    if isinstance(exc, DocTimeout):
        return f"{step}:timeout"
    return f"{step}:error:{type(exc).__name__}"


class DocGuard:
    """Time budget per (step, document) with a stack of the stages that run now.

    `on_hard_timeout(step, row, reason)` (worker processes only) is called from the
    watchdog thread before it ends the process; it must record the row durably.
    """

    def __init__(
        self,
        budget: float | None,
        names: list[str],
        on_hard_timeout: Callable[[str, int, str], None] | None = None,
    ) -> None:
        self.budget = budget if budget and budget > 0 else None
        self.names = names  # stage k's step name; stage 0 is the reader
        self.stack: list[int] = []
        self.rows = [-1] * len(names)  # the input row each stage works on
        # setup before a stage's first document shares that document's budget
        self.remaining = [self.budget or 0.0] * len(names)
        self.done = [False] * len(names)  # stage k's input is exhausted
        self._since = time.monotonic()
        self._signals = (
            self.budget is not None
            and hasattr(signal, "setitimer")
            and threading.current_thread() is threading.main_thread()
        )
        self._old_handler: Any = None
        self._hard = on_hard_timeout if self.budget is not None else None
        self._stop = threading.Event()

    # ---- lifetime ----

    def __enter__(self) -> DocGuard:
        if self._signals:
            self._old_handler = signal.signal(signal.SIGALRM, self._alarm)
        if self._hard is not None:
            threading.Thread(target=self._watch, daemon=True, name="vloom-doc-watchdog").start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._signals:
            disarm()
            signal.signal(signal.SIGALRM, self._old_handler)

    def _alarm(self, signum: int, frame: Any) -> None:
        if self.stack:  # never outside a stage (e.g. between two shards' tasks)
            raise DocTimeout()

    def _watch(self) -> None:
        assert self.budget is not None and self._hard is not None
        while not self._stop.wait(1.0):
            if not self.stack:
                continue
            k = self.stack[-1]
            over = time.monotonic() - self._since - self.remaining[k]
            if k > 0 and over > self.budget + HARD_GRACE:
                self._hard(self.names[k], self.rows[k], f"{self.names[k]}:timeout")
                os._exit(HARD_EXIT_CODE)

    # ---- the clock: only the stage on top of the stack spends its budget ----

    def _switch(self, push: int | None) -> None:
        now = time.monotonic()
        if self.stack:
            self.remaining[self.stack[-1]] -= now - self._since
        if push is None:
            self.stack.pop()
        else:
            self.stack.append(push)
        self._since = now
        if self._signals:
            top = self.stack[-1] if self.stack else 0
            left = self.remaining[top] if top > 0 else 0.0
            # a stage already past its budget gets a moment to be interrupted, not none
            if top > 0 and left != float("inf"):
                arm(left)
            else:
                disarm()

    def begin(self, k: int, row: int) -> None:
        """Stage k takes a new document: a fresh budget."""
        self.rows[k] = row
        if self.budget is not None:
            self.remaining[k] = self.budget
            self._since = time.monotonic()
            if self._signals and self.stack and self.stack[-1] == k:
                arm(self.budget)

    def finish(self, k: int) -> None:
        """Stage k's input is exhausted: what it does now is for no one document."""
        self.done[k] = True
        self.remaining[k] = float("inf")


class Chain:
    """Stages of a `run_steps` chain, wrapped so the guard follows documents and time."""

    def __init__(self, guard: DocGuard) -> None:
        self.g = guard
        self.out_row = [-1] * len(guard.names)  # row of the item stage k yielded last

    def source(self, items: Iterable[tuple[int, Any]]) -> Iterator[Any]:
        """Stage 0: (row, document) pairs in; documents out, rows remembered."""
        for row, doc in items:
            self.out_row[0] = row
            yield doc

    def feed(self, k: int, upstream: Iterable[Any]) -> Iterator[Any]:
        """Stage k's input: each document pulled starts stage k's budget for it."""
        for doc in upstream:
            self.g.begin(k, self.out_row[k - 1])
            yield doc
        self.g.finish(k)

    def drain(self, k: int, produced: Iterable[Any]) -> Iterator[Any]:
        """Stage k's output: stage k's clock runs while it computes the next item."""
        it = iter(produced)
        g = self.g
        while True:
            g._switch(k)
            try:
                item = next(it)
            except StopIteration:
                g._switch(None)
                return
            except (Exception, DocTimeout) as e:
                g._switch(None)
                if isinstance(e, DocFailed | CurateError):
                    raise  # an upstream stage's, already named; or a config that cannot work
                name, row = g.names[k], g.rows[k]
                if row < 0 or g.done[k]:
                    # before its first document or after its last: a step's own failure
                    if isinstance(e, DocTimeout):
                        raise RuntimeError(f"{name}: ran past its time budget") from None
                    raise
                detail = str(e).splitlines()[0] if str(e) else ""
                raise DocFailed(name, row, reason_for(name, e), detail) from None
            g._switch(None)
            self.out_row[k] = g.rows[k]
            yield item

    def __call__(
        self, k: int, step_run: Callable[[Iterator[Any]], Iterable[Any]], upstream: Iterable[Any]
    ) -> Iterator[Any]:
        return self.drain(k, step_run(self.feed(k, upstream)))
