"""One run of a study: pre-train, fine-tune, evaluate, report; a crash becomes status.json.

Layout of a run directory (SWEEP/runs/NAME):

    config.json       the pre-training config (the swept settings applied)
    plan.json         the settings, the fine-tuning stage and the shared data directory
    pretrain/         `train` output of pre-training (checkpoints, metrics.jsonl, tb/)
    finetune/         `train` output of the fine-tuning stage, started from pretrain's final
    metrics.jsonl     both stages on one step axis (fine-tuning steps follow pre-training's)
    results.json      the evaluation of the final model (fine-tuned if there is a stage)
    report.md/.html   the run report; curated/ and packed/ link to the shared data
    status.json       {"status": "done" | "failed", "error": last line, "seconds": ...}

Everything is resumable: each stage is skipped when its completion marker exists.
"""

from __future__ import annotations

import json
import os
import time
import traceback
from pathlib import Path
from typing import Any

from vloom.config import ExperimentConfig, StageConfig, config_from_dict, dump_config
from vloom.evaluate import RESULTS, evaluate, write_results
from vloom.sweep.data import ensure_data
from vloom.sweep.spec import FinetuneSpec
from vloom.train import FINAL, METRICS, SUMMARY, train

STATUS = "status.json"
PLAN = "plan.json"
RUNS_DIR = "runs"


def read_status(run_dir: Path) -> dict[str, Any] | None:
    path = Path(run_dir) / STATUS
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None  # a status cut by a kill: the run is not known to be done
    return data if isinstance(data, dict) else None


def is_done(run_dir: Path, cfg: ExperimentConfig | None = None) -> bool:
    """Finished (status done + results.json), and of this config when `cfg` is given."""
    st = read_status(run_dir)
    if not (st and st.get("status") == "done" and (Path(run_dir) / RESULTS).exists()):
        return False
    if cfg is None:
        return True
    try:
        return json.loads((Path(run_dir) / "config.json").read_text()) == dump_config(cfg)
    except (OSError, json.JSONDecodeError):
        return False


def _write_status(run_dir: Path, data: dict[str, Any]) -> None:
    tmp = run_dir / f".{STATUS}.tmp"
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, run_dir / STATUS)


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


def _trained(out_dir: Path) -> dict[str, Any] | None:
    if (out_dir / "checkpoints" / FINAL / "state.json").exists() and (out_dir / SUMMARY).exists():
        return json.loads((out_dir / SUMMARY).read_text())
    return None


def _merge_metrics(run_dir: Path, parts: list[tuple[Path, int]]) -> None:
    """metrics.jsonl of the whole recipe: each part's steps shifted by the steps before it."""
    lines = []
    for part_dir, offset in parts:
        path = part_dir / METRICS
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(rec, dict) and "step" in rec:
                rec["step"] += offset
                lines.append(json.dumps(rec))
    (run_dir / METRICS).write_text("".join(f"{x}\n" for x in lines))


def _link(link: Path, target: Path) -> None:
    if link.is_symlink() or link.exists():
        return
    try:
        link.symlink_to(os.path.relpath(target, link.parent), target_is_directory=True)
    except OSError:
        pass  # no symlinks on this filesystem: the report says the ledger is elsewhere


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
    try:
        cfg_path, resolved = run_dir / "config.json", dump_config(cfg)
        if cfg_path.exists() and json.loads(cfg_path.read_text()) != resolved:
            raise ValueError(
                f"{run_dir}: holds a run of a different config (the study changed); "
                "delete the run directory or choose another out_dir"
            )
        cfg_path.write_text(json.dumps(resolved, indent=2) + "\n")
        data = ensure_data(sweep_dir, cfg, data_seed, quiet=quiet)
        packed, eval_dir = data / "packed", data / "synth" / "eval"
        plan = {
            "settings": settings or {},
            "finetune": finetune.model_dump(mode="json") if finetune else None,
            "data": str(data),
        }
        (run_dir / PLAN).write_text(json.dumps(plan, indent=2) + "\n")
        _link(run_dir / "curated", data / "curated")
        _link(run_dir / "packed", data / "packed")

        pre_dir = run_dir / "pretrain"
        summary = _trained(pre_dir) or train(cfg, packed, pre_dir, quiet=quiet)
        final_dir, parts = pre_dir, [(pre_dir, 0)]
        train_info: dict[str, Any] = {**summary, "pretrain_steps": cfg.train.steps}
        if finetune is not None:
            ft_dir = run_dir / "finetune"
            ft_cfg = finetune_config(cfg, finetune)
            ft_summary = _trained(ft_dir)
            if ft_summary is None:
                ft_cfg = _start_from(pre_dir / "checkpoints" / FINAL, ft_cfg)
                ft_summary = train(ft_cfg, packed, ft_dir, quiet=quiet)
            final_dir = ft_dir
            parts.append((ft_dir, cfg.train.steps))
            train_info = {
                "steps": cfg.train.steps + finetune.steps,
                "tokens": summary["tokens"] + ft_summary["tokens"],
                "pretrain_steps": cfg.train.steps,
                "pretrain_tokens": summary["tokens"],
                "finetune_steps": finetune.steps,
                "finetune_tokens": ft_summary["tokens"],
                "wall_s": round(summary["wall_s"] + ft_summary["wall_s"], 2),
                "params": summary.get("params"),
                "final_loss": ft_summary.get("final_loss"),
            }
            train_info["tokens_per_s"] = round(
                train_info["tokens"] / max(train_info["wall_s"], 1e-9), 1
            )
        _merge_metrics(run_dir, parts)
        if not (run_dir / RESULTS).exists():
            evals = evaluate(
                final_dir / "checkpoints" / FINAL,
                eval_dir,
                cfg.eval.tasks,
                tokenizer_path=packed / "tokenizer.json",
                batch_size=cfg.eval.batch_size,
                max_examples=cfg.eval.max_examples,
            )
            write_results(run_dir, evals, dump_config(cfg), train_info)
        from vloom.report import write_report

        write_report(run_dir)
        status = {"status": "done", "seconds": round(time.perf_counter() - t0, 1)}
    except Exception as e:  # the sweep goes on; the study report shows this run as failed
        (run_dir / "error.txt").write_text(traceback.format_exc())
        last = (str(e).strip().splitlines() or [""])[-1]
        status = {
            "status": "failed",
            "error": f"{type(e).__name__}: {last}" if last else type(e).__name__,
            "seconds": round(time.perf_counter() - t0, 1),
        }
    _write_status(run_dir, status)
    return status
