import base64
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from vloom.evaluate import evaluate
from vloom.evaluate.scoring import continuation_logprobs
from vloom.evaluate.tasks.data import pixels
from vloom.evaluate.tasks.vmcbench import load_vmcbench
from vloom.sequence import BOS_ID, IMAGE_ID, encode_text


@pytest.fixture(scope="module")
def bench_rows(tiny_data):
    """VMCBench-shaped rows made from the held-out VQA set (real images, real options)."""
    rows = pq.read_table(tiny_data["eval"] / "vqa.parquet").slice(0, 6).to_pylist()
    return [
        {
            "index": i,
            "question": r["question"],
            "A": r["options"][0],
            "B": r["options"][1],
            "C": r["options"][2],
            "D": r["options"][3],
            "answer": "ABCD"[r["answer"]],
            "category": r["qtype"],
            "image": r["image"],
        }
        for i, r in enumerate(rows)
    ]


def _direct(ctx, rows, letter=False):
    m, tok = ctx.model, ctx.tokenizer
    correct = 0
    for r in rows:
        opts = [r[k] for k in "ABCD"]
        text = f"Question: {r['question']}"
        if letter:
            text += " Options: " + " ".join(f"{k}. {o}" for k, o in zip("ABCD", opts, strict=True))
            conts = [encode_text(tok, f" {k}") for k in "ABCD"]
        else:
            conts = [encode_text(tok, " " + o) for o in opts]
        p = [BOS_ID] + [IMAGE_ID] * m.tokens_per_image + encode_text(tok, text + " Answer:")
        im = pixels(r["image"], m.vision.image_size)
        s = continuation_logprobs(m, [p] * 4, conts, [im] * 4, torch.device("cpu"))
        correct += max(range(4), key=lambda j: s[j]) == "ABCD".index(r["answer"])
    return correct / len(rows)


def test_vmcbench_from_parquet_jsonl_and_tsv_agree(bench_rows, rand_ctx, rand_ckpt, tmp_path):
    pq.write_table(pa.Table.from_pylist(bench_rows), tmp_path / "b.parquet")
    # JSONL with image files beside it; TSV with base64 images (VLMEvalKit's layout).
    lines = []
    for r in bench_rows:
        (tmp_path / f"img{r['index']}.png").write_bytes(r["image"])
        lines.append(json.dumps({**r, "image": f"img{r['index']}.png"}))
    (tmp_path / "b.jsonl").write_text("\n".join(lines) + "\n")
    head = "index\tquestion\tA\tB\tC\tD\tanswer\tcategory\timage\n"
    body = "".join(
        "\t".join(
            [
                str(r["index"]),
                r["question"],
                r["A"],
                r["B"],
                r["C"],
                r["D"],
                r["answer"],
                r["category"],
                base64.b64encode(r["image"]).decode(),
            ]
        )
        + "\n"
        for r in bench_rows
    )
    (tmp_path / "b.tsv").write_text(head + body)
    for name in ("b.parquet", "b.jsonl", "b.tsv"):
        got = load_vmcbench(tmp_path / name)
        assert [g["image"] for g in got] == [r["image"] for r in bench_rows]
        assert [g["answer"] for g in got] == ["ABCD".index(r["answer"]) for r in bench_rows]
    tasks = [f"vmcbench:path={tmp_path / n},as={n}" for n in ("b.parquet", "b.jsonl", "b.tsv")]
    tasks.append(f"vmcbench:path={tmp_path / 'b.parquet'},score=letter,as=letter")
    res = evaluate(rand_ckpt, tmp_path, tasks)
    want = _direct(rand_ctx, bench_rows)
    for n in ("b.parquet", "b.jsonl", "b.tsv"):
        assert res[n]["accuracy"] == pytest.approx(want) and res[n]["n"] == len(bench_rows)
        assert "accuracy_colour" in res[n]
    assert res["letter"]["accuracy"] == pytest.approx(_direct(rand_ctx, bench_rows, letter=True))


def test_vmcbench_bad_files_are_one_line_errors(bench_rows, tmp_path):
    rows = [dict(r) for r in bench_rows]
    rows[2]["C"] = None
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "missing_opt.parquet")
    with pytest.raises(
        ValueError,
        match=r"missing_opt\.parquet: row 2 \(2\): answer option C is "
        "missing",
    ):
        load_vmcbench(tmp_path / "missing_opt.parquet")
    (tmp_path / "no_d.jsonl").write_text(
        json.dumps({k: v for k, v in bench_rows[0].items() if k not in ("D", "image")}) + "\n"
    )
    with pytest.raises(ValueError, match=r"no_d\.jsonl: missing column\(s\) D"):
        load_vmcbench(tmp_path / "no_d.jsonl")
    (tmp_path / "bad_ans.jsonl").write_text(
        json.dumps({**{k: v for k, v in bench_rows[0].items() if k != "image"}, "answer": "E"})
        + "\n"
    )
    with pytest.raises(ValueError, match=r"bad_ans\.jsonl: row 0 \(0\): answer 'E' is not one"):
        load_vmcbench(tmp_path / "bad_ans.jsonl")
    (tmp_path / "bad_img.jsonl").write_text(
        json.dumps(
            {**{k: v for k, v in bench_rows[0].items() if k != "image"}, "image": "nowhere/x.png"}
        )
        + "\n"
    )
    with pytest.raises(ValueError, match=r"bad_img\.jsonl: row 0 .*neither a file nor base64"):
        load_vmcbench(tmp_path / "bad_img.jsonl")
    with pytest.raises(FileNotFoundError, match="gone.parquet: benchmark file not found"):
        load_vmcbench(tmp_path / "gone.parquet")
    (tmp_path / "b.csv").write_text("x")
    with pytest.raises(ValueError, match="unsupported file type '.csv'"):
        load_vmcbench(tmp_path / "b.csv")


def test_a_text_only_row_is_asked_without_image(bench_rows, rand_ckpt, tmp_path):
    rows = [{k: v for k, v in r.items() if k != "image"} for r in bench_rows[:3]]
    (tmp_path / "t.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert all(r["image"] is None for r in load_vmcbench(tmp_path / "t.jsonl"))
    res = evaluate(rand_ckpt, tmp_path, ["vmcbench:path=t.jsonl"])  # relative to the eval dir
    assert res["vmcbench"]["n"] == 3
