"""Lenient readers for the files of a run directory: the report must describe a half-finished run.

Every reader returns None (or an empty list) for a missing file and a one-line reason for a
file it cannot use, so callers decide whether absence is an error (compare) or a sentence
in the report (run_report).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from vloom.ledger import Ledger

METRICS_FILE = "metrics.jsonl"
RESULTS_FILE = "results.json"
CONFIG_FILE = "config.json"
CONTROL_DIR = "control"


class RunFileError(ValueError):
    """A run file that exists but cannot be used; the message names the file."""


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in `path`, None if the file is absent; RunFileError if it is not an object."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RunFileError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise RunFileError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def read_results(run_dir: Path) -> dict[str, Any] | None:
    return read_json(Path(run_dir) / RESULTS_FILE)


def read_ledger(stage_dir: Path) -> Ledger | None:
    path = Path(stage_dir) / "ledger.json"
    if not path.is_file():
        return None
    try:
        return Ledger.read(path)
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as e:
        raise RunFileError(f"{path}: not a ledger ({type(e).__name__}: {e})") from None


def read_metrics(run_dir: Path) -> tuple[list[dict[str, Any]], int]:
    """(records, n_skipped): one dict per readable line of metrics.jsonl, sorted by step.

    A training run killed mid-write leaves a truncated last line; such lines are skipped and
    counted rather than failing the whole report.
    """
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        return [], 0
    records: list[dict[str, Any]] = []
    skipped = 0
    for line in path.read_text(errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            skipped += 1
            continue
        if not isinstance(rec, dict) or not _is_number(rec.get("step")):
            skipped += 1
            continue
        records.append(rec)
    records.sort(key=lambda r: r["step"])  # stable: a step's train and val lines keep their order
    return records, skipped


REWARD_KEY = re.compile(r"^reward(_[a-z0-9]+)*$")  # metrics.jsonl keys of RL steps' rewards


def is_rl_line(rec: dict[str, Any]) -> bool:
    """Whether a metrics.jsonl line is an RL step's (it names its recipe or logs a reward): its
    `loss` is a policy objective, not a language-modelling loss, and stays off the loss curve."""
    return "rl_recipe" in rec or any(REWARD_KEY.match(k) and finite(v) for k, v in rec.items())


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def finite(v: Any) -> bool:
    return _is_number(v) and math.isfinite(v)


def series(records: list[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    """(steps, values) of the records carrying a finite `key`."""
    pts = [(r["step"], r[key]) for r in records if finite(r.get(key))]
    return [p[0] for p in pts], [p[1] for p in pts]


EVAL_PREFIX = "eval/"  # metrics.jsonl keys of eval.during_training: eval/<task>/<metric>


def eval_curves(records: list[dict[str, Any]]) -> dict[str, dict[str, tuple[list, list]]]:
    """{task: {metric: (tokens seen, values)}} from the in-training evaluation records of
    metrics.jsonl, in step order; empty when the run evaluated nothing during training."""
    out: dict[str, dict[str, tuple[list, list]]] = {}
    for r in records:
        if not finite(r.get("tokens")):
            continue
        for k, v in r.items():
            if not (k.startswith(EVAL_PREFIX) and finite(v)):
                continue
            task, _, metric = k[len(EVAL_PREFIX) :].rpartition("/")
            if not task:
                continue
            xs, ys = out.setdefault(task, {}).setdefault(metric, ([], []))
            xs.append(r["tokens"])
            ys.append(v)
    return out


def image_entry_step(records: list[dict[str, Any]]) -> int | float | None:
    """First step with image data after a text-only start (the trainer's `images_on`, else a
    batch holding images); None without a switch.

    A run that mixes images from step 0 has no entry point worth marking, even when a later
    batch happens to draw no image (image_text_ratio is a share, not a quota).
    """
    on = [
        (r["step"], r["images_on"] if isinstance(r.get("images_on"), bool) else r["image_frac"] > 0)
        for r in records
        if isinstance(r.get("images_on"), bool) or finite(r.get("image_frac"))
    ]
    if not on or on[0][1]:
        return None
    return next((step for step, images in on if images), None)


def train_summary(results: dict[str, Any] | None, records: list[dict[str, Any]]) -> dict[str, Any]:
    """steps / tokens / tokens_per_s / wall_s, from results.json or else from metrics.jsonl."""
    out: dict[str, Any] = {}
    train = (results or {}).get("train")
    if isinstance(train, dict):
        out.update(
            {k: train[k] for k in ("steps", "tokens", "tokens_per_s", "wall_s") if k in train}
        )
    if records:
        last = records[-1]
        out.setdefault("steps", last["step"])
        toks = [r["tokens"] for r in records if finite(r.get("tokens"))]
        if toks:
            out.setdefault("tokens", max(toks))
        rates = [r["tokens_per_s"] for r in records if finite(r.get("tokens_per_s"))]
        if rates:
            out.setdefault("tokens_per_s", sum(rates) / len(rates))
        times = [r["elapsed_s"] for r in records if finite(r.get("elapsed_s"))]
        if times:
            out.setdefault("wall_s", max(times))
    return out


def eval_section(results: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """The {"task": {"metric": value}} part of a results.json; tolerates a bare eval mapping."""
    if not results:
        return {}
    if "eval" in results:
        ev = results["eval"] if isinstance(results["eval"], dict) else {}
    else:  # a bare eval mapping, as plot_eval's callers may pass
        ev = {k: v for k, v in results.items() if k not in ("config", "train")}
    return {t: m for t, m in ev.items() if isinstance(m, dict)}
