"""Scaling points (N, D, loss, FLOPs per token) from a sweep directory or a CSV file.

CSV: a header with `N` (or `params`), `D` (or `tokens`) and `loss`; optional
`flops_per_token`. A sweep directory: every finished run (runs/*/results.json) gives N from
its config (non-embedding or total LM parameters, as asked), D = its pre-training tokens and
the loss from one eval metric (default text_ppl.loss, the held-out text loss). Rows that
cannot be used are skipped and counted by reason, never silently.
"""

from __future__ import annotations

import csv
import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vloom.scaling.flops import param_counts, shape_from_config, train_flops_per_token

N_COLS, D_COLS = ("N", "params", "n_params"), ("D", "tokens", "n_tokens")


@dataclass
class Points:
    N: np.ndarray
    D: np.ndarray
    L: np.ndarray
    fpt: np.ndarray | None  # training FLOPs per token, when known
    n_label: str  # what N counts
    skipped: Counter = field(default_factory=Counter)


def _num(x: object) -> float | None:
    try:
        v = float(x)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) and v > 0 else None


def read_csv(path: Path) -> Points:
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        cols = reader.fieldnames or []
        ncol = next((c for c in N_COLS if c in cols), None)
        dcol = next((c for c in D_COLS if c in cols), None)
        for name, col in (
            ("N (or params)", ncol),
            ("D (or tokens)", dcol),
            ("loss", "loss" if "loss" in cols else None),
        ):
            if col is None:
                raise ValueError(f"{path}: no {name} column (columns: {', '.join(cols) or 'none'})")
        has_fpt = "flops_per_token" in cols
        rows, skipped = [], Counter()
        for row in reader:
            vals = [_num(row.get(ncol)), _num(row.get(dcol)), _num(row.get("loss"))]
            fpt = _num(row.get("flops_per_token")) if has_fpt else None
            if None in vals or (has_fpt and fpt is None):
                skipped["non-numeric or non-positive value"] += 1
                continue
            rows.append((*vals, fpt))
    arr = np.array([r[:3] for r in rows], dtype=float).reshape(-1, 3)
    fpts = np.array([r[3] for r in rows], dtype=float) if has_fpt else None
    return Points(arr[:, 0], arr[:, 1], arr[:, 2], fpts, f"{ncol} (from {path.name})", skipped)


def read_sweep(
    sweep_dir: Path, params: str = "nonembedding", loss_key: str = "text_ppl.loss"
) -> Points:
    if "." not in loss_key:
        raise ValueError(f"--loss-key {loss_key!r}: expected task.metric, e.g. text_ppl.loss")
    task, metric = loss_key.split(".", 1)
    runs = sorted((sweep_dir / "runs").glob("*/results.json")) or sorted(
        sweep_dir.glob("*/results.json")
    )
    if not runs:
        raise ValueError(f"{sweep_dir}: no finished runs (no runs/*/results.json)")
    rows, skipped = [], Counter()
    for path in runs:
        try:
            res = json.loads(path.read_text())
            cfg = res["config"]
            shape = shape_from_config(cfg)
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            skipped[f"unreadable results.json ({type(e).__name__})"] += 1
            continue
        loss = _num((res.get("eval", {}).get(task) or {}).get(metric))
        train = res.get("train") or {}
        tokens = _num(train.get("pretrain_tokens", train.get("tokens")))
        if loss is None:
            skipped[f"no {loss_key}"] += 1
            continue
        if tokens is None:
            skipped["no token count"] += 1
            continue
        counts = param_counts(shape)
        rows.append((counts[params], tokens, loss, train_flops_per_token(shape)["total"]))
    arr = np.array(rows, dtype=float).reshape(-1, 4)
    label = f"{params} LM parameters"
    return Points(arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 3], label, skipped)


def read_points(
    source: str | Path, params: str = "nonembedding", loss_key: str = "text_ppl.loss"
) -> Points:
    source = Path(source)
    if source.is_dir():
        return read_sweep(source, params, loss_key)
    if not source.exists():
        raise FileNotFoundError(f"{source}: no such sweep directory or CSV file")
    return read_csv(source)
