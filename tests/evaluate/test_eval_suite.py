"""The new tasks end to end through `evaluate`, each checked against a direct computation."""

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from captionextra import HAVE_CAPTION_METRICS, need_caption_metrics

from vloom.evaluate import evaluate
from vloom.evaluate.convert import convert_open_to_mc
from vloom.evaluate.generation import greedy_generate
from vloom.evaluate.metrics import caption_scores, exact_match
from vloom.evaluate.scoring import continuation_logprobs
from vloom.evaluate.tasks.caption_gen import generate_captions
from vloom.evaluate.tasks.data import pixels
from vloom.evaluate.tasks.vqa_open import STOP, accepted
from vloom.sequence import BOS_ID, IMAGE_ID, encode_items, encode_text
from vloom.synth.answers import WORLD

N = 6


@pytest.fixture(scope="module")
def suite(rand_ckpt, tiny_data):
    tasks = [
        "vqa_open:max_new_tokens=4",
        "vqa_mc_converted",
        *(["caption_gen:max_new_tokens=6"] if HAVE_CAPTION_METRICS else []),
        "multi_image",
        "world_qa",
        "fewshot_qa:source=world_qa,num_fewshot=2",
    ]
    return evaluate(rand_ckpt, tiny_data["eval"], tasks, batch_size=16, max_examples=N)


def _rows(tiny_data, name):
    return pq.read_table(tiny_data["eval"] / f"{name}.parquet").slice(0, N).to_pylist()


def test_vqa_open_is_exact_match_of_greedy_answers(suite, rand_ctx, tiny_data):
    m, tok = rand_ctx.model, rand_ctx.tokenizer
    rows = _rows(tiny_data, "vqa_open")
    preds = []
    for r in rows:  # one at a time: batching must not change answers
        p = (
            [BOS_ID]
            + [IMAGE_ID] * m.tokens_per_image
            + encode_text(tok, f"Question: {r['question']} Answer:")
        )
        im = pixels(r["image"], m.vision.image_size)
        preds += greedy_generate(m, tok, [p], [im], torch.device("cpu"), 4, STOP)
    right = [exact_match(p, accepted(r)) for p, r in zip(preds, rows, strict=True)]
    res = suite["vqa_open"]
    assert res["n"] == N and res["accuracy"] == sum(right) / N == res["exact_match"]
    assert {"accuracy_colour", "accuracy_shape", "accuracy_count", "accuracy_position"} <= set(res)


def test_converted_mc_scores_and_reports_the_shift(suite, rand_ctx, tiny_data):
    m, tok = rand_ctx.model, rand_ctx.tokenizer
    allrows = pq.read_table(tiny_data["eval"] / "vqa_open.parquet").to_pylist()
    mc, _ = convert_open_to_mc(allrows, 4, WORLD, seed=0)
    mc = mc[:N]
    correct = 0
    for r in mc:
        p = (
            [BOS_ID]
            + [IMAGE_ID] * m.tokens_per_image
            + encode_text(tok, f"Question: {r['question']} Answer:")
        )
        im = pixels(r["image"], m.vision.image_size)
        opts = [encode_text(tok, " " + r["template"].format(o)) for o in r["options"]]
        s = continuation_logprobs(m, [p] * 4, opts, [im] * 4, torch.device("cpu"))
        correct += max(range(4), key=lambda j: s[j]) == r["answer"]
    res = suite["vqa_mc_converted"]
    assert res["n"] == N and res["dropped"] == 0 and res["accuracy"] == pytest.approx(correct / N)
    assert res["shift_from_open"] == pytest.approx(res["accuracy"] - suite["vqa_open"]["accuracy"])
    assert "shift_from_open_shape" in res


def test_caption_gen_scores_the_generated_captions(suite, rand_ctx, tiny_data):
    need_caption_metrics()
    rows = _rows(tiny_data, "caption_refs")
    preds = generate_captions(rand_ctx, rows, 6)
    want = caption_scores(preds, [r["references"] for r in rows])
    res = suite["caption_gen"]
    assert res["n"] == len(rows) and res["cider"] == pytest.approx(want["cider"])
    assert res["bleu"] == pytest.approx(want["bleu"])


def test_multi_image_against_direct_scoring(suite, rand_ctx, tiny_data):
    m, tok = rand_ctx.model, rand_ctx.tokenizer
    rows = _rows(tiny_data, "multi_image")
    correct = 0
    for r in rows:
        p = encode_items(tok, r["texts"], m.tokens_per_image, eos=False) + encode_text(
            tok, f" Question: {r['question']} Answer:"
        )
        ims = torch.cat([pixels(b, m.vision.image_size) for b in r["images"] if b is not None])
        opts = [encode_text(tok, " " + r["template"].format(o)) for o in r["options"]]
        s = continuation_logprobs(m, [p] * 4, opts, [ims] * 4, torch.device("cpu"))
        correct += max(range(4), key=lambda j: s[j]) == r["answer"]
    res = suite["multi_image"]
    assert res["skipped_too_long"] == 0 and res["n"] == N
    assert res["accuracy"] == pytest.approx(correct / N)


def test_world_qa_and_fewshot(suite, rand_ctx, tiny_data):
    res, few = suite["world_qa"], suite["fewshot_qa"]
    assert res["n"] == N and 0 <= res["accuracy"] <= 1
    assert few["accuracy_0shot"] == res["accuracy"]  # the 0-shot half is world_qa itself
    assert few["accuracy"] == few["accuracy_2shot"]
    assert few["fewshot_gain"] == pytest.approx(few["accuracy_2shot"] - few["accuracy_0shot"])
    # k-shot prompts hold k solved examples before the question, never the question itself.
    from vloom.evaluate.tasks.text_qa import fewshot_prompts

    rows = _rows(tiny_data, "world_qa")
    prompts = fewshot_prompts(rows, rows, 2, seed=0)
    for r, p in zip(rows, prompts, strict=True):
        assert p.count("Question:") == 3 and p.endswith(f"Question: {r['question']} Answer:")
        assert p.count(r["template"].format(r["options"][r["answer"]])) <= 2


def test_bad_eval_files(rand_ckpt, tiny_data, tmp_path):
    rows = pq.read_table(tiny_data["eval"] / "multi_image.parquet").to_pylist()
    rows[1]["texts"] = ["Figure 1.", "oops", "Figure 2.", None]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "multi_image.parquet")
    with pytest.raises(ValueError, match=r"multi_image\.parquet: row 1 .* exactly one non-null"):
        evaluate(rand_ckpt, tmp_path, ["multi_image"])
    rows = pq.read_table(tiny_data["eval"] / "vqa_open.parquet").to_pylist()
    rows[3]["answers"] = []
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "vqa_open.parquet")
    with pytest.raises(ValueError, match=r"vqa_open\.parquet: row 3 .* has no answer"):
        evaluate(rand_ckpt, tmp_path, ["vqa_open"])
    pq.write_table(pa.table({"id": ["x"]}), tmp_path / "caption_refs.parquet")
    with pytest.raises(ValueError, match="caption_refs.parquet: missing column.s. image, refer"):
        evaluate(rand_ckpt, tmp_path, ["caption_gen"])
    with pytest.raises(FileNotFoundError, match="world_qa.parquet: evaluation file not found"):
        evaluate(rand_ckpt, tmp_path, ["world_qa"])
    with pytest.raises(ValueError, match="num_fewshot=9 needs more than 9 examples"):
        evaluate(rand_ckpt, tiny_data["eval"], ["text_qa:num_fewshot=9"])
