"""Run a batch producer in a background thread so the step never waits for the disk.

Reading packed rows (memory-mapped safetensors), stacking them and pinning memory
overlap with the previous step's compute; `depth` batches are prepared ahead. The
producer's exceptions are raised in the training thread, at the step that needed them.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

_DONE = object()


class Prefetcher:
    def __init__(self, produce: Callable[[int], Any], steps: range, depth: int) -> None:
        self._produce, self._steps = produce, steps
        self._q: queue.Queue = queue.Queue(maxsize=max(depth, 1))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if depth > 0:
            self._thread = threading.Thread(target=self._run, name="vloom-prefetch", daemon=True)
            self._thread.start()

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for step in self._steps:
                if not self._put(self._produce(step)):
                    return
        except BaseException as e:  # handed to the consumer, raised there
            self._put(e)
            return
        self._put(_DONE)

    def __iter__(self) -> Iterator[Any]:
        if self._thread is None:  # depth 0: produce inline
            for step in self._steps:
                yield self._produce(step)
            return
        while True:
            item = self._q.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
