"""Real (not mocked) plug-in steps that misbehave on chosen documents, for the per-document guard.

`stall_on` sleeps forever on the documents in `stall`, raises ValueError on those in `fail`,
and with `block_signals` sleeps with SIGALRM blocked (code that never returns to Python,
which only the watchdog thread can end). Registered on import, so workers import this file.
"""

import signal
import time

from vloom.curate import Filter, register


@register("stall_on")
class StallOn(Filter):
    def __init__(
        self,
        stall: list[str] | None = None,
        fail: list[str] | None = None,
        block_signals: bool = False,
    ) -> None:
        super().__init__()
        self.stall, self.fail, self.block = set(stall or []), set(fail or []), block_signals

    def filter(self, doc):
        if doc.id in self.fail:
            raise ValueError(f"cannot judge {doc.id}")
        if doc.id in self.stall:
            if self.block:
                signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
            while True:
                time.sleep(3600)
        return True, ""
