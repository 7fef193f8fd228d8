"""`vloom run`: synth -> curate -> pack -> train -> eval -> report, skipping finished stages.

Each stage leaves a marker only when it is complete (synth: manifest.json, curate:
ledger.json, pack: stats.json, train: checkpoints/final, eval: results.json), so
rerunning the same command after a crash picks up where it stopped.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from vloom.config import ExperimentConfig, dump_config
from vloom.curate import run_curate
from vloom.evaluate import RESULTS, evaluate, write_results
from vloom.ledger import LEDGER_FILE
from vloom.pack import STATS_FILE, run_pack
from vloom.report import write_report
from vloom.synth import MANIFEST, generate
from vloom.train import FINAL, SUMMARY, train


def _log(msg: str, quiet: bool) -> None:
    if not quiet:
        print(f"[vloom] {msg}", flush=True)


def control_config(cfg: ExperimentConfig) -> ExperimentConfig:
    """The text-only control: the same budget (steps, batch, sequence length), images never on."""
    c = cfg.model_copy(deep=True)
    c.train.image_start_fraction = 1.0
    return c


def train_and_eval(
    cfg: ExperimentConfig, run_dir: Path, packed: Path, eval_dir: Path, quiet: bool
) -> dict[str, Any]:
    if (
        not (run_dir / "checkpoints" / FINAL / "state.json").exists()
        or not (run_dir / SUMMARY).exists()
    ):
        _log(f"train -> {run_dir}", quiet)
        summary = train(cfg, packed, run_dir, quiet=quiet)
    else:
        summary = json.loads((run_dir / SUMMARY).read_text())
        _log(f"train: complete, skipped ({run_dir})", quiet)
    if not (run_dir / RESULTS).exists():
        _log(f"eval -> {run_dir / RESULTS}", quiet)
        evals = evaluate(
            run_dir / "checkpoints" / FINAL,
            eval_dir,
            cfg.eval.tasks,
            tokenizer_path=packed / "tokenizer.json",
            batch_size=cfg.eval.batch_size,
            max_examples=cfg.eval.max_examples,
        )
        write_results(run_dir, evals, dump_config(cfg), summary)
    return json.loads((run_dir / RESULTS).read_text())


def run_experiment(
    cfg: ExperimentConfig, out_dir: str | Path | None = None, quiet: bool = False
) -> Path:
    run = Path(out_dir or cfg.out_dir)
    run.mkdir(parents=True, exist_ok=True)
    cfg_path = run / "config.json"
    resolved = dump_config(cfg)
    if cfg_path.exists() and json.loads(cfg_path.read_text()) != resolved:
        raise ValueError(
            f"{run}: holds a run of a different config; choose another out_dir or delete it"
        )
    cfg_path.write_text(json.dumps(resolved, indent=2) + "\n")
    t0 = time.perf_counter()
    synth, curated, packed = run / "synth", run / "curated", run / "packed"

    if not (synth / MANIFEST).exists():
        _log(f"synth -> {synth}", quiet)
        generate(cfg.synth, synth, cfg.seed, quiet=quiet)
    else:
        _log("synth: complete, skipped", quiet)
    if not (curated / LEDGER_FILE).exists():
        _log(f"curate -> {curated}", quiet)
        led = run_curate(synth / "train", curated, cfg.curate, quiet=quiet)
        _log(
            f"curate: {led.input} in, {led.kept} kept, {led.n_dropped} dropped, {led.n_rejected} rejected",
            quiet,
        )
    else:
        _log("curate: complete, skipped", quiet)
    if not (packed / STATS_FILE).exists():
        _log(f"pack -> {packed}", quiet)
        run_pack(curated, packed, cfg, quiet=quiet)
    else:
        _log("pack: complete, skipped", quiet)

    eval_dir = synth / "eval"
    res = train_and_eval(cfg, run, packed, eval_dir, quiet)
    _log(
        f"results: {json.dumps({t: m.get('accuracy', m.get('loss')) for t, m in res['eval'].items()})}",
        quiet,
    )
    if cfg.control:
        ctl = train_and_eval(control_config(cfg), run / "control", packed, eval_dir, quiet)
        _log(
            f"control: {json.dumps({t: m.get('accuracy', m.get('loss')) for t, m in ctl['eval'].items()})}",
            quiet,
        )
    report = write_report(run)
    _log(f"report -> {report} ({time.perf_counter() - t0:.0f}s this invocation)", quiet)
    return run
