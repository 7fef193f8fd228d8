"""Benchmark scores: accuracy per category, POPE's yes/no metrics, circular verdicts."""

from __future__ import annotations

from collections.abc import Sequence


def by_category(
    correct: Sequence[bool], categories: Sequence[str], prefix: str = "accuracy"
) -> dict[str, float]:
    """`{prefix}_<category>`: the mean of `correct` over each category's rows ("" = none)."""
    out: dict[str, float] = {}
    for cat in sorted(set(categories) - {""}):
        idx = [i for i, c in enumerate(categories) if c == cat]
        out[f"{prefix}_{cat}"] = sum(correct[i] for i in idx) / len(idx)
    return out


def yes_no_metrics(said_yes: Sequence[bool], is_yes: Sequence[bool]) -> dict[str, float]:
    """POPE: accuracy, and precision, recall and F1 with "yes" as the positive class, plus
    the share of "yes" answers (POPE's check on a model that always agrees). Precision is 0
    when the model never says yes; F1 is 0 when precision and recall are."""
    if len(said_yes) != len(is_yes):
        raise ValueError(f"{len(said_yes)} predictions but {len(is_yes)} answers")
    n = len(is_yes)
    tp = sum(p and g for p, g in zip(said_yes, is_yes, strict=True))
    fp = sum(p and not g for p, g in zip(said_yes, is_yes, strict=True))
    fn = sum(g and not p for p, g in zip(said_yes, is_yes, strict=True))
    tn = n - tp - fp - fn
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "accuracy": (tp + tn) / n if n else 0.0,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "yes_ratio": (tp + fp) / n if n else 0.0,
    }


def rotate(options: list[str], answer: int, k: int) -> tuple[list[str], int]:
    """Options shifted left by k (MMBench's circular pass k: ABCD -> BCDA for k=1) and
    where the answer moved to."""
    n = len(options)
    return options[k:] + options[:k], (answer - k) % n


def circular_correct(picks: Sequence[int], answer: int, n_options: int) -> bool:
    """MMBench's CircularEval: right only if every pass k (options rotated by k) picked
    where the answer moved to; picks[k] is pass k's chosen index (one pass: plain scoring)."""
    return all(p == (answer - k) % n_options for k, p in enumerate(picks))
