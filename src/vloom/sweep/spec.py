"""The study file: a base experiment, a grid over its fields, seeds and the shared recipe.

    name: study
    out_dir: runs/study
    base: configs/demo.yaml          # a path (relative to the study file) or an inline mapping
    set: {train.log_every: 20}       # dotted overrides applied to the base before the grid
    grid: {train.image_start_fraction: [0.0, 0.5, 0.8, 1.0]}
    variants: {small: {synth.n_text: 500}, large: {synth.n_text: 2000}}   # optional
    seeds: [0, 1]                    # replicates: the error bars come from these only
    # seeds: auto                    # or: as many as the comparisons need (sweep/seeds.py)
    # seed_plan: {metrics: [vqa.accuracy], start: 3, budget: 8, target_width: 0.02}
    tokens: 1000000                  # equal compute: pre-training tokens per run -> train.steps
    finetune: {steps: 100, lr: 0.0003}
    executor: local                  # local | ray | slurm

Everything is checked before anything runs: a grid field the config does not have, an empty
grid or an empty value list, and every expanded config (a run whose settings make an invalid
config is named).
"""

from __future__ import annotations

import copy
import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from vloom.config import (
    ConfigError,
    ExperimentConfig,
    Part,
    _fmt_errors,
    config_from_dict,
    dump_config,
    read_yaml,
    set_dotted,
)
from vloom.sweep.seeds import SeedPlanSpec


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FinetuneSpec(_Strict):
    """The fine-tuning stage every run gets after pre-training: images on from its first step."""

    steps: int = Field(100, ge=1, description="fine-tuning steps (the same for every run)")
    lr: float | None = Field(None, gt=0, description="peak LR; None = the pre-training LR")
    warmup_steps: int = Field(10, ge=0)
    image_text_ratio: float = Field(
        0.8, ge=0, le=1, description="share of image-bearing sequences during fine-tuning"
    )
    trainable: list[Part] = Field(default_factory=lambda: ["vision", "connector", "lm"])
    mixture: dict[str, float] | None = Field(
        None,
        description="shares of packed-row sources instead of image_text_ratio, e.g. "
        "{interleaved: 0.8, text: 0.2} (see train.stages[].mixture)",
    )


# Values that land in the SLURM script: strict shapes, so a newline or a `;` in the study file
# can never become a line of the shell script (`slurm.py` also shell-quotes every path).
NAME = r"^[A-Za-z0-9_.-]+$"
SLURM_NAMES = r"^[A-Za-z0-9_.-]+(,[A-Za-z0-9_.-]+)*$"  # a partition or a comma list of them
SLURM_TIME = r"^([0-9]+-)?[0-9]+(:[0-9]{1,2}){0,2}$"  # MM, MM:SS, HH:MM:SS, D-HH[:MM[:SS]]
SLURM_MEM = r"^[0-9]+[KMGT]?$"  # 16G, 16000M
SLURM_OPTION = r"^--[A-Za-z][A-Za-z0-9-]*(=[A-Za-z0-9_.,:%/=+@-]+)?$"  # --qos=high, --exclusive


class SlurmSpec(_Strict):
    partition: str | None = Field(None, pattern=SLURM_NAMES)
    account: str | None = Field(None, pattern=NAME, description="the account to charge")
    time: str = Field(
        "02:00:00", pattern=SLURM_TIME, description="per-run wall-clock limit (HH:MM:SS)"
    )
    cpus_per_task: int | None = Field(None, ge=1, description="None = the study's threads")
    mem: str | None = Field(None, pattern=SLURM_MEM, description="e.g. 16G")
    gpus: int = Field(0, ge=0)
    max_parallel: int | None = Field(None, ge=1, description="array throttle (%N)")
    extra: list[Annotated[str, StringConstraints(pattern=SLURM_OPTION)]] = Field(
        default_factory=list, description="more #SBATCH options, each one --option[=value]"
    )


class StudySpec(_Strict):
    name: str = Field("study", pattern=NAME, description="letters, digits, _ . - (a job name)")
    out_dir: str = Field(
        "runs/study", pattern=r"^[^\x00-\x1f\x7f]+$", description="no control characters"
    )
    base: str | dict[str, Any] = Field(default_factory=dict)
    set: dict[str, Any] = Field(default_factory=dict)
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    variants: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="named sets of dotted overrides, one more axis of the grid: settings that "
        "must change together (e.g. a filtered world vs its larger unfiltered superset)",
    )
    seeds: list[int] | Literal["auto"] | None = Field(
        None,
        description="replicate seeds; None = the base seed; auto = 0, 1, ... as many as "
        "seed_plan asks for from the results so far",
    )
    seed_plan: SeedPlanSpec | None = Field(None, description="how `seeds: auto` picks seeds")
    tokens: int | None = Field(
        None, ge=1, description="pre-training tokens per run (equal compute)"
    )
    finetune: FinetuneSpec | None = None
    data_seed: int | None = Field(
        None, description="seed of the shared synthetic data; None = the base config's seed"
    )
    executor: Literal["local", "ray", "slurm"] = "local"
    workers: int = Field(1, ge=1, description="runs at a time (local and ray)")
    threads: int = Field(0, ge=0, description="torch threads per run; 0 = cores // workers")
    slurm: SlurmSpec = Field(default_factory=SlurmSpec)


@dataclass
class RunPlan:
    """One run of the study: its directory name, its swept settings and its full config."""

    name: str
    settings: dict[str, Any]  # swept field -> value, seed included
    config: ExperimentConfig
    finetune: FinetuneSpec | None
    data_key: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Study:
    spec: StudySpec
    source: Path  # the study file
    base: dict[str, Any]  # the base config as a raw mapping (before the grid)
    runs: list[RunPlan]

    @property
    def out_dir(self) -> Path:
        return Path(self.spec.out_dir)

    @property
    def swept(self) -> list[str]:
        """The swept fields except the seed, in grid order: what the study report compares."""
        lead = ["variant"] if self.spec.variants else []
        return lead + [k for k in self.spec.grid if k != "seed"]


def _has_dotted(d: dict[str, Any], key: str) -> bool:
    for part in key.split("."):
        if not isinstance(d, dict) or part not in d:
            return False
        d = d[part]
    return True


def _fmt_value(v: Any) -> str:
    s = f"{v:g}" if isinstance(v, float) else str(v)
    return re.sub(r"[^A-Za-z0-9.+-]+", "-", s).strip("-") or "x"


def run_name(settings: dict[str, Any]) -> str:
    """A directory name from the settings: the last part of each field, `=`-free and path-safe.

    e.g. {"train.image_start_fraction": 0.8, "seed": 1} -> "image_start_fraction-0.8_seed-1".
    """
    lasts = [k.split(".")[-1] for k in settings]
    keys = [
        k.split(".")[-1] if lasts.count(k.split(".")[-1]) == 1 else k.replace(".", "-")
        for k in settings
    ]
    return "_".join(f"{k}-{_fmt_value(v)}" for k, v in zip(keys, settings.values(), strict=True))


def steps_for_tokens(tokens: int, cfg: ExperimentConfig) -> int:
    """Steps that train on `tokens` tokens: a step is batch_size x grad_accum x seq_len tokens."""
    per_step = cfg.train.batch_size * cfg.train.grad_accum * cfg.pack.seq_len
    return max(1, round(tokens / per_step))


def _read_base(spec: StudySpec, source: Path) -> dict[str, Any]:
    if isinstance(spec.base, dict):
        return copy.deepcopy(spec.base)
    path = Path(spec.base)
    if not path.is_absolute() and not path.exists():
        path = source.parent / path
    if not path.exists():
        raise ConfigError(f"{source}: base config {spec.base} not found")
    return read_yaml(path)


def load_study(path: str | Path, overrides: dict[str, Any] | None = None) -> Study:
    """Read and check a study file; `overrides` are dotted keys of the study (e.g. workers)."""
    path = Path(path)
    raw = read_yaml(path, "study file")
    for k, v in (overrides or {}).items():
        set_dotted(raw, k, v)
    if not raw.get("grid") and not raw.get("variants"):
        raise ConfigError(f"{path}: grid is empty: name at least one field with a list of values")
    try:
        spec = StudySpec.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(_fmt_errors(str(path), e)) from None
    return expand(spec, path)


def auto_seeds(spec: StudySpec) -> bool:
    return spec.seeds == "auto"


def expand(spec: StudySpec, source: Path, seeds: list[int] | None = None) -> Study:
    """The cartesian product of the grid (seeds last), each checked as a full config.
    `seeds`: with `seeds: auto`, the seeds to expand (default: seed_plan.start of them)."""
    base = _read_base(spec, source)
    for k, v in spec.set.items():
        set_dotted(base, k, v)
    base_cfg = config_from_dict(base, source=f"{source}: base")
    known = dump_config(base_cfg)
    if spec.data_seed is None:  # every run reads the data of the base seed, whatever its own
        spec = spec.model_copy(update={"data_seed": base_cfg.seed})
    for vname, overrides in spec.variants.items():
        for key in overrides:
            if not _has_dotted(known, key):
                raise ConfigError(
                    f"{source}: variant {vname!r} sets {key!r}, which does not exist in the "
                    "experiment config"
                )
    grid = {"variant": list(spec.variants)} if spec.variants else {}
    if "variant" in spec.grid:
        raise ConfigError(f"{source}: `variant` is the variants axis, not a grid field")
    grid.update(spec.grid)
    for key, values in grid.items():
        if key == "variant":
            continue
        if not _has_dotted(known, key):
            raise ConfigError(
                f"{source}: grid field {key!r} does not exist in the experiment config"
            )
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{source}: grid field {key!r} has no values")
    if auto_seeds(spec):
        if "seed" in grid:
            raise ConfigError(f"{source}: give seeds either as `seeds` or as grid.seed, not both")
        if spec.seed_plan is None:
            spec = spec.model_copy(update={"seed_plan": SeedPlanSpec()})
        grid["seed"] = list(seeds) if seeds else list(range(spec.seed_plan.start))
    elif spec.seed_plan is not None:
        raise ConfigError(f"{source}: seed_plan applies to `seeds: auto` only")
    elif spec.seeds is not None:
        if "seed" in grid:
            raise ConfigError(f"{source}: give seeds either as `seeds` or as grid.seed, not both")
        if not spec.seeds:
            raise ConfigError(f"{source}: seeds is empty")
        grid["seed"] = list(spec.seeds)
    elif "seed" not in grid:
        grid["seed"] = [base_cfg.seed]
    # seed last, so runs of one setting sit next to each other
    keys = [k for k in grid if k != "seed"] + ["seed"]
    runs: list[RunPlan] = []
    for values in itertools.product(*(grid[k] for k in keys)):
        settings = dict(zip(keys, values, strict=True))
        raw = copy.deepcopy(base)
        for k, v in settings.items():
            if k == "variant":
                for vk, vv in spec.variants[v].items():
                    set_dotted(raw, vk, copy.deepcopy(vv))
            else:
                set_dotted(raw, k, v)
        name = run_name(settings)
        raw["name"] = name
        cfg = config_from_dict(raw, source=f"{source}: run {name}")
        if spec.tokens is not None:
            cfg.train.steps = steps_for_tokens(spec.tokens, cfg)
        if spec.threads:
            cfg.train.threads = spec.threads
        elif cfg.train.threads == 0 and spec.executor == "local":
            import os

            cfg.train.threads = max(1, (os.cpu_count() or 1) // spec.workers)
        runs.append(RunPlan(name, settings, cfg, spec.finetune))
    names = [r.name for r in runs]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise ConfigError(f"{source}: two runs share the name {dup}: grid values repeat")
    return Study(spec, source, base, runs)
