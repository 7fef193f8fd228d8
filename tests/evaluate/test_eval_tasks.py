import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from tinyexp import tiny_config

from vloom.evaluate import TASKS, evaluate, write_results
from vloom.evaluate.scoring import accuracy_by_type, continuation_logprobs, option_scores
from vloom.train import train


@pytest.fixture(scope="module")
def tiny_ckpt(tiny_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("ckpt")
    train(tiny_config(), tiny_data["packed"], out, quiet=True)
    return out / "checkpoints" / "final"


def test_all_tasks_write_results_in_the_contract_shape(tiny_data, tiny_ckpt, tmp_path):
    evals = evaluate(tiny_ckpt, tiny_data["eval"], ["vqa", "text_qa", "text_ppl", "caption_loss"])
    assert set(evals) == {"vqa", "text_qa", "text_ppl", "caption_loss"}
    v = evals["vqa"]
    assert 0 <= v["accuracy"] <= 1 and v["n"] == 16
    assert {"accuracy_colour", "accuracy_shape", "accuracy_count", "accuracy_position"} <= set(v)
    assert evals["text_ppl"]["perplexity"] > 1 and evals["text_ppl"]["tokens"] > 0
    assert evals["caption_loss"]["loss"] > 0
    path = write_results(tmp_path, evals, {"name": "tiny"}, {"steps": 8})
    data = json.loads(path.read_text())
    assert data["eval"]["vqa"]["accuracy"] == v["accuracy"] and data["config"] == {"name": "tiny"}


def test_option_scores_are_real_log_probabilities(tiny_ckpt):
    from vloom.model import load_model

    m = load_model(tiny_ckpt).eval()
    text_ids = list(range(4, m.lm.vocab_size))  # every non-special token
    scores = torch.tensor(
        continuation_logprobs(
            m,
            [[1, 10, 11]] * len(text_ids),
            [[t] for t in text_ids],
            [None] * len(text_ids),
            torch.device("cpu"),
        )
    )
    with torch.no_grad():
        ref = torch.log_softmax(m(torch.tensor([[1, 10, 11]]))[0][0, -1], -1)
    assert torch.allclose(scores, ref[4:], atol=1e-5)
    assert scores.exp().sum() <= 1.0 + 1e-5
    two = continuation_logprobs(m, [[1, 10]], [[11, 12]], [None], torch.device("cpu"))[0]
    with torch.no_grad():
        lp = torch.log_softmax(m(torch.tensor([[1, 10, 11]]))[0][0], -1)
    assert two == pytest.approx(float(lp[1, 11] + lp[2, 12]), abs=1e-5)


def test_option_scores_run_each_prompt_once_with_the_scores_of_one_sequence_per_option(tiny_ckpt):
    """Options continue their prompt's KV cache (prompts of several lengths, images, options
    of several lengths, a text prompt cut to fit): each score is the one its own sequence
    gets, and a cut prompt still keeps the end of its context."""
    from vloom.model import load_model

    m = load_model(tiny_ckpt).eval()
    g = torch.Generator().manual_seed(0)
    n_img, size = m.tokens_per_image, m.vision.image_size
    limit = m.lm.max_seq_len
    prompts, options, images = [], [], []
    for q in range(9):
        text = torch.randint(4, m.lm.vocab_size, (12 + q % 3,), generator=g).tolist()
        opts = [
            torch.randint(4, m.lm.vocab_size, (1 + (q + j) % 4,), generator=g).tolist()
            for j in range(4 - q % 2)
        ]
        if q % 3 == 0:  # an image question
            prompts.append(m.layout.prefix + [m.layout.image] * n_img + text)
            images.append(torch.randint(0, 256, (1, size, size, 3), generator=g, dtype=torch.uint8))
        else:
            prompts.append([1] + text * (limit if q == 8 else 1))  # q 8: longer than the model
            images.append(None)
        options.append(opts)
    seen = []  # positions the LM runs: each prompt once, not once per option
    hook = m.lm.layers[0].register_forward_pre_hook(
        lambda _m, a: seen.append(a[0].shape[0] * a[0].shape[1])
    )
    got = option_scores(m, prompts, options, images, torch.device("cpu"), batch_size=8)
    hook.remove()
    per_option = once = 0  # positions run: one sequence per option / each prompt once
    for p, opts in zip(prompts, options, strict=True):
        per_option += len(opts) * min(len(p) + max(map(len, opts)), limit)
        cut = len(p) + max(map(len, opts)) > limit
        once += len(opts) * limit if cut else len(p) + len(opts) * 4  # options pad to <= 4
    assert 0 < sum(seen) <= once < per_option
    for p, opts, im, scores in zip(prompts, options, images, got, strict=True):
        ref = continuation_logprobs(m, [p] * len(opts), opts, [im] * len(opts), torch.device("cpu"))
        assert scores == pytest.approx(ref, abs=1e-4)
    assert len(prompts[8]) > limit and len(got[8]) == len(options[8])


def test_accuracy_by_type():
    r = accuracy_by_type([0, 1, 2, 3], [0, 1, 0, 0], ["a", "a", "b", "b"])
    assert r == {"accuracy": 0.5, "accuracy_a": 1.0, "accuracy_b": 0.0, "n": 4}


def test_unknown_task_and_bad_task_files(tiny_data, tiny_ckpt, tmp_path):
    with pytest.raises(ValueError, match="unknown eval task 'vqaa'"):
        evaluate(tiny_ckpt, tiny_data["eval"], ["vqaa"])
    assert "vqa" in TASKS
    rows = pq.read_table(tiny_data["eval"] / "vqa.parquet").to_pylist()
    rows[2]["options"] = ["red", "", "blue", "green"]
    (tmp_path / "bad").mkdir()
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "bad" / "vqa.parquet")
    with pytest.raises(ValueError, match=r"vqa\.parquet: row 2 .* empty answer option"):
        evaluate(tiny_ckpt, tmp_path / "bad", ["vqa"])
    with pytest.raises(FileNotFoundError, match="text_qa.parquet: evaluation file not found"):
        evaluate(tiny_ckpt, tmp_path / "bad", ["text_qa"])
