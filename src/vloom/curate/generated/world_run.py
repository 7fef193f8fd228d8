"""One model-in-the-loop pipeline end to end on a synthetic world, with its score table.

    kale           alt-text pairs from the world's training scenes (`kale.alt_text_pairs`)
    units          the world's clean text documents
    backtranslate  the world's clean pairs and text documents, half each
The input is written under OUT/input, curated into OUT/curated with the curate config (its
steps' `generator` sections get the overrides given, e.g. the checkpoint path), and the
table is read from the ledger's step_stats (summed over shards): OUT/scores.json. A rerun
reuses the input and every cached generation (OUT/generations unless `cache` names another:
runs that differ only after a stage share that stage's generations). Back-translation also
writes OUT/pairs.jsonl (OpenAI messages: what `vloom sft-data` reads as a chat source).
Entry point: `python scripts/model_in_the_loop.py PIPELINE --world SYNTH --checkpoint CKPT`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vloom.config import CurateConfig, load_curate_config
from vloom.curate.generated.common import CACHE_DIRNAME
from vloom.doc import Document, read_documents, write_documents
from vloom.ondisk import atomic_write_json

PIPELINES = {"kale": "kale", "units": "knowledge_units", "backtranslate": "backtranslate"}


def world_input(pipeline: str, world: str | Path, n: int, seed: int = 0) -> list[Document]:
    from vloom.curate.generated.common import world_documents
    from vloom.curate.generated.kale import alt_text_pairs

    if pipeline == "kale":
        return alt_text_pairs(world, n, seed)
    if pipeline == "units":
        return world_documents(world, "text-", n)
    half = n // 2
    return world_documents(world, "pair-", n - half) + world_documents(world, "text-", half)


def score_table(pipeline: str, ledger: dict[str, Any]) -> dict[str, Any]:
    """The pipeline's scores from a curate ledger (see each module's table function)."""
    from vloom.curate.generated.backtranslate import pairs_table
    from vloom.curate.generated.kale import facts_table
    from vloom.curate.generated.knowledge_units import retention_table

    step = PIPELINES[pipeline]
    stats = ledger.get("step_stats", {}).get(step, {})
    dropped = ledger.get("dropped", {}).get(step, {})
    out: dict[str, Any] = {
        "input": ledger.get("input", 0),
        "kept": ledger.get("kept", 0),
        "dropped": dict(sorted(dropped.items())),
        "rejected": ledger.get("rejected", {}),
        "generation": stats.get("generation", {}),
    }
    if pipeline == "kale":
        out["facts"] = facts_table(stats)
    elif pipeline == "units":
        out["retention"] = retention_table(stats)
    else:
        out["pairs"] = pairs_table(stats, dropped)
    return out


def point_generators(
    cfg: CurateConfig,
    generator: dict[str, Any] | None,
    params: dict[str, Any] | None,
    cache: str | Path,
) -> CurateConfig:
    """`cfg` (a CurateConfig) with `generator` merged into every step's generator section,
    `params` into those steps, and their generation cache at `cache` unless a step sets one."""
    for step in cfg.steps:
        extra = step.model_extra or {}
        if "generator" in extra:
            extra["generator"] = {**extra["generator"], **(generator or {})}
            extra.update(params or {})
            extra.setdefault("cache_dir", str(cache))
    return cfg


def run_on_world(
    pipeline: str,
    world: str | Path,
    out: str | Path,
    config: str | Path,
    n: int = 200,
    generator: dict[str, Any] | None = None,
    workers: int | None = None,
    seed: int = 0,
    quiet: bool = True,
    params: dict[str, Any] | None = None,
    cache: str | Path | None = None,
) -> dict[str, Any]:
    """Build the input, curate it, score it; returns (and writes) the table. `generator`
    updates every step's generator section, `params` the generating steps' own parameters."""
    from vloom.curate import run_curate

    if pipeline not in PIPELINES:
        raise ValueError(f"pipeline {pipeline!r}: expected one of {', '.join(PIPELINES)}")
    out = Path(out)
    cfg = point_generators(
        load_curate_config(config), generator, params, cache or out / CACHE_DIRNAME
    )
    if workers is not None:
        cfg.workers = workers
    inp = out / "input"
    if not (inp / "_done").exists():
        write_documents(inp, world_input(pipeline, world, n, seed), shard_size=max(n // 4, 1))
        (inp / "_done").touch()
    led = run_curate(inp, out / "curated", cfg, quiet=quiet)
    table = score_table(pipeline, led.to_dict())
    if pipeline == "backtranslate":
        from vloom.curate.generated.backtranslate import write_openai_jsonl

        table["pairs"]["jsonl_rows"] = write_openai_jsonl(
            read_documents(out / "curated"), out / "pairs.jsonl"
        )
    atomic_write_json(out / "scores.json", table)
    return table


def markdown(pipeline: str, table: dict[str, Any]) -> str:
    """The table as Markdown (what the script prints)."""
    lines = [f"## {pipeline}: {table['kept']} of {table['input']} documents kept"]
    if table["dropped"]:
        lines.append("dropped: " + ", ".join(f"{k} {v}" for k, v in table["dropped"].items()))
    for stage, c in table["generation"].items():
        lines.append(f"generation {stage}: " + ", ".join(f"{k} {v}" for k, v in sorted(c.items())))
    rows = table.get("facts") or [table.get("retention") or table.get("pairs")]
    if rows and rows[0]:
        keys = list(rows[0])
        lines += ["", "| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
        lines += ["| " + " | ".join(str(r.get(k, "")) for k in keys) + " |" for r in rows]
    return "\n".join(lines)
