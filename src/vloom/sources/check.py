"""Run-start checks of the `data:` section (paths exist, ingest options are known), and the
curate config its weights imply. Paths are checked here rather than at config load so an
example config naming another machine's files still parses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vloom.config import INGEST_KINDS, CurateConfig, DataConfig, ExperimentConfig, StepConfig

SOURCE_KEY = "data_source"  # metadata key the union writes: the source name (mix groups by it)


class SourceError(ValueError):
    """A data source that cannot be used; the one-line message names the field."""


def field_name(data: DataConfig, i: int) -> str:
    return f"data.sources[{i}] ({data.sources[i].name})"


def present(data: DataConfig) -> tuple[DataConfig, list[str]]:
    """(`data` without the paths of optional sources that are not on this machine, and
    without optional sources left with none; the names of the sources left out)."""
    kept, gone = [], []
    for src in data.sources:
        if src.optional:
            paths = [p for p in src.paths if Path(p).exists()]
            if not paths:
                gone.append(src.name)
                continue
            src = src.model_copy(update={"paths": paths})
        kept.append(src)
    if not kept:
        raise SourceError(
            f"data.sources: every source is optional and none is on this machine ({', '.join(gone)})"
        )
    return data.model_copy(update={"sources": kept}), gone


def check_sources(data: DataConfig) -> None:
    """Every source path exists (an optional source's: those `present` keeps) and every ingest
    option is known, before any stage runs."""
    data = present(data)[0]
    for i, src in enumerate(data.sources):
        for j, p in enumerate(src.paths):
            if not Path(p).exists():
                raise SourceError(
                    f"{p}: no such file or directory ({field_name(data, i)}.paths[{j}])"
                )
        if src.kind in INGEST_KINDS:
            ingest_options(data, i, Path("."))


def ingest_options(data: DataConfig, i: int, out_dir: Path) -> Any:
    """The source's `options` as IngestOptions: its fields by name, others into `extra` when
    `vloom ingest --option` knows them."""
    from vloom.ingest.base import IngestOptions
    from vloom.ingest.commands import set_option

    opts = IngestOptions(out_dir=out_dir)
    for key, value in data.sources[i].options.items():
        try:
            set_option(opts, key, value)
        except ValueError as e:
            raise SourceError(f"{field_name(data, i)}.options.{key}: {e}") from None
    return opts


def curate_config(cfg: ExperimentConfig) -> CurateConfig:
    """cfg.curate, plus a last `mix` step by source when sources carry weights (normalised
    shares; a source without a weight passes through once)."""
    data = cfg.data
    if data is None or all(s.weight is None for s in data.sources):
        return cfg.curate
    weights = {s.name: s.weight for s in data.sources if s.weight is not None}
    total = sum(weights.values())
    mix = StepConfig(
        name="mix",
        by=f"metadata.{SOURCE_KEY}",
        shares={k: v / total for k, v in weights.items()},
        others="keep",
        seed=cfg.seed,
    )
    out = cfg.curate.model_copy(deep=True)
    out.steps = [*out.steps, mix]
    return out
