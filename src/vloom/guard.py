"""A time budget for one unit of work: SIGALRM raises `UnitTimeout` inside the code that runs.

One implementation for curation's per-document guard (`curate/guard.py`, which re-arms the timer
as control passes between its steps) and ingestion's per-unit boundary (`ingest/base.py`, one
page, record, pair or row at a time). `UnitTimeout` is a BaseException so a unit's own
`except Exception` cannot swallow it. The timer interrupts Python code, `time.sleep` and the
regex engine; it needs the main thread (signals are delivered there only), so `usable()` says
whether a budget can be enforced where the caller runs.
"""

from __future__ import annotations

import _signal  # signal.signal less its enum wrapping (time_budget runs once per unit)
import signal
import threading


class UnitTimeout(BaseException):
    """Raised by the SIGALRM handler inside a unit of work that ran past its budget."""


def usable() -> bool:
    """Whether an interval timer can interrupt code here (a POSIX main thread)."""
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


def arm(seconds: float) -> None:
    """Fire SIGALRM after `seconds` (at least 1 ms: a unit already over budget is interrupted
    at once, not never)."""
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 1e-3))


def disarm() -> None:
    signal.setitimer(signal.ITIMER_REAL, 0)


def _raise_timeout(signum: int, frame: object) -> None:
    raise UnitTimeout()


class time_budget:  # noqa: N801 - used as a function: `with time_budget(seconds):`
    """Run the block with `seconds` of wall time; past it, `UnitTimeout` is raised inside it.

    No budget (None or <= 0) or no usable timer: the block runs unbounded. The previous SIGALRM
    handler is restored afterwards. (A class, not a @contextmanager: ingestion enters one per
    record, and the generator's machinery cost twice the timer's own system calls.)
    """

    __slots__ = ("seconds", "old")

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds if seconds and seconds > 0 and usable() else None
        self.old: object = None

    def __enter__(self) -> None:
        if self.seconds is None:
            return
        self.old = _signal.signal(signal.SIGALRM, _raise_timeout)
        try:
            arm(self.seconds)
        except BaseException:
            _signal.signal(signal.SIGALRM, self.old)
            raise

    def __exit__(self, *exc: object) -> None:
        if self.seconds is None:
            return
        try:
            disarm()
        finally:
            _signal.signal(signal.SIGALRM, self.old)
