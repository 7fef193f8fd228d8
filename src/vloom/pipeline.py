"""The stage chain: synth -> curate -> pack (`prepare_data`), train -> eval (`train_stage`,
`eval_stage`), used by `vloom run` and by every sweep run, skipping finished stages.

With a `data:` section the chain is synth (when a source is the world) -> ingest of each ingest
source -> union (retag, held-out split: vloom.sources) -> curate -> pack; without one it is
exactly the world's chain, byte for byte.

With a `kind: sft` stage the chain also builds the SFT shards (ROOT/sft: the `sft` section's
conversations packed with the training tokenizer, vloom.pack.sft). A run whose stages are all
post-training (sft / rl) from `train.init_from` does not curate or pack: it trains on the
checkpoint's own packed data (its tokenizer and row shape), found where the checkpoint names
its tokenizer or, failing that, beside the checkpoint's run (RUN/packed).

A stage counts as done only when its completion marker exists and parses (synth:
manifest.json, curate: ledger.json, pack: stats.json, train: checkpoints/final + the summary,
eval: results.json), so a marker torn by a kill means "rerun the stage", and rerunning the
same command after a crash picks up where it stopped.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vloom.config import ExperimentConfig, check_model_dirs, dump_config
from vloom.ondisk import (
    CHECKPOINTS,
    FINAL,
    LEDGER,
    MANIFEST,
    RESULTS,
    RUN_CONFIG,
    STATS,
    TOKENIZER,
    TRAIN_SUMMARY,
    atomic_write_json,
    complete,
    read_json,
    read_json_object,
    training_complete,
)


def _log(msg: str, quiet: bool) -> None:
    if not quiet:
        print(f"[vloom] {msg}", flush=True)


@dataclass(frozen=True)
class DataDirs:
    """Where one data setting's stages write: ROOT/synth, ROOT/curated, ROOT/packed (and, for
    a `data:` section, ROOT/sources/<name> and ROOT/union, whose eval/ holds the eval sets)."""

    root: Path
    sources: bool = False  # built from a `data:` section
    pretrained: Path | None = None  # packed data of train.init_from's run (post-training)

    @property
    def union(self) -> Path:
        return self.root / "union"

    @property
    def synth(self) -> Path:
        return self.root / "synth"

    @property
    def curated(self) -> Path:
        return self.root / "curated"

    @property
    def packed(self) -> Path:
        return self.pretrained or self.root / "packed"

    @property
    def sft(self) -> Path:
        return self.root / "sft"

    @property
    def eval(self) -> Path:
        return (self.union if self.sources else self.synth) / "eval"

    @property
    def tokenizer(self) -> Path:
        return self.packed / TOKENIZER


def post_training_only(cfg: ExperimentConfig) -> bool:
    """Every stage is sft or rl and starts from train.init_from: nothing to pre-train on."""
    kinds = {st.kind for st in cfg.train.stages}
    return bool(cfg.train.init_from) and "pretrain" not in kinds


def checkpoint_packed_dir(ckpt: str | Path) -> Path:
    """The packed data a checkpoint was trained on (its tokenizer.json and stats.json): its
    run's RUN/packed beside RUN/checkpoints (a run directory moved or copied keeps it), else
    the directory of the tokenizer the checkpoint's config.json names."""
    ckpt = Path(ckpt)
    meta = read_json_object(ckpt / "config.json", "checkpoint config")
    named = Path(meta["tokenizer"]).parent if meta.get("tokenizer") else None
    for cand in (ckpt.resolve().parent.parent / "packed", named):
        if cand is not None and complete(cand / STATS) and (cand / TOKENIZER).exists():
            return cand
    raise FileNotFoundError(
        f"{ckpt / 'config.json'}: tokenizer {meta.get('tokenizer')!r} and "
        f"{ckpt.resolve().parent.parent / 'packed'} hold no packed data (stats.json + "
        "tokenizer.json): the checkpoint's tokenizer is needed to build its SFT data"
    )


def prepare_sft(cfg: ExperimentConfig, d: DataDirs, quiet: bool = False) -> None:
    """The SFT shards (ROOT/sft) with the training tokenizer, unless complete."""
    if complete(d.sft / STATS):
        _log("sft data: complete, skipped", quiet)
        return
    from vloom.pack.sft import build_sft_data
    from vloom.sequence import TokenLayout, load_tokenizer

    _log(f"sft data -> {d.sft}", quiet)
    stats = read_json_object(d.packed / STATS, "packed stats")
    layout = TokenLayout.from_json(stats.get("token_layout"), f"{d.packed / STATS}: token_layout")
    # rows and images shaped as the model was trained (the checkpoint's data when reused)
    cfg = cfg.model_copy(deep=True)
    cfg.pack.seq_len, cfg.pack.image_size = stats["seq_len"], stats["image_size"]
    tok = load_tokenizer(str(d.tokenizer), layout)
    synth = d.synth if complete(d.synth / MANIFEST) else None
    st = build_sft_data(cfg, tok, layout, d.sft, synth, quiet=quiet)
    _log(
        f"sft data: {st['conversations']} conversations in {st['rows']} rows, "
        f"{st['rejected']} rejected",
        quiet,
    )


def prepare_data(
    cfg: ExperimentConfig, root: str | Path, seed: int | None = None, quiet: bool = False
) -> DataDirs:
    """synth -> curate -> pack under `root` (with a `data:` section: synth -> ingest -> union ->
    curate -> pack), each stage skipped when its marker is complete.

    `seed` is the synthetic world's seed (a sweep shares one world across training seeds);
    None = the experiment's.
    """
    from vloom.curate import run_curate
    from vloom.pack import run_pack
    from vloom.synth import generate

    check_model_dirs(cfg)  # pack tokenizes with model.lm.init's tokenizer
    reuse = checkpoint_packed_dir(cfg.train.init_from) if post_training_only(cfg) else None
    d = DataDirs(Path(root), sources=cfg.data is not None, pretrained=reuse)
    if cfg.data is not None:
        from vloom.sources import check_sources, present

        data, gone = present(cfg.data)
        for name in gone:
            _log(f"source {name}: optional and not on this machine, left out", quiet)
        cfg = cfg.model_copy(update={"data": data})
        check_sources(cfg.data)  # a missing path or unknown option fails before any work
    if cfg.data is None or cfg.data.synth is not None:
        if not complete(d.synth / MANIFEST):
            _log(f"synth -> {d.synth}", quiet)
            generate(cfg.synth, d.synth, cfg.seed if seed is None else seed, quiet=quiet)
        else:
            _log("synth: complete, skipped", quiet)
    curate_in, curate_cfg = d.synth / "train", cfg.curate
    if cfg.data is not None:
        from vloom.sources import build_union, curate_config, ingest_sources

        ingest_sources(cfg.data, d.root, quiet, cfg.curate)  # same executor settings
        if not complete(d.union / LEDGER):
            _log(f"union -> {d.union}", quiet)
            build_union(cfg, d.root, d.synth, quiet)
        else:
            _log("union: complete, skipped", quiet)
        curate_in, curate_cfg = d.union, curate_config(cfg)
    if reuse is not None:
        _log(f"curate, pack: not needed (train.init_from's packed data: {reuse})", quiet)
    elif not complete(d.curated / LEDGER):
        _log(f"curate -> {d.curated}", quiet)
        led = run_curate(curate_in, d.curated, curate_cfg, quiet=quiet)
        _log(
            f"curate: {led.input} in, {led.kept} kept, {led.n_dropped} dropped, "
            f"{led.n_rejected} rejected",
            quiet,
        )
    else:
        _log("curate: complete, skipped", quiet)
    if reuse is not None:
        pass
    elif not complete(d.packed / STATS):
        _log(f"pack -> {d.packed}", quiet)
        run_pack(d.curated, d.packed, cfg, quiet=quiet)
    else:
        _log("pack: complete, skipped", quiet)
    if any(st.kind == "sft" for st in cfg.train.stages):
        prepare_sft(cfg, d, quiet)
    return d


def train_stage(
    cfg: ExperimentConfig,
    packed: Path,
    run_dir: Path,
    quiet: bool = False,
    eval_dir: Path | None = None,
    sft_dir: Path | None = None,
) -> dict[str, Any]:
    """Train (or resume) into `run_dir`; a complete run is skipped and its summary returned.
    `eval_dir`: the eval sets that `eval.during_training` reads (the final eval's); `sft_dir`:
    the SFT shards of `kind: sft` stages."""
    if training_complete(run_dir):
        _log(f"train: complete, skipped ({run_dir})", quiet)
        return read_json(run_dir / TRAIN_SUMMARY)
    from vloom.train import train

    _log(f"train -> {run_dir}", quiet)
    return train(cfg, packed, run_dir, quiet=quiet, eval_dir=eval_dir, sft_dir=sft_dir)


def eval_stage(
    cfg: ExperimentConfig,
    ckpt: Path,
    data: DataDirs,
    run_dir: Path,
    train_info: dict[str, Any] | None,
    quiet: bool = False,
) -> dict[str, Any]:
    """Evaluate `ckpt` into RUN/results.json unless a complete one is there; return it."""
    path = run_dir / RESULTS
    if not complete(path):
        from vloom.evaluate import evaluate, write_results

        _log(f"eval -> {path}", quiet)
        evals = evaluate(
            ckpt,
            data.eval,
            cfg.eval.tasks,
            tokenizer_path=data.tokenizer,
            batch_size=cfg.eval.batch_size,
            max_examples=cfg.eval.max_examples,
            device=cfg.eval.device,
            seed=cfg.eval.seed,
        )
        write_results(run_dir, evals, dump_config(cfg), train_info)
    return read_json(path)


def train_and_eval(
    cfg: ExperimentConfig, run_dir: Path, data: DataDirs, quiet: bool = False
) -> dict[str, Any]:
    sft = data.sft if any(st.kind == "sft" for st in cfg.train.stages) else None
    summary = train_stage(cfg, data.packed, run_dir, quiet, eval_dir=data.eval, sft_dir=sft)
    return eval_stage(cfg, run_dir / CHECKPOINTS / FINAL, data, run_dir, summary, quiet)


def claim_run_dir(run_dir: Path, cfg: ExperimentConfig, hint: str) -> None:
    """Write RUN/config.json, refusing a directory that holds a run of another config.

    A config.json torn by a kill is not a claim: it is rewritten (atomically, so this one
    cannot be torn).
    """
    path, resolved = run_dir / RUN_CONFIG, dump_config(cfg)
    if complete(path) and read_json(path) != resolved:
        raise ValueError(f"{run_dir}: holds a run of a different config; {hint}")
    atomic_write_json(path, resolved)


def control_config(cfg: ExperimentConfig) -> ExperimentConfig:
    """The text-only control: the same budget (steps, batch, sequence length), images never on."""
    c = cfg.model_copy(deep=True)
    c.train.image_start_fraction = 1.0
    return c


def _scores(res: dict[str, Any]) -> str:
    return json.dumps({t: m.get("accuracy", m.get("loss")) for t, m in res["eval"].items()})


def run_experiment(
    cfg: ExperimentConfig, out_dir: str | Path | None = None, quiet: bool = False
) -> Path:
    from vloom.report import write_report

    run = Path(out_dir or cfg.out_dir)
    check_model_dirs(cfg)  # before the run directory records a config with unread weights
    run.mkdir(parents=True, exist_ok=True)
    claim_run_dir(run, cfg, "choose another out_dir or delete it")
    t0 = time.perf_counter()
    data = prepare_data(cfg, run, quiet=quiet)
    res = train_and_eval(cfg, run, data, quiet)
    _log(f"results: {_scores(res)}", quiet)
    if cfg.control:
        ctl = train_and_eval(control_config(cfg), run / "control", data, quiet)
        _log(f"control: {_scores(ctl)}", quiet)
    report = write_report(run)
    _log(f"report -> {report} ({time.perf_counter() - t0:.0f}s this invocation)", quiet)
    return run
