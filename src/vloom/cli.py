"""`vloom <stage>`: one thin command per stage; each calls its package and nothing more."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from pathlib import Path

from vloom.config import (
    ConfigError,
    CurateConfig,
    ExperimentConfig,
    config_from_dict,
    dump_config,
    load_config,
    load_curate_config,
    nested_overrides,
    parse_overrides,
)
from vloom.ondisk import RUN_CONFIG, TRAIN_SUMMARY, atomic_write_json, complete, read_json

# Packages that bring their own commands: each module has `add_commands(add)`, where `add` is
# the helper in `build_parser` (name, fn, help, config=True) -> subparser. Keep them light to
# import: heavy imports belong inside the command functions.
COMMAND_MODULES = (
    "vloom.ingest.commands",
    "vloom.curate.commands",
    "vloom.model.commands",
    "vloom.evaluate.commands",
    "vloom.sweep.commands",
    "vloom.scaling.commands",
    "vloom.chat.commands",
    "vloom.serve.commands",
)


def _config(args: argparse.Namespace) -> ExperimentConfig:
    if getattr(args, "config", None):
        return load_config(args.config, parse_overrides(getattr(args, "set", [])))
    return config_from_dict(nested_overrides(getattr(args, "set", [])))


def cmd_synth(args: argparse.Namespace) -> None:
    from vloom.synth import generate

    cfg = _config(args)
    man = generate(cfg.synth, args.out, cfg.seed, quiet=args.quiet)
    print(json.dumps({"train": man["train"], "defects": man["defects"], "eval": man["eval"]}))


def cmd_curate(args: argparse.Namespace) -> None:
    from vloom.curate import run_curate

    cfg = load_curate_config(args.config) if args.config else CurateConfig()
    if args.workers:
        cfg.workers = args.workers
    led = run_curate(args.input, args.out, cfg, quiet=args.quiet)
    print(json.dumps({k: v for k, v in led.to_dict().items() if k != "funnel"}))


def cmd_pack(args: argparse.Namespace) -> None:
    from vloom.pack import run_pack

    stats = run_pack(args.input, args.out, _config(args), quiet=args.quiet)
    print(json.dumps(stats))


def cmd_train(args: argparse.Namespace) -> None:
    from vloom.train import train

    cfg = _config(args)
    out = Path(args.out)
    main_rank = os.environ.get("RANK", "0") == "0"  # under torchrun only rank 0 writes/prints
    if main_rank:
        atomic_write_json(out / RUN_CONFIG, dump_config(cfg))
    summary = train(
        cfg, args.packed, out, quiet=args.quiet, eval_dir=args.eval_dir, sft_dir=args.sft_dir
    )
    if main_rank:
        print(json.dumps(summary))


def cmd_eval(args: argparse.Namespace) -> None:
    from vloom.evaluate import evaluate, write_results
    from vloom.evaluate.tasks import split_task_list

    # --device and --seed are overrides of eval.*, checked (one-line errors) like the config's
    args.set = list(args.set or [])
    args.set += [f"eval.{k}={v}" for k in ("device", "seed") if (v := getattr(args, k)) is not None]
    cfg = _config(args)
    tasks = split_task_list(args.tasks) if args.tasks else cfg.eval.tasks
    evals = evaluate(
        args.checkpoint,
        args.data,
        tasks,
        args.tokenizer,
        cfg.eval.batch_size,
        cfg.eval.max_examples,
        device=cfg.eval.device,
        seed=cfg.eval.seed,
    )
    out = Path(args.out)
    summary = out / TRAIN_SUMMARY
    train = read_json(summary) if complete(summary) else None
    write_results(out, evals, dump_config(cfg), train)
    print(json.dumps(evals))


def cmd_report(args: argparse.Namespace) -> None:
    from vloom.report import write_report

    print(write_report(args.run))


def cmd_compare(args: argparse.Namespace) -> None:
    from vloom.report import compare_runs

    print(compare_runs(args.runs))


def cmd_run(args: argparse.Namespace) -> None:
    from vloom.pipeline import run_experiment

    cfg = _config(args)
    run_experiment(cfg, args.out, quiet=args.quiet)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="vloom", description=__doc__)
    ap.add_argument(
        "--debug", action="store_true", help="show tracebacks instead of one-line errors"
    )
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, fn, help: str, config: bool = True) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(fn=fn)
        p.add_argument("--quiet", action="store_true", help="no progress bars or stage messages")
        if config:
            p.add_argument("--config", help="experiment YAML (defaults apply where absent)")
            p.add_argument(
                "--set",
                action="append",
                metavar="KEY=VALUE",
                help="override a config field, e.g. train.steps=100",
            )
        return p

    p = add("synth", cmd_synth, "write the synthetic world: training shards and held-out eval sets")
    p.add_argument("--out", required=True, help="output directory")
    p = add(
        "curate",
        cmd_curate,
        "filter and deduplicate document shards; writes ledger.json",
        config=False,
    )
    p.add_argument("input", help="directory of Parquet shards")
    p.add_argument("--out", required=True)
    p.add_argument("--config", help="curate YAML (steps: [...]) or an experiment YAML")
    p.add_argument("--workers", type=int, default=0, help="worker processes (default: from config)")
    p = add("pack", cmd_pack, "train the tokenizer and pack documents into fixed-length sequences")
    p.add_argument("input", help="directory of (curated) Parquet shards")
    p.add_argument("--out", required=True)
    p = add(
        "train", cmd_train, "train (or resume) on packed data; writes checkpoints and metrics.jsonl"
    )
    p.add_argument("packed", help="a `vloom pack` output directory")
    p.add_argument("--out", required=True, help="run directory")
    p.add_argument(
        "--eval-dir",
        help="evaluation directory for eval.during_training (the synth output's eval/)",
    )
    p.add_argument(
        "--sft-dir", help="SFT shards for kind: sft stages (`vloom run` builds them in RUN/sft)"
    )
    p = add("eval", cmd_eval, "evaluate a checkpoint; writes results.json in --out")
    p.add_argument("checkpoint", help="checkpoint directory (model.safetensors + config.json)")
    p.add_argument("--data", required=True, help="evaluation directory (the synth output's eval/)")
    p.add_argument("--out", required=True, help="run directory for results.json")
    p.add_argument(
        "--tasks", help="comma-separated task specs, see `vloom tasks` (default: from config)"
    )
    p.add_argument("--tokenizer", help="tokenizer.json (default: the one the checkpoint names)")
    p.add_argument(
        "--device", help="auto (cuda when available), cpu, cuda, cuda:N, mps (default: eval.device)"
    )
    p.add_argument("--seed", type=int, help="few-shot choice and option order (default: eval.seed)")
    p = add("report", cmd_report, "write report.md and plots for a run directory", config=False)
    p.add_argument("run")
    p = add("compare", cmd_compare, "print a side-by-side table of runs' results", config=False)
    p.add_argument("runs", nargs="+")
    p = add("run", cmd_run, "run an experiment end to end, skipping stages already complete")
    p.add_argument("config_path", nargs="?", help="experiment YAML")
    p.add_argument("--out", help="run directory (default: out_dir from the config)")
    for mod in COMMAND_MODULES:
        importlib.import_module(mod).add_commands(add)
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    if getattr(args, "config_path", None):
        args.config = args.config_path
    try:
        args.fn(args)
    except KeyboardInterrupt:
        print("vloom: interrupted", file=sys.stderr)
        return 130
    except (ConfigError, FileNotFoundError, ValueError, OSError) as e:
        if args.debug:
            raise
        print(f"vloom: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
