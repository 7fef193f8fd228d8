"""The report's Sources section: the funnel of a run built from a `data:` section.

Per source, from the files the stages left: raw inputs (an ingest ledger's pages / PDFs /
records; documents read for the world and a documents directory) -> documents -> held out ->
to curation (union/ledger.json) -> kept by curation (curated/.curate's per-shard ledgers,
grouped by the union's shard names) -> packed rows and tokens (the row source tags of
packed/*.safetensors). A run without a `union/` has no such section.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from vloom.report.runfiles import RunFileError, read_json, read_ledger
from vloom.report.tables import fmt, ledger_table, md_table

UNION, SOURCES, CURATE_STATE = "union", "sources", ".curate"
_TOTALS = ("raw", "docs", "held", "to", "kept", "rows", "tok")


def _curated_kept(run_dir: Path, shards: list[str]) -> int | None:
    total = 0
    for name in shards:
        led = read_json(run_dir / "curated" / CURATE_STATE / f"{name}.ledger.json")
        if led is None:
            return None
        total += int(led.get("kept", 0))
    return total


def _packed_rows(run_dir: Path) -> Counter | None:
    """Packed rows per source tag, or None before packing."""
    packed = run_dir / "packed"
    stats = read_json(packed / "stats.json")
    if stats is None:
        return None
    from safetensors import safe_open

    names = list(stats.get("sources", []))
    rows: Counter = Counter()
    for shard in sorted(packed.glob("*.safetensors")):
        with safe_open(str(shard), "numpy") as f:
            if "sources" in f.keys():
                rows.update(names[int(i)] for i in f.get_tensor("sources"))
    return rows


def _tag_source(tag: str, names: list[str]) -> str | None:
    return next((n for n in names if tag == n or tag.startswith(f"{n}/")), None)


def funnel_rows(run_dir: Path) -> tuple[list[list[Any]], list[str]]:
    """(table rows, notes) for the sources table; RunFileError for an unreadable ledger."""
    union = read_ledger(run_dir / UNION)
    if union is None:
        return [], []
    per = union.extra.get("sources") or {}
    stats = read_json(run_dir / "packed" / "stats.json") or {}
    width = int(stats.get("seq_len", 0)) + 1
    rows_by_tag = _packed_rows(run_dir)
    rows_by_src: Counter = Counter()
    for tag, n in (rows_by_tag or {}).items():
        rows_by_src[_tag_source(tag, list(per)) or "(other)"] += n
    out, notes = [], []
    totals = Counter()
    for name, c in per.items():
        ingest = (
            read_ledger(run_dir / SOURCES / name)
            if c.get("kind") not in ("synth", "documents")
            else None
        )
        raw = ingest.input if ingest is not None else c.get("input", 0)
        docs = ingest.kept if ingest is not None else c.get("input", 0)
        kept = _curated_kept(run_dir, c.get("shards", []))
        rows = rows_by_src.get(name) if rows_by_tag is not None else None
        tokens = rows * width if rows is not None else None
        line = [
            name,
            c.get("kind"),
            raw,
            docs,
            c.get("held_out"),
            c.get("kept"),
            kept,
            rows,
            tokens,
        ]
        out.append(line)
        for k, v in zip(_TOTALS, line[2:], strict=True):
            totals[k] += v or 0
        if ingest is not None and ingest.input != ingest.kept:
            notes.append(
                f"{name}: {ingest.input - ingest.kept} of {ingest.input} raw inputs "
                f"dropped or rejected by ingest (see its ledger below)"
            )
    if len(out) > 1:
        out.append(
            [
                "**all**",
                "",
                *(totals[k] for k in ("raw", "docs", "held", "to", "kept", "rows", "tok")),
            ]
        )
    return out, notes


def sources_section(run_dir: Path) -> list[str]:
    """Markdown parts for the report; [] when the run has no union (no `data:` section)."""
    if not (run_dir / UNION).exists():
        return []
    out = ["### Sources: raw inputs -> documents -> kept -> tokens\n"]
    try:
        rows, notes = funnel_rows(run_dir)
    except RunFileError as e:
        return [*out, f"{e}\n"]
    if not rows:
        return [*out, f"no {UNION}/ledger.json: the union of the sources has not run.\n"]
    header = [
        "source",
        "kind",
        "raw inputs",
        "documents",
        "held out",
        "to curation",
        "kept by curation",
        "packed rows",
        "tokens",
    ]
    out.append(md_table(header, [[fmt(v) for v in r] for r in rows]))
    if notes:
        out.append("\n".join(f"- {n}" for n in notes) + "\n")
    union = read_ledger(run_dir / UNION)
    if union is not None and isinstance(union.extra.get("eval"), dict):
        ev = union.extra["eval"]
        out.append(
            f"Held out by id ({fmt(union.extra.get('held_out_per_mille'))} per mille of each "
            f"real source's documents): {fmt(ev.get('heldout_text'))} held-out texts, "
            f"{fmt(ev.get('captions'))} captions in union/eval (text_ppl, caption_loss).\n"
        )
    for name_dir in sorted((run_dir / SOURCES).glob("*/")):
        try:
            led = read_ledger(name_dir)
        except RunFileError as e:
            out.append(f"{e}\n")
            continue
        if led is not None:
            out.append(f"#### Ingest ledger: {name_dir.name} ({led.extra.get('source', '')})\n")
            out.append(ledger_table(led))
            im = led.extra.get("images")
            if isinstance(im, dict):
                out.append(
                    f"Images: {fmt(im.get('attached'))} of {fmt(im.get('references'))} "
                    f"references attached; missing {fmt(im.get('missing'))}, rejected "
                    f"{fmt(im.get('rejected'))}.\n"
                )
    return out
