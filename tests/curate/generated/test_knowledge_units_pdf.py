"""Knowledge units from PDFs (issue 18: "scholarly text (PDFs through ingest)"): the world's
text documents typeset into a PDF with PyMuPDF, read back by `vloom ingest pdf`, and run
through the `knowledge_units` curate step. With the random tiny checkpoint (JSON mode) every
section's generation is counted by its reason and no unit is kept; with a backend that reads
the section's facts (`Reader`, a `module:attr` generator backend standing in for a model that
reads well) units are written and every fact the PDF kept is retained."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pymupdf

from vloom.config import load_curate_config
from vloom.curate import run_curate
from vloom.curate.generated.common import world_documents
from vloom.curate.generated.knowledge_units import COUNT_QUESTION, KnowledgeUnits, sections
from vloom.curate.generated.world_run import score_table
from vloom.doc import read_documents
from vloom.generate.generator import Request
from vloom.ledger import Ledger
from vloom.synth.factcheck import Count, Mention, parse_facts, render_facts

CONFIGS = Path(__file__).resolve().parents[3] / "configs" / "generated"
N_DOCS = 2


class Reader:
    """A generator backend that answers knowledge_units' questions-mode prompts from the
    section in the prompt (the facts `factcheck` reads there), in the world's words."""

    def __init__(self) -> None:
        self.calls = 0

    @classmethod
    def from_config(cls, cfg) -> Reader:
        return cls()

    def identity(self) -> dict:
        return {"backend": "reader", "v": 1}

    def generate(self, requests: list[Request]) -> list[str]:
        self.calls += len(requests)
        return [self._answer(r.turns[-1][1]) for r in requests]

    @staticmethod
    def _answer(prompt: str) -> str:
        if prompt.endswith(COUNT_QUESTION):
            facts = parse_facts(prompt.removesuffix(COUNT_QUESTION))
            return render_facts([f for f in facts if isinstance(f, Count)][:1]) or "I see."
        m = re.search(r"(?:What shape is|Where is) the (\w+) object\?$", prompt)
        assert m, prompt[-80:]
        facts = parse_facts(prompt[: m.start()])
        objs = [f for f in facts if isinstance(f, Mention) and f.colour == m.group(1)]
        full = max(objs, key=lambda o: len(o.named()), default=None)  # the fullest mention
        return render_facts([full]) if full else "I see."


def _pdf(path: Path, text: str) -> None:
    """One document on one page, each paragraph a text box (PyMuPDF wraps the lines)."""
    pdf = pymupdf.open()
    pdf.set_metadata({"title": f"Scenes, part {path.stem}", "author": "Tester"})
    page = pdf.new_page()  # 595 x 842
    y = 60.0
    for para in text.split("\n\n"):
        left = page.insert_textbox(pymupdf.Rect(60, y, 535, 800), para, fontsize=8)
        assert left >= 0, "the paragraph did not fit the page"
        y = 800 - left + 12
    pdf.save(path)


def _ingest(tmp_path: Path, world: Path) -> tuple[Path, list[str]]:
    from vloom.cli import main

    world_texts = [d.text for d in world_documents(world, "text-", N_DOCS)]
    src = tmp_path / "pdfs"
    src.mkdir()
    for i, text in enumerate(world_texts):
        _pdf(src / f"{i}.pdf", text)
    out = tmp_path / "ingested"
    assert main(["ingest", "pdf", str(src), "--out", str(out), "--quiet"]) == 0
    assert len(list(read_documents(out))) == N_DOCS and Ledger.read(out).kept == N_DOCS
    return out, world_texts


def _curate(inp: Path, out: Path, config: str, generator: dict) -> dict:
    cfg = load_curate_config(CONFIGS / config)
    for step in cfg.steps:
        extra = step.model_extra or {}
        extra["generator"] = generator
        extra["cache_dir"] = str(out.parent / f"{out.name}-generations")
    led = run_curate(inp, out, cfg, quiet=True)
    return score_table("units", led.to_dict())


def test_pdf_sections_go_through_knowledge_units(world_gen, tmp_path, capsys):
    inp, world_texts = _ingest(tmp_path, world_gen.world)
    capsys.readouterr()
    docs = list(read_documents(inp))
    secs = [s for d in docs for s in sections(d.text, 1200)]
    # every scene section of the documents came through the PDFs as the world wrote it
    assert sorted(s for d in docs for _, s in sections(d.text, 1200)) == sorted(
        s for t in world_texts for _, s in sections(t, 1200)
    )

    # the random tiny checkpoint writes no JSON: every section counted, the document dropped
    table = _curate(inp, tmp_path / "json", "knowledge_units.yaml", world_gen.spec)
    gen = table["generation"]["units"]
    assert set(gen) <= {"invalid_json", "schema_mismatch", "context_overflow", "refused"}
    assert sum(gen.values()) == len(secs) == table["retention"]["sections"]
    assert table["kept"] == 0 and table["input"] == N_DOCS
    assert sum(table["dropped"].values()) == N_DOCS and all(
        k.startswith("units_") for k in table["dropped"]
    )

    # a backend that reads the section: units written, validated, the facts retained
    reader = {"backend": f"{__name__}:Reader"}
    table = _curate(inp, tmp_path / "questions", "knowledge_units_questions.yaml", reader)
    assert table["kept"] == N_DOCS
    read = table["generation"]["read"]
    assert read.get("generated", 0) > len(secs) and set(read) == {"generated"}
    for units_doc in read_documents(tmp_path / "questions"):
        rows = units_doc.metadata["knowledge_units"]
        assert rows and all(KnowledgeUnits.model_validate(r["units"]) for r in rows)
        lines = [json.loads(line) for line in units_doc.text.splitlines()]
        assert lines == [r["units"] for r in rows]
    r = table["retention"]
    assert r["sections"] > 0 and r["acc_original"] == 1.0
    # the reader states colours, counts, shapes, sizes and places of what the section says
    assert r["acc_units"] == 1.0 and r["retention"] == 1.0
