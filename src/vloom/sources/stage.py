"""Each ingest source runs as a stage of its own into ROOT/sources/<name>, skipped when its
ledger.json is complete; `source_inputs` says where every source's documents are."""

from __future__ import annotations

from pathlib import Path

from vloom.config import INGEST_KINDS, CurateConfig, DataConfig
from vloom.ondisk import LEDGER, complete
from vloom.sources.check import ingest_options

SOURCES_DIR = "sources"


def _log(msg: str, quiet: bool) -> None:
    if not quiet:
        print(f"[vloom] {msg}", flush=True)


def ingest_sources(
    data: DataConfig, root: Path, quiet: bool = False, executor: CurateConfig | None = None
) -> None:
    """`vloom ingest` every ingest source into ROOT/sources/<name> unless already complete.

    `executor` (the run's curate section) lends its workers / executor / ray_address, so one
    setting scales ingest and curation alike; the output bytes do not depend on it.
    """
    from vloom.ingest.run import run_ingest

    ex = executor or CurateConfig()

    for i, src in enumerate(data.sources):
        if src.kind not in INGEST_KINDS:
            continue
        out = root / SOURCES_DIR / src.name
        if complete(out / LEDGER):
            _log(f"ingest {src.name}: complete, skipped", quiet)
            continue
        _log(f"ingest {src.name} ({src.kind}) -> {out}", quiet)
        led = run_ingest(
            src.kind,
            [Path(p) for p in src.paths],
            out,
            ingest_options(data, i, out),
            quiet=quiet,
            shard_size=data.shard_size,
            workers=ex.workers,
            executor=ex.executor,
            ray_address=ex.ray_address,
        )
        _log(
            f"ingest {src.name}: {led.input} in, {led.kept} documents, {led.n_dropped} dropped, "
            f"{led.n_rejected} rejected",
            quiet,
        )


def source_inputs(data: DataConfig, root: Path, synth_train: Path) -> list[list[Path]]:
    """Per source (config order), the files or directories its documents are read from."""
    out = []
    for src in data.sources:
        if src.kind == "synth":
            out.append([synth_train])
        elif src.kind == "documents":
            out.append([Path(p) for p in src.paths])
        else:
            out.append([root / SOURCES_DIR / src.name])
    return out
