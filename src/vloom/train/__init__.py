"""The training loop, schedules, the image mixture, stages and checkpoints."""

from vloom.train.loop import FINAL, METRICS, SUMMARY, train

__all__ = ["FINAL", "METRICS", "SUMMARY", "train"]
