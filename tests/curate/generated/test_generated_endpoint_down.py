"""An endpoint that is down (a closed port on 127.0.0.1, through the real http backend):
every generating step counts it by reason in the ledger and the run goes on."""

from __future__ import annotations

import socket

from vloom.curate import run_steps
from vloom.curate.generated.backtranslate import BackTranslate
from vloom.curate.generated.common import world_documents
from vloom.curate.generated.kale import KaleCaptions, alt_text_pairs
from vloom.curate.generated.knowledge_units import KnowledgeUnitsStep, sections


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the block ends: nothing listens


def test_a_down_endpoint_is_counted_and_the_run_goes_on(tiny_data):
    spec = {
        "backend": "http",
        "url": f"http://127.0.0.1:{_closed_port()}/v1",
        "model": "none",
        "retries": 1,
        "backoff_s": 0.0,
        "timeout_s": 5,
    }
    pairs = alt_text_pairs(tiny_data["synth"], 3)
    texts = world_documents(tiny_data["synth"], "text-", 2)
    for step, docs, stage in (
        (KaleCaptions(spec), pairs, "caption"),
        (BackTranslate(spec), texts, "instruction"),
        (KnowledgeUnitsStep(spec), texts, "units"),
    ):
        kept, led = run_steps(docs, [step])
        assert kept == []
        assert led.dropped[step.name] == {f"{stage}_endpoint_down": len(docs)}
        asked = sum(len(sections(d.text, 1200)) for d in docs) if stage == "units" else len(docs)
        assert step.tally["generation"] == {stage: {"endpoint_down": asked}}
        assert step.generator.counts["retry:endpoint_down"] > 0  # retried before counted
