"""`data:` sources through prepare_data: the world, a documents directory and an HTML ingest,
unioned with a held-out split, curated and packed; errors for bad source specs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from realdata import write_html_dir, write_obelics_dir
from safetensors.numpy import load_file
from tinyexp import tiny_config

from vloom.config import ConfigError
from vloom.doc import read_documents
from vloom.ledger import Ledger
from vloom.pipeline import prepare_data
from vloom.sequence import load_tokenizer
from vloom.sources import SourceError
from vloom.sources.heldout import is_held_out

PER_MILLE = 300


def _data(docs: Path, html: Path, **kw) -> dict:
    return {
        "held_out_per_mille": PER_MILLE,
        "sources": [
            {"name": "world", "kind": "synth"},
            {"name": "books", "kind": "documents", "path": str(docs)},
            {"name": "web", "kind": "html", "paths": [str(html)], **kw},
        ],
    }


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("real")
    docs_marks = write_obelics_dir(root / "docs")
    html_marks = write_html_dir(root / "html")
    return {
        "docs": root / "docs",
        "html": root / "html",
        "doc_marks": docs_marks,
        "html_marks": html_marks,
    }


@pytest.fixture(scope="module")
def prepared(inputs, tmp_path_factory):
    cfg = tiny_config(data=_data(inputs["docs"], inputs["html"]))
    root = tmp_path_factory.mktemp("prepared")
    return prepare_data(cfg, root, quiet=True), cfg


def _packed_text(packed: Path) -> str:
    """Every shard's rows decoded as one stream: a document that runs on into the next row
    reads whole, so a row boundary cannot split (and hide) a marker."""
    tok = load_tokenizer(packed / "tokenizer.json")
    shards = []
    for shard in sorted(packed.glob("*.safetensors")):
        rows = load_file(str(shard))["tokens"]
        ids = [int(t) for row in rows for t in row]
        shards.append(tok.decode(ids))
    return "\n".join(shards)


def test_sources_flow_to_the_packed_tags_and_the_ledgers_add_up(prepared, inputs):
    d, _ = prepared
    web = Ledger.read(d.root / "sources" / "web")
    assert web.input == len(inputs["html_marks"])  # raw pages
    assert web.kept == web.input
    assert web.extra["images"]["attached"] == web.input
    union = Ledger.read(d.union)
    union.check()
    src = union.extra["sources"]
    assert list(src) == ["world", "books", "web"]
    assert src["web"]["input"] == web.kept
    assert src["books"]["input"] == len(inputs["doc_marks"])
    assert src["world"]["held_out"] == 0  # the world has its own held-out sets
    held = {k: v["held_out"] for k, v in src.items()}
    assert held["books"] > 0 and held["web"] > 0
    assert union.dropped["held_out"] == {k: v for k, v in held.items() if v}
    assert Ledger.read(d.curated).input == union.kept
    stats = json.loads((d.packed / "stats.json").read_text())
    assert {"books", "web"} <= set(stats["sources"])
    assert {s for s in stats["sources"] if s.startswith("world/")} == {
        "world/pairs",
        "world/text",
        "world/interleaved",
    }


def test_held_out_documents_never_reach_training(prepared, inputs):
    d, _ = prepared
    curated_ids = {doc.id for doc in read_documents(d.curated)}
    books_held = [i for i in inputs["doc_marks"] if is_held_out(i, PER_MILLE)]
    assert books_held and not curated_ids & set(books_held)
    text = _packed_text(d.packed)
    heldout_docs = list(read_documents(d.eval / "heldout_text.parquet"))
    held_ids = {x.id for x in heldout_docs if x.source in ("books", "web")}
    all_marks = {**inputs["doc_marks"]}
    for doc in heldout_docs:
        for m in list(inputs["html_marks"].values()) + list(all_marks.values()):
            if m in doc.text:
                assert m not in text, f"held-out marker {m} is in the packed data"
    kept = [m for i, m in inputs["doc_marks"].items() if i in curated_ids]
    assert kept and [m for m in kept if m not in text] == []
    assert held_ids


def test_eval_sets_hold_the_real_held_out_and_the_world(prepared):
    d, _ = prepared
    caps = list(read_documents(d.eval / "captions.parquet"))
    by = {c.source for c in caps}
    assert {"synth/pairs", "web", "books"} <= by
    web_caps = [c for c in caps if c.source == "web"]
    assert all(c.n_images == 1 for c in caps)
    assert all("coloured square" in c.text for c in web_caps)  # the figcaption
    assert (d.eval / "vqa.parquet").is_file()  # the world's sets are there too


def test_a_second_prepare_skips_every_stage(prepared, capsys):
    d, cfg = prepared
    prepare_data(cfg, d.root, quiet=False)
    out = capsys.readouterr().out
    for stage in ("synth", "ingest web", "union", "curate", "pack"):
        assert f"{stage}: complete, skipped" in out, out


def test_source_weights_add_a_mix_step_by_source(inputs, tmp_path):
    data = _data(inputs["docs"], inputs["html"])
    data["sources"][1]["weight"] = 1.0
    data["sources"][2]["weight"] = 1.0
    cfg = tiny_config(data=data)
    d = prepare_data(cfg, tmp_path, quiet=True)
    led = Ledger.read(d.curated)
    mix = led.extra["step_stats"]["mix"]
    assert json.dumps(mix)  # the mix ran, grouped by source
    rows = [r for r in led.extra["funnel"] if r.get("step") == "mix"]
    assert rows and set(rows[0].get("by_source", {})) >= {"books", "web"}


def test_duplicate_names_and_missing_paths_are_one_line_errors(inputs, tmp_path):
    data = _data(inputs["docs"], inputs["html"])
    data["sources"][2]["name"] = "books"
    with pytest.raises(ConfigError, match=r"data\.sources\[2\]\.name: 'books' is already"):
        tiny_config(data=data)
    data = _data(tmp_path / "nope", inputs["html"])
    cfg = tiny_config(data=data)
    with pytest.raises(SourceError, match=r"nope: no such file or directory \(data\.sources\[1\]"):
        prepare_data(cfg, tmp_path / "run", quiet=True)
    assert not (tmp_path / "run" / "synth").exists()  # nothing ran
    cfg = tiny_config(data=_data(inputs["docs"], inputs["html"], options={"min_txt": 3}))
    with pytest.raises(SourceError, match=r"data\.sources\[2\] \(web\)\.options\.min_txt: unknown"):
        prepare_data(cfg, tmp_path / "run", quiet=True)


def test_a_stage_mixture_names_data_sources(prepared):
    from vloom.config import StageConfig
    from vloom.train.mixture import resolve_mixture

    d, _ = prepared
    tags = json.loads((d.packed / "stats.json").read_text())["sources"]
    mix = resolve_mixture(StageConfig(mixture={"world": 0.5, "books": 0.3, "web": 0.2}), tags)
    assert mix["books"] == pytest.approx(0.3) and mix["web"] == pytest.approx(0.2)
    assert mix["world/pairs"] == pytest.approx(0.5 / 3)
    assert resolve_mixture(StageConfig(mixture={"pairs": 1.0}), tags) == {"world/pairs": 1.0}
