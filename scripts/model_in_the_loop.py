"""Run one model-in-the-loop pipeline (issue 18) end to end on a synthetic world and print
its score table against the world's truth (vloom.curate.generated.world_run).

    python scripts/model_in_the_loop.py kale --world runs/demo/synth \
        --checkpoint runs/demo/checkpoints/final --out runs/kale [--n 200]
    python scripts/model_in_the_loop.py units ...          (configs/generated/knowledge_units.yaml)
    python scripts/model_in_the_loop.py backtranslate ...  (configs/generated/backtranslate.yaml)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml

from vloom.curate.generated.world_run import PIPELINES, markdown, run_on_world

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "generated"


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("pipeline", choices=sorted(PIPELINES))
    p.add_argument("--world", required=True, help="a `vloom synth` output directory")
    p.add_argument("--out", required=True, help="output directory (input/, curated/, scores)")
    p.add_argument("--config", help="curate YAML (default: configs/generated/<step>.yaml)")
    p.add_argument("--checkpoint", help="generator.path for every generating step")
    p.add_argument("--tokenizer", help="generator.tokenizer (default: the checkpoint's)")
    p.add_argument("--device", help="generator.device (auto, cpu, cuda)")
    p.add_argument("--n", type=int, default=200, help="input documents")
    p.add_argument("--workers", type=int, help="curate worker processes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a generating step's parameter (YAML value), e.g. merge=prompt; repeatable",
    )
    p.add_argument("--cache", help="generation cache directory (default: OUT/generations)")
    p.add_argument("--json", action="store_true", help="print the table as JSON")
    a = p.parse_args(argv)
    gen = {
        k: v
        for k, v in (("path", a.checkpoint), ("tokenizer", a.tokenizer), ("device", a.device))
        if v is not None
    }
    params = {}
    for kv in a.param:
        key, sep, value = kv.partition("=")
        if not sep:
            p.error(f"--param {kv!r}: expected KEY=VALUE")
        params[key] = yaml.safe_load(value)
    config = a.config or CONFIGS / f"{PIPELINES[a.pipeline]}.yaml"
    table = run_on_world(
        a.pipeline,
        a.world,
        a.out,
        config,
        a.n,
        gen,
        a.workers,
        a.seed,
        params=params,
        cache=a.cache,
    )
    print(json.dumps(table) if a.json else markdown(a.pipeline, table))
    return table


if __name__ == "__main__":
    main()
