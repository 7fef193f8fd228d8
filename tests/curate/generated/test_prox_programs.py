"""ProX with a model: programs from a real tiny vloom checkpoint, run by refine, scored against
labelled noise."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from vloom.chat.readers import read_chat_file
from vloom.config import CurateConfig, StepConfig, load_curate_config
from vloom.curate import build_step, run_curate
from vloom.curate.generated.prox_programs import Program, ProxProgram, program_text
from vloom.curate.generated.prox_score import (
    kept_lines,
    labelled_docs,
    line_program,
    run_step,
    score_refined,
    sft_rows,
)
from vloom.doc import Document, list_shards, read_documents, read_shard, write_shard
from vloom.generate.cache import GenerationCache
from vloom.generate.generator import REASONS, request_key

RULES = Path(__file__).resolve().parents[3] / "configs" / "generated" / "prox_rules.yaml"


@pytest.fixture(scope="module")
def ckpt(world_gen) -> Path:
    """The random tiny checkpoint of conftest (it writes no valid program)."""
    return world_gen.ckpt


@pytest.fixture(scope="module")
def docs(tiny_data) -> list[Document]:
    clean = [d for s in list_shards(tiny_data["synth"] / "train") for d in read_shard(s)]
    return labelled_docs(clean, 24, random.Random(0))


def _rules():
    return build_step(load_curate_config(RULES).steps[0])


def _step(ckpt, **kw) -> ProxProgram:
    params = {"generator": {"backend": "vloom", "path": str(ckpt), "device": "cpu"}, **kw}
    step = build_step(StepConfig(name="prox_program", **params))
    assert isinstance(step, ProxProgram)
    return step


def test_rule_programs_remove_the_labelled_noise_and_keep_the_clean_text(docs):
    kinds = {d.metadata["defect"] for d in docs}
    assert kinds == {"clean", "framed", "spam", "foreign"}
    assert score_refined(docs, {d.id: d for d in docs})["all"]["noise_removed"] == 0.0
    dropped = score_refined(docs, {})["all"]
    assert dropped["noise_removed"] == 1.0 and dropped["clean_kept"] == 0.0
    ruled = score_refined(docs, run_step(_rules(), docs))
    assert ruled["all"]["noise_removed"] > 0.9 and ruled["all"]["clean_kept"] == 1.0
    assert ruled["foreign"]["docs_dropped"] == 1.0 and ruled["clean"]["docs_exact"] == 1.0


def test_kept_lines_matches_edited_lines_and_counts_repeats():
    before = ["Home | Shop", "A  red   circle.", "Buy now", "Buy now"]
    assert kept_lines(before, ["A red circle.", "Buy now"]) == [False, True, True, False]
    assert kept_lines(before, ["A red circle here."]) == [False, True, False, False]  # fuzzy


def test_a_model_that_writes_no_valid_program_leaves_documents_and_counts_why(ckpt, docs, tmp_path):
    src = tmp_path / "in"
    write_shard(src / "shard-00000.parquet", docs)
    step = {
        "name": "prox_program",
        "generator": {"backend": "vloom", "path": str(ckpt), "device": "cpu"},
        "schema_in_prompt": False,
        "max_new_tokens": 12,
        "max_lines": 6,
        "max_line_chars": 40,
    }
    led = run_curate(src, tmp_path / "out", CurateConfig(steps=[StepConfig(**step)]), quiet=True)
    stats = led.extra["step_stats"]["prox_program"]
    assert (
        sum(stats["programs"].values()) == len(docs) == sum(stats["generation"]["program"].values())
    )
    assert set(stats["programs"]) <= set(REASONS) | {"valid", "empty"}
    assert set(stats["programs"]) & set(REASONS)  # a random model's text is no program
    out = {d.id: d for d in read_documents(tmp_path / "out")}
    bad = sum(v for k, v in stats["programs"].items() if k in REASONS)
    assert sum(out.get(d.id) == d for d in docs) >= bad  # invalid: the document as it was
    dropping = _step(ckpt, **{k: v for k, v in step.items() if k != "name"}, on_invalid="drop")
    left = run_step(dropping, docs)
    assert sum(v is None for v in left.values()) >= bad
    assert all(
        k.startswith("prox_") for k in dropping.dropped if k.removeprefix("prox_") in REASONS
    )


def test_programs_a_model_wrote_run_as_refine_runs_them(ckpt, docs, tmp_path):
    # The model's earlier programs, as the generator's cache holds them (written here: the
    # rule programs restated by line); the step validates them and refine executes them.
    rules = _rules()
    step = _step(ckpt, cache_dir=str(tmp_path), log_programs=True)
    cache = GenerationCache(tmp_path)
    ident = step.generator.backend.identity()
    for d in docs:
        ops = line_program(d, rules.program_for(d))
        cache.put(request_key(ident, step.program_request(d)), {"text": program_text(ops)})
    left = run_step(step, docs)
    want = run_step(_rules(), docs)
    assert score_refined(docs, left) == score_refined(docs, want)
    assert step.tally["generation"]["program"] == {"cache_hit": len(docs)}
    assert sum(step.tally["programs"].values()) == len(docs) and "valid" in step.tally["programs"]
    assert len(step.logged) == len(docs)


def test_sft_pairs_read_as_chat_and_hold_valid_programs(docs, tmp_path):
    rows = sft_rows(docs[:6], _rules(), with_schema=False)
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    convs = list(read_chat_file(path))
    assert len(convs) == 6
    for conv in convs:
        assert [t.role for t in conv.turns] == ["user", "assistant"]
        Program.model_validate_json(conv.turns[1].text)


def test_the_score_command_compares_rules_and_model_and_writes_sft_pairs(
    ckpt, tiny_data, tmp_path, capsys
):
    from vloom.curate.generated.prox_score import main

    model = tmp_path / "model.yaml"
    model.write_text(
        "steps:\n  - name: prox_program\n"
        f"    generator: {{backend: vloom, path: {ckpt}, device: cpu}}\n"
        "    schema_in_prompt: false\n    max_new_tokens: 8\n    max_lines: 4\n"
    )
    out, pairs = tmp_path / "report.json", tmp_path / "pairs.jsonl"
    world = str(tiny_data["synth"] / "train")
    main(
        [world, "--rules", str(RULES), "--config", str(model), "--n", "12", "--sft-n", "5"]
        + ["--sft-out", str(pairs), "--out", str(out)]
    )
    got = json.loads(out.read_text())
    assert set(got["report"]) == {"none (input)", "rule programs", "model: model"}
    assert got["report"]["rule programs"]["all"]["noise_removed"] > 0.5
    assert sum(got["counts"]["model"]["programs"].values()) == 12
    assert len(pairs.read_text().splitlines()) == 5
    assert "| rule programs |" in capsys.readouterr().out
