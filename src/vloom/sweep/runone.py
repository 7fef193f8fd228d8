"""One run of a study: pre-train, fine-tune, evaluate, report; a crash becomes status.json.

Layout of a run directory (SWEEP/runs/NAME):

    config.json       the pre-training config (the swept settings applied)
    plan.json         the settings, the fine-tuning stage and the shared data directory
    pretrain/         `train` output of pre-training (checkpoints, metrics.jsonl, tb/)
    finetune/         `train` output of the fine-tuning stage, started from pretrain's final
    metrics.jsonl     both stages on one step axis (fine-tuning steps follow pre-training's)
    results.json      the evaluation of the final model (fine-tuned if there is a stage)
    report.md/.html   the run report; curated/ and packed/ (sources/, union/) link to the
                      shared data
    status.json       {"status": "done" | "failed", "error": last line, "seconds": ...}

Everything is resumable: each stage is skipped when its completion marker exists and parses
(the chain is `vloom.pipeline`'s, shared with `vloom run`); every marker here is written
atomically, so a kill leaves the old file or the new one, never a torn one.
"""

from __future__ import annotations

import json
import os
import time
import traceback
from pathlib import Path
from typing import Any

from vloom.config import ExperimentConfig, StageConfig, config_from_dict, dump_config
from vloom.ondisk import (
    CHECKPOINTS,
    FINAL,
    METRICS,
    RESULTS,
    RUN_CONFIG,
    atomic_write_json,
    atomic_write_text,
    complete,
    read_json,
)
from vloom.pipeline import claim_run_dir, eval_stage, train_stage
from vloom.report.runfiles import read_metrics
from vloom.sweep.data import ensure_data
from vloom.sweep.spec import FinetuneSpec

STATUS = "status.json"
PLAN = "plan.json"
RUNS_DIR = "runs"


def read_status(run_dir: Path) -> dict[str, Any] | None:
    path = Path(run_dir) / STATUS
    if not complete(path):
        return None  # absent, or cut by a kill: the run is not known to be done
    data = read_json(path)
    return data if isinstance(data, dict) else None


def is_done(run_dir: Path, cfg: ExperimentConfig | None = None) -> bool:
    """Finished (status done + results.json), and of this config when `cfg` is given."""
    st = read_status(run_dir)
    if not (st and st.get("status") == "done" and complete(Path(run_dir) / RESULTS)):
        return False
    if cfg is None:
        return True
    cfg_path = Path(run_dir) / RUN_CONFIG
    return complete(cfg_path) and read_json(cfg_path) == dump_config(cfg)


def _write_status(run_dir: Path, data: dict[str, Any]) -> None:
    atomic_write_json(run_dir / STATUS, data)


def finetune_config(cfg: ExperimentConfig, ft: FinetuneSpec) -> ExperimentConfig:
    """The fine-tuning stage: the same model and data, images on from its first step."""
    raw = dump_config(cfg)
    t = raw["train"]
    t.update(
        steps=ft.steps,
        lr=ft.lr or cfg.train.lr,
        warmup_steps=min(ft.warmup_steps, ft.steps),
        image_start_fraction=0.0,
        image_text_ratio=ft.image_text_ratio,
        stages=[
            StageConfig(name="finetune", trainable=ft.trainable, mixture=ft.mixture).model_dump(
                mode="json"
            )
        ],
        checkpoint_every=max(ft.steps, 1),
    )
    raw["name"] = f"{cfg.name}-finetune"
    return config_from_dict(raw, source=f"finetune of {cfg.name}")


def _start_from(pretrained: Path, ft_cfg: ExperimentConfig) -> ExperimentConfig:
    """Fine-tuning starts from the pre-trained weights (`train.init_from`: weights only, a new
    optimizer, the LR re-warmed); a fine-tuning run that was interrupted resumes instead."""
    raw = dump_config(ft_cfg)
    raw["train"]["init_from"] = str(pretrained)
    return config_from_dict(raw, source=f"finetune of {ft_cfg.name}")


def merge_metrics(run_dir: Path, parts: list[tuple[Path, int]]) -> dict[str, int]:
    """Write RUN/metrics.jsonl, the whole recipe on one step axis (each part's steps shifted by
    the steps before it, its tokens by the tokens before it, so curves against tokens seen go
    on); return {part's metrics file: lines skipped} for the unreadable ones.

    A torn last line (a kill mid-write), a non-JSON or non-UTF-8 line or a record without a
    numeric step is skipped and counted, never fatal: the status and the study report name it.
    """
    lines, skipped, tok_offset = [], {}, 0
    for part_dir, offset in parts:
        records, bad = read_metrics(part_dir)
        if bad:
            skipped[f"{part_dir.name}/{METRICS}"] = bad
        tokens = [r["tokens"] for r in records if isinstance(r.get("tokens"), int)]
        for rec in records:
            rec = {**rec, "step": rec["step"] + offset}
            if isinstance(rec.get("tokens"), int):
                rec["tokens"] += tok_offset
            lines.append(json.dumps(rec) + "\n")
        tok_offset += max(tokens, default=0)
    atomic_write_text(run_dir / METRICS, "".join(lines))
    return skipped


def _link(link: Path, target: Path) -> None:
    if link.is_symlink() or link.exists():
        return
    try:
        link.symlink_to(os.path.relpath(target, link.parent), target_is_directory=True)
    except OSError:
        pass  # no symlinks on this filesystem: the report says the ledger is elsewhere


def _combined(
    summary: dict[str, Any], ft: dict[str, Any], pre_steps: int, ft_steps: int
) -> dict[str, Any]:
    """The train section of results.json for pre-training + fine-tuning."""
    info = {
        "steps": pre_steps + ft_steps,
        "tokens": summary["tokens"] + ft["tokens"],
        "pretrain_steps": pre_steps,
        "pretrain_tokens": summary["tokens"],
        "finetune_steps": ft_steps,
        "finetune_tokens": ft["tokens"],
        "wall_s": round(summary["wall_s"] + ft["wall_s"], 2),
        "params": summary.get("params"),
        "final_loss": ft.get("final_loss"),
    }
    info["tokens_per_s"] = round(info["tokens"] / max(info["wall_s"], 1e-9), 1)
    return info


def run_one(
    run_dir: str | Path,
    cfg: ExperimentConfig,
    finetune: FinetuneSpec | None,
    sweep_dir: str | Path,
    data_seed: int | None = None,
    settings: dict[str, Any] | None = None,
    quiet: bool = True,
) -> dict[str, Any]:
    """Run (or resume) one study run; never raises for a failure of the run itself.

    Returns its status: {"status": "done"} with the eval, or {"status": "failed", "error":
    the exception's last line}; the full traceback goes to RUN/error.txt.
    """
    run_dir, sweep_dir = Path(run_dir), Path(sweep_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if is_done(run_dir, cfg):
        return read_status(run_dir) or {"status": "done"}
    t0 = time.perf_counter()
    _write_status(run_dir, {"status": "running", "pid": os.getpid()})
    skipped: dict[str, int] = {}
    try:
        claim_run_dir(
            run_dir, cfg, "the study changed: delete the run directory or choose another out_dir"
        )
        data = ensure_data(sweep_dir, cfg, data_seed, quiet=quiet)
        plan = {
            "settings": settings or {},
            "finetune": finetune.model_dump(mode="json") if finetune else None,
            "data": str(data.root),
        }
        atomic_write_json(run_dir / PLAN, plan)
        _link(run_dir / "curated", data.curated)
        _link(run_dir / "packed", data.packed)
        if data.sources:  # the report's funnel reads the ingest and union ledgers too
            _link(run_dir / "union", data.union)
            if (data.root / "sources").is_dir():
                _link(run_dir / "sources", data.root / "sources")

        pre_dir = run_dir / "pretrain"
        summary = train_stage(cfg, data.packed, pre_dir, quiet=quiet, eval_dir=data.eval)
        final_dir, parts = pre_dir, [(pre_dir, 0)]
        train_info: dict[str, Any] = {**summary, "pretrain_steps": cfg.train.steps}
        if finetune is not None:
            ft_dir = run_dir / "finetune"
            ft_cfg = _start_from(pre_dir / CHECKPOINTS / FINAL, finetune_config(cfg, finetune))
            ft_summary = train_stage(ft_cfg, data.packed, ft_dir, quiet=quiet, eval_dir=data.eval)
            final_dir = ft_dir
            parts.append((ft_dir, cfg.train.steps))
            train_info = _combined(summary, ft_summary, cfg.train.steps, finetune.steps)
        skipped = merge_metrics(run_dir, parts)
        eval_stage(cfg, final_dir / CHECKPOINTS / FINAL, data, run_dir, train_info, quiet=quiet)
        from vloom.report import write_report

        write_report(run_dir)
        status: dict[str, Any] = {"status": "done", "seconds": round(time.perf_counter() - t0, 1)}
    except Exception as e:  # the sweep goes on; the study report shows this run as failed
        atomic_write_text(run_dir / "error.txt", traceback.format_exc())
        last = (str(e).strip().splitlines() or [""])[-1]
        status = {
            "status": "failed",
            "error": f"{type(e).__name__}: {last}" if last else type(e).__name__,
            "seconds": round(time.perf_counter() - t0, 1),
        }
    if skipped:
        status["metrics_skipped"] = skipped
    _write_status(run_dir, status)
    return status
