"""The report's config summary names what a run really used: its data sources, and the
pretrained LM's tokenizer rather than the unused pack.vocab_size; the world's sizes only when
the world is a source."""

from __future__ import annotations

from vloom.config import ExperimentConfig, dump_config
from vloom.report.tables import config_table


def _rows(cfg: dict) -> dict[str, str]:
    lines = config_table(cfg).splitlines()[2:]
    return {c[0]: c[1] for c in (line.strip("| ").split(" | ") for line in lines)}


def test_a_real_data_run_shows_its_sources_and_its_tokenizer():
    cfg = dump_config(ExperimentConfig())
    cfg["data"] = {
        "sources": [{"name": "manuals", "kind": "html"}, {"name": "pdfs", "kind": "pdf"}]
    }
    cfg["model"]["lm"]["init"] = "runs/assets/lm"
    rows = _rows(cfg)
    assert rows["data sources"] == "manuals (html), pdfs (pdf)"
    assert rows["vocab size"] == "runs/assets/lm's tokenizer"
    assert "interleaved docs" not in rows and "image size" not in rows


def test_a_world_run_keeps_the_world_sizes():
    cfg = dump_config(ExperimentConfig())
    assert _rows(cfg)["interleaved docs"] == "1500" and _rows(cfg)["vocab size"] == "2048"
    cfg["data"] = {"sources": [{"name": "world", "kind": "synth"}]}
    rows = _rows(cfg)
    assert rows["interleaved docs"] == "1500" and rows["data sources"] == "world (synth)"
