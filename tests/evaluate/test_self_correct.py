"""The self_correct task: two greedy attempts, SCoRe's metrics, records the report reads."""

from __future__ import annotations

import dataclasses

import pyarrow.parquet as pq
import pytest
import torch

from vloom.evaluate.generation import greedy_generate
from vloom.evaluate.harness import parse_tasks, run_tasks
from vloom.evaluate.tasks import get_task, parse_task_spec
from vloom.evaluate.tasks.data import image_prompt
from vloom.evaluate.tasks.self_correct import (
    SECOND_ATTEMPT,
    flip_metrics,
    metrics_from_records,
    second_attempt_prompt,
    self_correct_metrics,
)
from vloom.evaluate.tasks.vqa_open import STOP, open_prompt
from vloom.sequence import encode_text

N = 6


def test_second_attempt_prompt_shows_the_answer_then_asks_again():
    q = open_prompt("How many objects are there?")
    p = second_attempt_prompt(q, "The number of objects is three")
    assert p == f"{q} The number of objects is three. {SECOND_ATTEMPT} {q}"
    assert p.endswith("Answer:")  # the model answers in the first attempt's form
    assert second_attempt_prompt(q, "It is three.") == f"{q} It is three. {SECOND_ATTEMPT} {q}"
    assert second_attempt_prompt(q, "  ") == f"{q} {SECOND_ATTEMPT} {q}"


def test_flip_metrics_by_hand():
    # 5 examples: r->r, w->r, r->w, w->w, w->r  => t1 2/5, t2 3/5, w->r 2/5, r->w 1/5
    t1 = [1, 0, 1, 0, 0]
    t2 = [1, 1, 0, 0, 1]
    m = flip_metrics(t1, t2)
    assert m["accuracy_t1"] == pytest.approx(0.4)
    assert m["accuracy_t2"] == pytest.approx(0.6)
    assert m["delta"] == pytest.approx(0.2)
    assert m["wrong_to_right"] == pytest.approx(0.4)
    assert m["right_to_wrong"] == pytest.approx(0.2)
    assert m["delta"] == pytest.approx(m["wrong_to_right"] - m["right_to_wrong"])
    with pytest.raises(ValueError, match="3 first attempts but 2 second"):
        flip_metrics([1, 0, 1], [1, 0])


def test_metrics_from_hand_made_records_per_type():
    recs = [
        {"qtype": "count", "correct_t1": 0, "correct_t2": 1, "changed": 1},
        {"qtype": "count", "correct_t1": 1, "correct_t2": 1, "changed": 0},
        {"qtype": "shape", "correct_t1": 1, "correct_t2": 0, "changed": 1},
        {"qtype": "shape", "correct_t1": 0, "correct_t2": 0, "changed": 0},
        {"qtype": "shape", "correct_t1": None, "correct_t2": 1},  # not scored twice: left out
    ]
    m = metrics_from_records(recs)
    assert m["n"] == 4
    assert m["accuracy_t1"] == m["accuracy_t2"] == pytest.approx(0.5)
    assert m["delta"] == 0 and m["accuracy"] == m["accuracy_t2"]
    assert m["wrong_to_right"] == m["right_to_wrong"] == pytest.approx(0.25)
    assert m["changed"] == pytest.approx(0.5)
    assert m["delta_count"] == pytest.approx(0.5) and m["wrong_to_right_count"] == 0.5
    assert m["delta_shape"] == pytest.approx(-0.5) and m["right_to_wrong_shape"] == 0.5
    assert m["accuracy_t2_count"] == 1.0 and m["accuracy_t1_shape"] == 0.5
    assert self_correct_metrics([], [], [], [])["n"] == 0


def test_self_correct_on_tiny_model(rand_ctx, tiny_data):
    ctx = dataclasses.replace(rand_ctx, max_examples=N)
    examples: dict[str, list] = {}
    specs = parse_tasks(
        ["self_correct:max_new_tokens=4", "vqa_open:max_new_tokens=4"], ctx.data_dir
    )
    res = run_tasks(ctx, specs, examples)
    sc, recs = res["self_correct"], examples["self_correct"]
    assert sc["n"] == len(recs) == N
    # attempt 1 is vqa_open's prompt: same answers, same accuracy
    opn = examples["vqa_open"]
    assert [r["prediction_t1"] for r in recs] == [r["prediction"] for r in opn]
    assert sc["accuracy_t1"] == pytest.approx(res["vqa_open"]["accuracy"])
    # the metrics are those of the records (the report bootstraps them)
    again = metrics_from_records(recs)
    assert {k: pytest.approx(v) for k, v in sc.items() if k != "seconds"} == again
    assert sc["delta"] == pytest.approx(sc["wrong_to_right"] - sc["right_to_wrong"])
    assert all(r["correct"] == r["correct_t2"] and "image" in r for r in recs)
    # attempt 2 is greedy from the two-attempt prompt after the same image
    m, tok = ctx.model, ctx.tokenizer
    row = pq.read_table(tiny_data["eval"] / "vqa_open.parquet").slice(0, 1).to_pylist()[0]
    slots, px = image_prompt(m, row["image"])
    text = second_attempt_prompt(open_prompt(row["question"]), recs[0]["prediction_t1"])
    prompt = m.layout.prefix + slots + encode_text(tok, text)
    want = greedy_generate(m, tok, [prompt], [px], torch.device("cpu"), 4, STOP)[0]
    assert recs[0]["prediction"] == want


def test_self_correct_is_registered_for_configs():
    from vloom.config import WORLD_TASKS, ConfigError, config_from_dict

    assert get_task("self_correct").scoring == "generation"
    assert parse_task_spec("self_correct:max_new_tokens=8,as=sc")[1:] == (
        {"max_new_tokens": 8},
        "sc",
    )
    assert "self_correct" in WORLD_TASKS  # reads the world's eval sets: config checks it
    cfg = config_from_dict({"eval": {"tasks": ["vqa_open", "self_correct:max_new_tokens=8"]}})
    assert cfg.eval.tasks[-1] == "self_correct:max_new_tokens=8"
    real = {"sources": [{"name": "web", "kind": "html", "path": "/x"}]}
    with pytest.raises(ConfigError, match="eval.tasks: self_correct reads the synthetic world"):
        config_from_dict({"data": real, "eval": {"tasks": ["self_correct"]}})


def test_rows_with_no_answer_are_refused(rand_ctx, tiny_data, tmp_path):
    table = pq.read_table(tiny_data["eval"] / "vqa_open.parquet").slice(0, 3)
    rows = table.to_pylist()
    rows[1]["answers"] = []
    import pyarrow as pa

    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), tmp_path / "vqa_open.parquet")
    ctx = dataclasses.replace(rand_ctx, data_dir=tmp_path)
    with pytest.raises(ValueError, match=r"vqa_open.parquet: row 1 .* has no answer"):
        get_task("self_correct")(ctx)
