"""Per-example records: `evaluate` -> `write_results` leaves RUN/examples/<task>.jsonl beside
results.json, each line agreeing with the task's accuracy and pointing at its eval row."""

import dataclasses
import json

import pyarrow.parquet as pq
import pytest

from vloom.evaluate import evaluate, write_results
from vloom.evaluate.harness import parse_tasks, run_tasks
from vloom.evaluate.records import EXAMPLES, read_examples
from vloom.evaluate.tasks import get_task

N = 6
TASKS = ["vqa", "text_qa", "multi_image", "vqa_open:max_new_tokens=4"]


@pytest.fixture(scope="module")
def run_dir(rand_ckpt, tiny_data, tmp_path_factory):
    evals = evaluate(rand_ckpt, tiny_data["eval"], TASKS, batch_size=16, max_examples=N)
    out = tmp_path_factory.mktemp("run")
    (out / "examples").mkdir()
    (out / "examples" / "gone.jsonl").write_text('{"id": "0"}\n')  # from an earlier eval
    write_results(out, evals, {"name": "t"}, None)
    return out


def test_records_agree_with_results(run_dir, tiny_data):
    results = json.loads((run_dir / "results.json").read_text())["eval"]
    assert not (run_dir / "examples" / "gone.jsonl").exists()  # stale records removed
    for task in ("vqa", "text_qa", "multi_image"):
        recs = read_examples(run_dir, task)
        assert EXAMPLES not in results[task]
        n = results[task]["n"]  # multi_image skips (and counts) documents too long to score
        assert len(recs) == n == N - results[task].get("skipped_too_long", 0) > 0
        assert sum(r["correct"] for r in recs) / n == pytest.approx(results[task]["accuracy"])
        for r in recs:
            assert len(r["scores"]) == len(r["options"]) >= 2
            assert r["pick"] == max(range(len(r["scores"])), key=lambda j: r["scores"][j])
            assert r["correct"] == int(r["pick"] == r["answer"])
    # the image reference opens the very row the question came from
    for task, col in (("vqa", "image"), ("multi_image", "images")):
        for r in read_examples(run_dir, task):
            ref = r["image"]
            assert ref["column"] == col
            row = pq.read_table(ref["path"]).slice(ref["row"], 1).to_pylist()[0]
            assert row["question"] == r["question"] and str(row["id"]) == r["id"]
    assert all("context" in r and "image" not in r for r in read_examples(run_dir, "text_qa"))
    opn = read_examples(run_dir, "vqa_open")
    assert sum(r["correct"] for r in opn) / N == pytest.approx(results["vqa_open"]["accuracy"])
    assert all(isinstance(r["prediction"], str) and r["answers"] for r in opn)


def test_records_only_when_asked(rand_ctx, tiny_data):
    # evaluation during training (no sink) and direct task calls keep metrics only
    ctx = dataclasses.replace(rand_ctx, max_examples=3)
    specs = parse_tasks(["text_qa"], tiny_data["eval"])
    res = run_tasks(ctx, specs)
    sink: dict = {}
    again = run_tasks(ctx, specs, sink)
    assert EXAMPLES not in res["text_qa"] and EXAMPLES not in again["text_qa"]
    assert len(sink["text_qa"]) == 3
    assert EXAMPLES not in get_task("vqa")(ctx)
    assert len(get_task("vqa")(dataclasses.replace(ctx, records=True))[EXAMPLES]) == 3
