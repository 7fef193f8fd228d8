"""The training loop, schedules, the image mixture, stages and checkpoints."""

from vloom.ondisk import FINAL, METRICS
from vloom.ondisk import TRAIN_SUMMARY as SUMMARY
from vloom.train.loop import train

__all__ = ["FINAL", "METRICS", "SUMMARY", "train"]
