"""A real (not mocked) pass-through step that takes time per shard, so a test can kill a run."""

import time

from vloom.curate import Step, register


@register("slow_passthrough")
class SlowPassthrough(Step):
    def __init__(self, seconds: float = 0.05) -> None:
        super().__init__()
        self.seconds = seconds

    def run(self, docs, rank=0, world_size=1):
        time.sleep(self.seconds)
        yield from docs
