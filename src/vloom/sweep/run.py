"""`vloom sweep`: expand a study, run what is not done, write the study report.

Completed runs (status done + results.json) are skipped, so rerunning the command after a
crash or a cancelled job only runs what is missing; failed runs are retried. A run that
fails does not stop the sweep: the study report lists it with its error.

With `seeds: auto` the sweep runs in rounds: the seeds `vloom.sweep.seeds.decide` asks for
from the finished runs, then it decides again, until no comparison is open or the budget is
spent (a round with a failed run ends the sweep; under SLURM each `vloom sweep` call writes
one round's array and the next call decides from its results).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tqdm import tqdm

from vloom.config import dump_config
from vloom.ondisk import atomic_write_json
from vloom.report.study import STUDY_JSON, write_study_report
from vloom.sweep.data import ensure_data
from vloom.sweep.executors import Task, run_local, run_ray, run_task
from vloom.sweep.runone import RUNS_DIR, is_done
from vloom.sweep.seeds import SeedDecision, SeedPlanSpec, decide_for
from vloom.sweep.slurm import write_slurm
from vloom.sweep.spec import RunPlan, Study, auto_seeds, expand


def run_dir(study: Study, plan: RunPlan) -> Path:
    return study.out_dir / RUNS_DIR / plan.name


def task_of(study: Study, plan: RunPlan, quiet: bool) -> Task:
    return {
        "name": plan.name,
        "run_dir": str(run_dir(study, plan)),
        "config": dump_config(plan.config),
        "finetune": plan.finetune.model_dump(mode="json") if plan.finetune else None,
        "sweep_dir": str(study.out_dir),
        "data_seed": study.spec.data_seed,
        "settings": plan.settings,
        "quiet": quiet,
    }


def write_study_json(study: Study) -> Path:
    """The resolved study: the spec and every run's settings, for the report and for humans."""
    out = study.out_dir
    out.mkdir(parents=True, exist_ok=True)
    data = {
        "name": study.spec.name,
        "source": str(study.source),
        "spec": study.spec.model_dump(mode="json"),
        "swept": study.swept,
        "runs": [{"name": r.name, "settings": r.settings} for r in study.runs],
    }
    return atomic_write_json(out / STUDY_JSON, data)


def _log(msg: str, quiet: bool) -> None:
    if not quiet:
        print(f"[vloom sweep] {msg}", flush=True)


def plan_seeds(study: Study) -> SeedDecision:
    """The seeds `seeds: auto` would take now, from the finished runs in the sweep directory
    (a study with listed seeds is judged with its seed_plan or the defaults)."""
    return decide_for(study.out_dir, study.spec.seed_plan or SeedPlanSpec())


def run_sweep(
    study: Study, quiet: bool = False, only: str | None = None, report_only: bool = False
) -> dict[str, Any]:
    """Run the study (or the one run `only`); return {"done": [...], "failed": {...}, ...}."""
    if not auto_seeds(study.spec):
        return _run_round(study, quiet, only, report_only)
    if only is not None:  # a SLURM array task of the round the last decision asked for
        seeds = plan_seeds(study).seeds
        return _run_round(expand(study.spec, study.source, seeds), quiet, only, report_only)
    total: dict[str, Any] = {"skipped": [], "done": [], "failed": {}}
    asked: list[int] | None = None
    while True:
        decision = plan_seeds(study)
        for line in decision.lines():
            _log(line, quiet)
        if decision.seeds == asked and not report_only:
            break  # the last round added nothing the decision can use
        asked = decision.seeds
        study = expand(study.spec, study.source, decision.seeds)
        out = _run_round(study, quiet, None, report_only)
        total["skipped"] = [n for n in out["skipped"] if n not in total["done"]]
        total["done"] += out["done"]
        total["failed"].update(out["failed"])
        total.update({k: v for k, v in out.items() if k not in total})
        if report_only or out["failed"] or "slurm" in out or not decision.more:
            break
    total["seeds"] = asked
    return total


def _run_round(study: Study, quiet: bool, only: str | None, report_only: bool) -> dict[str, Any]:
    write_study_json(study)
    plans = study.runs
    if only is not None:
        plans = [p for p in plans if p.name == only]
        if not plans:
            raise ValueError(f"{study.source}: no run named {only!r} in this study")
    skipped = [p.name for p in plans if is_done(run_dir(study, p), p.config)]
    todo = [] if report_only else [p for p in plans if p.name not in skipped]
    for p in todo:  # a missing source path fails the study once, in one line, before any run
        if p.config.data is not None:
            from vloom.sources import check_sources

            check_sources(p.config.data)
    out: dict[str, Any] = {"skipped": skipped, "done": [], "failed": {}}
    if skipped:
        _log(f"{len(skipped)} run(s) complete, skipped", quiet)
    if todo and study.spec.executor == "slurm" and only is None:
        script, runs = write_slurm(study, [p.name for p in todo])
        print(
            f"wrote {script} ({len(todo)} runs listed in {runs}); submit it with\n"
            f"  sbatch {script}\n"
            f"then write the study report with\n  vloom sweep {study.source} --report"
        )
        out["slurm"] = str(script)
        return out
    # Training bars only when runs go one at a time in this process (else they interleave).
    inner_quiet = quiet or study.spec.executor != "local" or study.spec.workers > 1
    tasks = [task_of(study, p, quiet=inner_quiet) for p in todo]
    if todo and only is None and study.spec.executor == "local":
        # Build each distinct shared data set once, here, before runs start using it.
        for p in todo:
            try:
                ensure_data(study.out_dir, p.config, study.spec.data_seed, quiet=quiet)
            except Exception:  # noqa: S110  the run meets the same error and is marked failed
                pass
        _log(f"{len(todo)} run(s) to go on {study.spec.workers} worker(s)", quiet)
    if only is not None:
        results = (run_task(t) for t in [task_of(study, p, quiet) for p in todo])
    elif study.spec.executor == "ray":
        results = run_ray(tasks, study.spec.threads)
    else:
        results = run_local(tasks, study.spec.workers)
    bar = tqdm(results, total=len(tasks), desc="sweep", unit="run", disable=quiet or not tasks)
    for name, status in bar:
        if status.get("status") == "done":
            out["done"].append(name)
        else:
            out["failed"][name] = status.get("error", "unknown error")
            _log(f"run {name} failed: {out['failed'][name]}", quiet)
    if only is None:
        md, html = write_study_report(study.out_dir)
        out["report"] = str(md)
        _log(f"study report -> {md} and {html.name}", quiet)
    return out
