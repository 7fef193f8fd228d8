"""Public benchmark layouts from local files: each layout read from a tiny file of real
Pillow images, malformed rows counted by reason while the rest is scored, scores equal to
scoring the same prompts by hand, POPE's F1 and MMBench's circular evaluation."""

from __future__ import annotations

import base64
import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image, ImageDraw
from tinyexp import tiny_config

from vloom.evaluate import evaluate
from vloom.evaluate.benchmarks import load_benchmark
from vloom.evaluate.benchmarks.metrics import circular_correct, rotate, yes_no_metrics
from vloom.evaluate.generation import greedy_generate
from vloom.evaluate.harness import load_checkpoint
from vloom.evaluate.scoring import continuation_logprobs
from vloom.evaluate.tasks import EvalContext
from vloom.evaluate.tasks.mcbench import STOP, decode_images, encode_prompt, mcbench, prompt_text
from vloom.evaluate.tasks.vmcbench import load_vmcbench
from vloom.model.io import build_model, save_model
from vloom.sequence import IMAGE_ID, encode_text, load_tokenizer

CPU = torch.device("cpu")
COLOURS = ["red", "green", "blue", "yellow", "purple", "orange", "white", "black", "grey"]
NINE = COLOURS  # nine option texts, A-I


def png(colour: str, shape: str = "circle", size: int = 40, height: int | None = None) -> bytes:
    w, h = size, height or size
    im = Image.new("RGB", (w, h), "white" if colour != "white" else "black")
    draw = ImageDraw.Draw(im)
    box = (6, 6, w - 6, h - 6)
    (draw.ellipse if shape == "circle" else draw.rectangle)(box, fill=colour)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def write_tsv(path, rows: list[dict]) -> None:
    cols = list(dict.fromkeys(k for r in rows for k in r))
    lines = ["\t".join(cols)]
    lines += ["\t".join(str(r.get(c, "")) for c in cols) for r in rows]
    path.write_text("\n".join(lines) + "\n")


def pick(ctx, row, options: list[str], listed: bool = False, letters: bool = False) -> int:
    """The option a row's prompt ranks first, scored one example at a time."""
    text = prompt_text(row, options if listed else None)
    pics = decode_images(ctx.model, row.images, row.where)
    ids, px = encode_prompt(ctx.model, ctx.tokenizer, text, pics)
    if letters:
        conts = [encode_text(ctx.tokenizer, f" {k}") for k in "ABCDEFGHI"[: len(options)]]
    else:
        conts = [encode_text(ctx.tokenizer, " " + o) for o in options]
    s = [continuation_logprobs(ctx.model, [ids], [c], [px], CPU)[0] for c in conts]
    return max(range(len(s)), key=lambda j: s[j])


# --- VLMEvalKit TSV: 2, 3, 5 and 9 options, letter and text answers, hint, two images ---


@pytest.fixture(scope="module")
def tsv_file(tmp_path_factory):
    d = tmp_path_factory.mktemp("tsv")
    (d / "pics").mkdir()
    (d / "pics" / "blue.png").write_bytes(png("blue"))
    rows = [
        # good rows: 2, 3, 5, 9 options; a text answer; a hint; two images; a path; a
        # VLMEvalKit back-reference (the image cell holds another row's index)
        {
            "index": 0,
            "question": "What colour?",
            "A": "red",
            "B": "green",
            "answer": "A",
            "category": "colour",
            "image": b64(png("red")),
        },
        {
            "index": 1,
            "question": "What colour?",
            "hint": "It is bright.",
            "A": "red",
            "B": "green",
            "C": "blue",
            "answer": "green",
            "category": "colour",
            "image": b64(png("green")),
        },
        {
            "index": 2,
            "question": "Which shape?",
            **dict(zip("ABCDE", ["circle", "square", "star", "line", "dot"], strict=True)),
            "answer": "B",
            "category": "shape",
            "image": b64(png("red", "square")),
        },
        {
            "index": 3,
            "question": "First colour?",
            **dict(zip("ABCDEFGHI", NINE, strict=True)),
            "answer": "I",
            "category": "colour",
            "image": json.dumps([b64(png("grey")), b64(png("red"))]),
        },
        {
            "index": 4,
            "question": "What colour?",
            "A": "blue",
            "B": "red",
            "answer": "A",
            "category": "colour",
            "image_path": "pics/blue.png",
        },
        {
            "index": 5,
            "question": "Same colour?",
            "A": "red",
            "B": "green",
            "answer": "A",
            "category": "colour",
            "image": "0",
        },
        # malformed rows, one per reason
        {
            "index": 6,
            "question": "What colour?",
            "A": "red",
            "B": "",
            "C": "blue",
            "answer": "A",
            "category": "colour",
            "image": b64(png("red")),
        },  # missing_option
        {
            "index": 7,
            "question": "What colour?",
            "A": "red",
            "B": "blue",
            "answer": "D",
            "category": "colour",
            "image": b64(png("red")),
        },  # answer_beyond_options
        {
            "index": 8,
            "question": "What colour?",
            "A": "red",
            "B": "blue",
            "answer": "A",
            "category": "colour",
            "image_path": "pics/gone.png",
        },  # missing_image
        {
            "index": 9,
            "question": "What colour?",
            "A": "red",
            "B": "blue",
            "answer": "A",
            "category": "colour",
            "image": b64(b"not an image at all"),
        },  # bad_image
        {
            "index": 10,
            "question": "What colour?",
            "A": "red",
            "B": "blue",
            "answer": "pink",
            "category": "colour",
            "image": b64(png("red")),
        },  # answer_not_an_option
    ]
    write_tsv(d / "bench.tsv", rows)
    return d / "bench.tsv"


def test_tsv_rows_parse_and_malformed_rows_are_counted(tsv_file):
    b = load_benchmark(tsv_file)
    assert b.layout == "vlmevalkit"
    # the undecodable image (row 9) is found when the model's input is made, not here
    assert [len(r.options) for r in b.rows] == [2, 3, 5, 9, 2, 2, 2]
    assert [r.answer for r in b.rows] == [0, 1, 1, 8, 0, 0, 0]
    assert [len(r.images) for r in b.rows] == [1, 1, 1, 2, 1, 1, 1]
    assert b.rows[1].hint == "It is bright."
    assert b.rows[4].images == [png("blue")] and b.rows[5].images == b.rows[0].images
    assert dict(b.skipped) == {
        "missing_option": 1,
        "answer_beyond_options": 1,
        "missing_image": 1,
        "answer_not_an_option": 1,
    }
    assert "row 7 (7): answer 'D' with options A-B" in b.first_skip["answer_beyond_options"]


def test_tsv_task_scores_the_good_rows_as_by_hand(tsv_file, rand_ctx, rand_ckpt):
    res = evaluate(rand_ckpt, tsv_file.parent, [f"mcbench:path={tsv_file.name},as=tsv"])["tsv"]
    assert res["n"] == 6 and res["layout"] == "vlmevalkit"
    assert res["skipped"] == 5 and res["skipped_bad_image"] == 1
    assert res["skipped_missing_option"] == res["skipped_answer_beyond_options"] == 1
    rows = load_benchmark(tsv_file).rows[:6]  # the 7th has the undecodable image
    right = [pick(rand_ctx, r, r.options) == r.answer for r in rows]
    cats = [r.category for r in rows]
    assert res["accuracy"] == pytest.approx(sum(right) / 6)
    for cat in ("colour", "shape"):
        got = [c for c, k in zip(right, cats, strict=True) if k == cat]
        assert res[f"accuracy_{cat}"] == pytest.approx(sum(got) / len(got))
    # the two-image row: two images' <image> tokens before the text
    ids, px = encode_prompt(
        rand_ctx.model,
        rand_ctx.tokenizer,
        prompt_text(rows[3], None),
        decode_images(rand_ctx.model, rows[3].images, ""),
    )
    assert ids.count(IMAGE_ID) == 2 * rand_ctx.model.tokens_per_image and len(px) == 2


def test_letter_scoring_lists_options(tsv_file, rand_ctx):
    res = mcbench(rand_ctx, path=str(tsv_file), score="letter")
    rows = load_benchmark(tsv_file).rows[:6]
    right = [pick(rand_ctx, r, r.options, listed=True, letters=True) == r.answer for r in rows]
    assert res["accuracy"] == pytest.approx(sum(right) / len(rows))


def test_max_examples_reads_the_first_rows(tsv_file, rand_ctx):
    res = mcbench(rand_ctx, path=str(tsv_file), max_examples=3)
    assert res["n"] == 3 and res["skipped"] == 0


def test_tsv_mmmu_rows_open_and_placeholders(tmp_path):
    # VLMEvalKit's MMMU TSV: placeholders number the JSON image list; open rows have no options
    row = {
        "question": "<image 2> or <image 1>?",
        "A": "left",
        "B": "right",
        "answer": "B",
        "question_type": "multiple-choice",
        "image": json.dumps([b64(png("red")), b64(png("blue"))]),
    }
    rows = [
        {"index": 0, **row},
        {"index": 1, **row, "question": "<image 3>?"},  # only two images
        {"index": 2, **row, "A": "", "B": "", "answer": "42", "question_type": "open"},
    ]  # fmt: skip
    write_tsv(tmp_path / "mmmu.tsv", rows)
    b = load_benchmark(tmp_path / "mmmu.tsv")
    assert [r.kind for r in b.rows] == ["choice", "open"] and b.rows[1].answers == ["42"]
    assert b.rows[0].question == "<image 2> or <image 1>?" and b.skipped == {"missing_image": 1}


def test_base64_text_is_never_taken_for_a_path(tmp_path, rand_ctx):
    # 400 base64 characters with no "/" would be a file name too long to stat; the cell is
    # read as base64 (zero bytes, not an image) and counted when the model needs it.
    row = {"index": 0, "question": "Q?", "A": "x", "B": "y", "C": "z", "D": "w", "answer": "A"}
    write_tsv(tmp_path / "b.tsv", [{**row, "image": "A" * 400}])
    assert load_benchmark(tmp_path / "b.tsv").rows[0].images == [bytes(300)]
    res = mcbench(rand_ctx, path=str(tmp_path / "b.tsv"))
    assert res["n"] == 0 and res["skipped_bad_image"] == 1
    assert load_vmcbench(tmp_path / "b.tsv")[0]["image"] == bytes(300)  # vmcbench shares it


# --- Parquet layouts ---


def image_struct(data: bytes | None) -> dict | None:
    return None if data is None else {"bytes": data, "path": None}


def test_mmstar_inline_options(tmp_path, rand_ctx):
    rows = [
        {
            "index": 0,
            "question": "Which colour is the circle?\nOptions: A: red, B: blue, C: green, D: grey",
            "answer": "A",
            "category": "coarse perception",
            "l2_category": "colour",
            "image": image_struct(png("red")),
        },
        {
            "index": 1,
            "question": "Which shape?\nOptions: A: circle, B: square",
            "answer": "B",
            "category": "fine-grained perception",
            "l2_category": "shape",
            "image": image_struct(png("blue", "square")),
        },
        {
            "index": 2,
            "question": "Which colour?\nOptions: A: red, B: blue",
            "answer": "C",
            "category": "coarse perception",
            "l2_category": "colour",
            "image": image_struct(png("red")),
        },  # answer beyond its options
        {
            "index": 3,
            "question": "Which colour, no options?",
            "answer": "A",
            "category": "coarse perception",
            "l2_category": "colour",
            "image": image_struct(png("red")),
        },  # missing options
    ]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "mmstar.parquet")
    b = load_benchmark(tmp_path / "mmstar.parquet")
    assert b.layout == "mmstar"
    assert b.rows[0].question == "Which colour is the circle?"
    assert b.rows[0].options == ["red", "blue", "green", "grey"]
    assert b.rows[1].options == ["circle", "square"] and b.rows[1].answer == 1
    res = mcbench(rand_ctx, path=str(tmp_path / "mmstar.parquet"))
    assert res["n"] == 2 and res["skipped_answer_beyond_options"] == 1
    assert res["skipped_missing_option"] == 1
    assert {"accuracy_coarse_perception", "accuracy_fine-grained_perception"} <= set(res)
    by_l2 = mcbench(rand_ctx, path=str(tmp_path / "mmstar.parquet"), category="l2_category")
    assert {k for k in by_l2 if k.startswith("accuracy_")} == {"accuracy_colour", "accuracy_shape"}
    with pytest.raises(ValueError, match="no column 'l3' to group categories by"):
        load_benchmark(tmp_path / "mmstar.parquet", category="l3")


def test_mmbench_parquet_with_two_and_three_options(tmp_path, rand_ctx):
    rows = [
        {
            "index": i,
            "question": "What colour?",
            "hint": h,
            "A": "red",
            "B": "green",
            "C": c,
            "D": d,
            "answer": a,
            "category": "attribute",
            "image": png(col),
        }
        for i, (h, c, d, a, col) in enumerate(
            [
                (None, "blue", "grey", "C", "blue"),
                ("Look closely.", "blue", None, "B", "green"),
                (None, None, None, "A", "red"),
                (None, None, "grey", "A", "red"),  # D without C: a missing option
                ("long " * 500, None, None, "A", "red"),  # longer than the model's context
            ]
        )
    ]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "mmbench.parquet")
    b = load_benchmark(tmp_path / "mmbench.parquet", layout="mmbench")
    assert [len(r.options) for r in b.rows] == [4, 3, 2, 2]
    assert b.rows[1].hint == "Look closely." and b.skipped == {"missing_option": 1}
    res = mcbench(rand_ctx, path=str(tmp_path / "mmbench.parquet"), layout="mmbench")
    assert res["n"] == 3 and res["skipped_too_long"] == res["skipped_missing_option"] == 1


def test_mmmu_placeholders_open_rows_and_missing_images(tmp_path, rand_ctx):
    base = {"img_type": "['Diagrams']", "topic_difficulty": "Easy"}
    rows = [
        {
            **base,
            "id": "validation_Art_1",
            "question": "<image 1> and <image 2>: which is red?",
            "options": "['the first', 'the second', 'neither', 'both', 'e', 'f', 'g']",
            "answer": "A",
            "question_type": "multiple-choice",
            "image_1": image_struct(png("red")),
            "image_2": image_struct(png("blue")),
        },
        {
            **base,
            "id": "validation_Art_2",
            "question": "Which is <image 1>?",
            "options": "['red', 'blue']",
            "answer": "B",
            "question_type": "multiple-choice",
            "image_1": image_struct(png("blue")),
            "image_2": None,
        },
        {
            **base,
            "id": "validation_Math_1",
            "question": "<image 1> How many circles?",
            "options": "[]",
            "answer": "ANSWER",
            "question_type": "open",
            "image_1": image_struct(png("green")),
            "image_2": None,
        },
        {
            **base,
            "id": "validation_Math_2",
            "question": "Compare <image 1> and <image 2>",
            "options": "['x', 'y']",
            "answer": "A",
            "question_type": "multiple-choice",
            "image_1": image_struct(png("red")),
            "image_2": None,
        },  # <image 2> is absent
        {
            **base,
            "id": "validation_Math_3",
            "question": "Which?",
            "options": "['x', 'y']",
            "answer": "H",
            "question_type": "multiple-choice",
            "image_1": image_struct(png("red")),
            "image_2": None,
        },  # H with two options
    ]
    path = tmp_path / "mmmu.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    b = load_benchmark(path)
    assert b.layout == "mmmu" and len(b.rows[0].options) == 7
    assert [r.category for r in b.rows] == ["Art", "Art", "Math"]
    assert dict(b.skipped) == {"missing_image": 1, "answer_beyond_options": 1}
    m, tok = rand_ctx.model, rand_ctx.tokenizer
    pics = decode_images(m, b.rows[0].images, "")
    ids, _ = encode_prompt(m, tok, prompt_text(b.rows[0], None), pics)
    tpi = m.tokens_per_image
    # each image where its placeholder stood: "Question: <image 1> and <image 2>: which..."
    q, a = encode_text(tok, "Question: "), encode_text(tok, " and ")
    i1 = 1 + len(q)
    assert ids[1:i1] == q and ids[i1 : i1 + tpi] == [IMAGE_ID] * tpi
    assert ids[i1 + tpi : i1 + tpi + len(a)] == a
    assert ids[i1 + tpi + len(a) : i1 + 2 * tpi + len(a)] == [IMAGE_ID] * tpi
    assert ids.count(IMAGE_ID) == 2 * tpi
    # The open row's answer becomes what the model generates: exact match must find it.
    pics = decode_images(m, b.rows[2].images, "")
    ids, px = encode_prompt(m, tok, prompt_text(b.rows[2], None), pics)
    said = greedy_generate(m, tok, [ids], [px], CPU, 8, STOP)[0]
    assert said.strip(" .")  # the seeded random model says something
    rows[2]["answer"] = said.upper()  # matched after normalisation
    pq.write_table(pa.Table.from_pylist(rows), path)
    res = mcbench(rand_ctx, path=str(path), max_new_tokens=8)
    assert res["n"] == 3 and res["n_open"] == 1 and res["skipped"] == 2
    assert res["exact_match_open"] == 1.0
    mc = [pick(rand_ctx, r, r.options) == r.answer for r in b.rows[:2]]
    assert res["accuracy_Art"] == pytest.approx(sum(mc) / 2)


def test_scienceqa_ai2d_and_seed_layouts(tmp_path, rand_ctx):
    sqa = [
        {
            "question": "Which is a mammal?",
            "choices": ["cat", "fish", "bird"],
            "answer": 0,
            "hint": "Mammals have fur.",
            "subject": "natural science",
            "image": image_struct(png("grey")),
        },
        {
            "question": "Which is a word?",
            "choices": ["dog", "xq"],
            "answer": 1,
            "hint": "",
            "subject": "language science",
            "image": None,
        },  # text-only rows are asked as text
        {
            "question": "Which?",
            "choices": ["a", "b"],
            "answer": 5,
            "hint": "",
            "subject": "language science",
            "image": None,
        },
    ]
    ai2d = [
        {
            "question": "What eats grass?",
            "options": ["cow", "lion", "shark", "hawk"],
            "answer": "0",
            "image": image_struct(png("green")),
        },
        {
            "question": "Which part?",
            "options": ["leaf", "root"],
            "answer": "B",
            "image": image_struct(png("green")),
        },
    ]
    seed = [
        {
            "question_id": "1",
            "question": "What colour?",
            "choice_a": "red",
            "choice_b": "blue",
            "choice_c": "green",
            "choice_d": "grey",
            "answer": "B",
            "data_type": "image",
            "question_type_id": 1,
            "image": [image_struct(png("blue"))],
        },
        {
            "question_id": "2",
            "question": "What happens?",
            "choice_a": "a",
            "choice_b": "b",
            "choice_c": "c",
            "choice_d": "d",
            "answer": "A",
            "data_type": "video",
            "question_type_id": 10,
            "image": [],
        },
    ]
    got = {}
    for name, rows in (("sqa", sqa), ("ai2d", ai2d), ("seed", seed)):
        pq.write_table(pa.Table.from_pylist(rows), tmp_path / f"{name}.parquet")
        got[name] = mcbench(rand_ctx, path=str(tmp_path / f"{name}.parquet"))
    assert got["sqa"]["layout"] == "scienceqa" and got["sqa"]["n"] == 2
    assert got["sqa"]["skipped_answer_beyond_options"] == 1
    assert {"accuracy_natural_science", "accuracy_language_science"} <= set(got["sqa"])
    assert got["ai2d"]["layout"] == "ai2d" and got["ai2d"]["n"] == 2
    assert [r.answer for r in load_benchmark(tmp_path / "ai2d.parquet").rows] == [0, 1]
    assert got["seed"]["layout"] == "seed" and got["seed"]["n"] == 1
    assert got["seed"]["skipped_video"] == 1 and "accuracy_1" in got["seed"]


# --- POPE ---


def test_yes_no_metrics_on_fixed_predictions():
    said = [True, True, False, False, True, False, True, True]
    gold = [True, False, False, True, True, False, True, False]
    # tp=3 (0,4,6) fp=2 (1,7) fn=1 (3) tn=2 (2,5)
    got = yes_no_metrics(said, gold)
    assert got["accuracy"] == pytest.approx(5 / 8)
    assert got["precision"] == pytest.approx(3 / 5) and got["recall"] == pytest.approx(3 / 4)
    assert got["f1"] == pytest.approx(2 * 0.6 * 0.75 / 1.35)
    assert got["yes_ratio"] == pytest.approx(5 / 8)
    never = yes_no_metrics([False, False], [True, False])
    assert never["precision"] == never["recall"] == never["f1"] == 0.0


def test_pope_f1_matches_a_hand_count(tmp_path, rand_ctx):
    rows = [
        {
            "question_id": str(i),
            "question": f"Is there a {obj} in the image?",
            "answer": ans,
            "category": cat,
            "image": image_struct(png(col)),
        }
        for i, (obj, ans, cat, col) in enumerate(
            [
                ("circle", "yes", "random", "red"),
                ("square", "no", "random", "red"),
                ("circle", "yes", "popular", "blue"),
                ("dog", "no", "popular", "blue"),
                ("circle", "yes", "adversarial", "green"),
                ("cat", "no", "adversarial", "green"),
                ("circle", "maybe", "random", "grey"),  # not yes/no
            ]
        )
    ]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "pope.parquet")
    b = load_benchmark(tmp_path / "pope.parquet")
    assert b.layout == "pope" and b.skipped == {"answer_not_an_option": 1}
    said = [pick(rand_ctx, r, ["yes", "no"]) == 0 for r in b.rows]
    gold = [r.answer == 0 for r in b.rows]
    tp = sum(s and g for s, g in zip(said, gold, strict=True))
    p = tp / max(sum(said), 1)
    r = tp / sum(gold)
    res = mcbench(rand_ctx, path=str(tmp_path / "pope.parquet"))
    assert res["n"] == 6 and res["skipped_answer_not_an_option"] == 1
    assert res["precision"] == pytest.approx(p) and res["recall"] == pytest.approx(r)
    assert res["f1"] == pytest.approx(2 * p * r / (p + r) if p + r else 0.0)
    assert {"f1_random", "f1_popular", "f1_adversarial", "accuracy_random"} <= set(res)


# --- circular evaluation ---


def test_circular_verdict_on_a_hand_made_case():
    # Answer B (1) of three options. Pass 0 (ABC) must pick 1, pass 1 (BCA) 0, pass 2 (CAB) 2.
    assert rotate(["x", "y", "z"], 1, 1) == (["y", "z", "x"], 0)
    assert circular_correct([1, 0, 2], 1, 3)
    # Right in the first pass only (the model always says "B"): right once, wrong circularly.
    assert not circular_correct([1, 1, 1], 1, 3)
    assert circular_correct([1], 1, 3)  # one pass is plain scoring


def test_circular_run_asks_every_rotation(tsv_file, rand_ctx):
    res = mcbench(rand_ctx, path=str(tsv_file), score="letter", circular=True)
    rows = load_benchmark(tsv_file).rows[:6]
    verdicts, first = [], []
    for r in rows:
        picks = [
            pick(rand_ctx, r, rotate(r.options, r.answer, k)[0], listed=True, letters=True)
            for k in range(len(r.options))
        ]
        verdicts.append(circular_correct(picks, r.answer, len(r.options)))
        first.append(picks[0] == r.answer)
    assert res["accuracy"] == pytest.approx(sum(verdicts) / len(rows))
    assert res["single_pass_accuracy"] == pytest.approx(sum(first) / len(rows))
    # the random model's letter habits: some rows are right once and wrong under rotation
    assert any(f and not v for f, v in zip(first, verdicts, strict=True))
    assert res["accuracy"] < res["single_pass_accuracy"]


# --- same scores as vmcbench on a 4-option file; whole-file errors ---


def test_four_option_file_scores_as_vmcbench(tiny_data, rand_ckpt, tmp_path):
    src = pq.read_table(tiny_data["eval"] / "vqa.parquet").slice(0, 6).to_pylist()
    rows = [
        {
            "index": i,
            "question": r["question"],
            **dict(zip("ABCD", r["options"], strict=True)),
            "answer": "ABCD"[r["answer"]],
            "category": r["qtype"],
            "image": r["image"],
        }
        for i, r in enumerate(src)
    ]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "b.parquet")
    modes = {"": "", "_letter": ",score=letter"}
    tasks = [
        f"{t}:path=b.parquet{arg},as={t}{m}"
        for t in ("mcbench", "vmcbench")
        for m, arg in modes.items()
    ]
    res = evaluate(rand_ckpt, tmp_path, tasks)
    for m in modes:
        mc, vm = res[f"mcbench{m}"], res[f"vmcbench{m}"]
        assert mc["accuracy"] == pytest.approx(vm["accuracy"]) and mc["n"] == vm["n"] == 6
        assert {k: v for k, v in mc.items() if k.startswith("accuracy_")} == pytest.approx(
            {k: v for k, v in vm.items() if k.startswith("accuracy_")}
        )


def test_bad_files_are_one_line_errors(tmp_path, rand_ctx):
    with pytest.raises(FileNotFoundError, match="gone.parquet: benchmark file not found"):
        load_benchmark(tmp_path / "gone.parquet")
    pq.write_table(
        pa.Table.from_pylist([{"question": "q?", "A": "x", "B": "y"}]), tmp_path / "noans.parquet"
    )
    with pytest.raises(ValueError, match=r"noans\.parquet: missing column\(s\) answer"):
        load_benchmark(tmp_path / "noans.parquet")
    with pytest.raises(ValueError, match="unknown benchmark layout 'mmlu'"):
        load_benchmark(tmp_path / "noans.parquet", layout="mmlu")
    with pytest.raises(ValueError, match="score must be 'option' or 'letter'"):
        mcbench(rand_ctx, path=str(tmp_path / "noans.parquet"), score="text")


def test_results_json_and_report_show_categories_and_skips(tsv_file, rand_ckpt, tmp_path):
    from vloom.evaluate import write_results
    from vloom.report import write_report

    res = evaluate(rand_ckpt, tsv_file.parent, [f"mcbench:path={tsv_file.name},as=mmb"])
    path = write_results(tmp_path, res, {"name": "bench"}, None)
    assert json.loads(path.read_text())["eval"]["mmb"]["skipped_missing_image"] == 1
    report = write_report(tmp_path).read_text()
    assert "### mmb: accuracy per question type" in report
    assert "| mmb.skipped_bad_image | 1 |" in report and "| shape |" in report


def test_dynamic_resolution_batches_score_as_one_at_a_time(tiny_data, tmp_path):
    """Images of different sizes, each its own token count, one or two per row, mixed in a
    batch (an ImageBatch), give the picks of scoring each row alone."""
    cfg = tiny_config(
        model__vision__resolution="dynamic",
        model__vision__min_pixels=16 * 16,
        model__vision__max_pixels=48 * 48,
    )
    tok_path = tiny_data["packed"] / "tokenizer.json"
    torch.manual_seed(0)
    meta = {
        "model": cfg.model.model_dump(mode="json"),
        "vocab_size": load_tokenizer(str(tok_path)).get_vocab_size(),
        "max_seq_len": 128,
        "image_size": cfg.synth.image_size,
    }
    save_model(build_model(meta).eval(), tmp_path / "ckpt", {"tokenizer": str(tok_path)})
    model, tok = load_checkpoint(tmp_path / "ckpt")
    assert model.vision.dynamic
    ctx = EvalContext(model, tok, tmp_path, CPU, batch_size=5)
    sizes = [(48, 16), (16, 48), (32, 32), (40, 24)]
    rows = [
        {"index": i, "question": "Which colour?", "A": "red", "B": "blue", "C": "green",
         "answer": "ABC"[i % 3], "category": "colour",
         "image": json.dumps([b64(png(c, size=w, height=h)) for c in COLOURS[: 1 + i % 2]])}
        for i, (w, h) in enumerate(sizes)
    ]  # fmt: skip
    write_tsv(tmp_path / "dyn.tsv", rows)
    res = mcbench(ctx, path=str(tmp_path / "dyn.tsv"))
    got = load_benchmark(tmp_path / "dyn.tsv").rows
    assert [len(r.images) for r in got] == [1, 2, 1, 2]
    right = [pick(ctx, r, r.options) == r.answer for r in got]
    assert res["n"] == 4 and res["accuracy"] == pytest.approx(sum(right) / 4)
