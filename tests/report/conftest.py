"""Fake run directories in the formats the pipeline stages write (see DESIGN.md)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from vloom.config import ExperimentConfig, TrainConfig, dump_config
from vloom.ledger import Ledger

RUN_EVAL: dict[str, dict[str, Any]] = {
    "vqa": {
        "accuracy": 0.4125,
        "accuracy_colour": 0.5625,
        "accuracy_shape": 0.4875,
        "accuracy_count": 0.3125,
        "accuracy_position": 0.2875,
        "n": 400,
    },
    "text_ppl": {"perplexity": 38.21, "loss": 3.643},
    "text_qa": {"accuracy": 0.355, "n": 200},
    "caption_loss": {"loss": 2.871},
}
CONTROL_EVAL: dict[str, dict[str, Any]] = {
    "vqa": {
        "accuracy": 0.2475,
        "accuracy_colour": 0.2615,
        "accuracy_shape": 0.2385,
        "accuracy_count": 0.2525,
        "accuracy_position": 0.2375,
        "n": 400,
    },
    "text_ppl": {"perplexity": 36.87, "loss": 3.607},
    "text_qa": {"accuracy": 0.365, "n": 200},
    "caption_loss": {"loss": 5.912},
}


def write_metrics(
    run_dir: Path,
    steps: int = 40,
    image_from: int | None = 20,
    truncate: bool = True,
    offset: float = 0.0,
) -> None:
    lines = []
    for step in range(0, steps + 1, 5):
        frac = 0.5 if image_from is not None and step >= image_from else 0.0
        rec = {
            "step": step,
            "loss": round(7.6 - 0.1 * step + offset, 4),
            "lr": 3e-3,
            "tokens": 4096 * (step + 1),
            "tokens_per_s": 51200.0 + step,
            "image_frac": frac,
            "stage": "pretrain",
            "elapsed_s": 0.08 * (step + 1),
        }
        lines.append(json.dumps(rec))
        if step and step % 20 == 0:
            lines.append(json.dumps({"step": step, "val_loss": round(7.7 - 0.1 * step, 4)}))
    if truncate:  # a run killed while appending its last record
        lines.append('{"step": 45, "loss": 3.1, "lr"')
    (run_dir / "metrics.jsonl").write_text("\n".join(lines) + "\n")


def write_results(run_dir: Path, ev: dict[str, Any], cfg: dict[str, Any], steps: int = 40) -> None:
    train = {"steps": steps, "tokens": 167936, "tokens_per_s": 51234.5, "wall_s": 3.28}
    results = {"eval": ev, "config": cfg, "train": train}
    (run_dir / "results.json").write_text(json.dumps(results, indent=2))


def curated_ledger() -> Ledger:
    led = Ledger(input=1000, kept=871)
    led.drop("exact_dedup", "duplicate", 52)
    led.drop("gopher_quality", "too_short", 41)
    led.drop("gopher_quality", "symbol_ratio", 20)
    led.reject("undecodable image", 16)
    led.extra["funnel"] = [
        {"step": "input", "documents": 1000, "images": 7311, "text_words": 412345},
        {"step": "exact_dedup", "documents": 948, "images": 6907, "text_words": 390127},
        {"step": "gopher_quality", "documents": 871, "images": 6533, "text_words": 377002},
    ]
    return led


@pytest.fixture
def make_run():
    """make_run(path, control=True, results=True, ...) -> a run directory like `vloom run` writes."""

    def make(
        run_dir: Path,
        control: bool = True,
        results: bool = True,
        control_results: bool = True,
        ev: dict[str, Any] | None = None,
    ) -> Path:
        run_dir.mkdir(parents=True, exist_ok=True)
        cfg = dump_config(
            ExperimentConfig(
                name="demo",
                out_dir=str(run_dir),
                control=control,
                train=TrainConfig(steps=40, image_start_fraction=0.5),
            )
        )
        (run_dir / "config.json").write_text(json.dumps(cfg, indent=2))
        curated_ledger().write(run_dir / "curated")
        packed = Ledger(input=871, kept=860)
        packed.drop("pack", "too_long", 11)
        packed.write(run_dir / "packed")
        stats = {
            "sequences": {"text": 1543, "image": 1277},
            "tokens": 721920,
            "pad_fraction": 0.031,
            "images": 6533,
            "vocab_size": 2048,
        }
        (run_dir / "packed" / "stats.json").write_text(json.dumps(stats))
        write_metrics(run_dir)
        if results:
            write_results(run_dir, ev if ev is not None else RUN_EVAL, cfg)
        if control:
            cdir = run_dir / "control"
            cdir.mkdir()
            write_metrics(cdir, image_from=None, truncate=False, offset=0.15)
            if control_results:
                write_results(cdir, CONTROL_EVAL, {**cfg, "name": "demo-control"})
        return run_dir

    return make


def table_row(markdown: str, first_cell: str) -> list[str]:
    """The cells of the first table row whose first cell is `first_cell`."""
    for line in markdown.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] == first_cell:
            return cells
    raise AssertionError(f"no table row {first_cell!r} in:\n{markdown}")


@pytest.fixture
def row():
    return table_row


@pytest.fixture
def run_eval() -> dict[str, dict[str, Any]]:
    """A fresh copy of the demo run's eval results, for tests that vary them."""
    return copy.deepcopy(RUN_EVAL)
