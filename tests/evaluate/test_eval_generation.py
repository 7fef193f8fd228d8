import pytest
import torch
from greedyref import manual_greedy

from vloom.evaluate.generation import cut_at_stop, greedy_generate
from vloom.evaluate.tasks.data import pixels
from vloom.sequence import BOS_ID, IMAGE_ID, encode_text


def test_greedy_matches_a_step_by_step_argmax_batched_or_not(rand_ctx):
    m, tok = rand_ctx.model, rand_ctx.tokenizer
    texts = ["Question: What shape is the red object? Answer:", "There is a", "There is b"]
    prompts = [[BOS_ID] + encode_text(tok, t) for t in texts]
    got = greedy_generate(m, tok, prompts, [None] * 3, torch.device("cpu"), 4, batch_size=4)
    one = [greedy_generate(m, tok, [p], [None], torch.device("cpu"), 4)[0] for p in prompts]
    assert got == one
    want = [tok.decode(manual_greedy(m, p, None, 4)).strip() for p in prompts]
    assert got == want


def test_greedy_with_an_image_and_stop_strings(rand_ctx, tiny_data):
    import pyarrow.parquet as pq

    m, tok = rand_ctx.model, rand_ctx.tokenizer
    row = pq.read_table(tiny_data["eval"] / "vqa_open.parquet").slice(0, 1).to_pylist()[0]
    im = pixels(row["image"], m.vision.image_size)
    prompt = [BOS_ID] + [IMAGE_ID] * m.tokens_per_image + encode_text(tok, "Question:")
    full = tok.decode(manual_greedy(m, prompt, im, 6))
    assert greedy_generate(m, tok, [prompt], [im], torch.device("cpu"), 6)[0] == full.strip()
    if len(full.strip()) > 1:
        stop = full.strip()[1]
        cut = greedy_generate(m, tok, [prompt], [im], torch.device("cpu"), 6, stop=[stop])[0]
        assert cut == cut_at_stop(full, [stop]).strip() and stop not in cut
    too_long = prompt + [5] * m.lm.max_seq_len
    limit = m.lm.max_seq_len
    with pytest.raises(ValueError, match=f"image prompt of .* exceeds the model's {limit}"):
        greedy_generate(m, tok, [too_long], [im], torch.device("cpu"), 4)
    with pytest.raises(ValueError, match=f"max_new_tokens must be in 1..{limit - 1}"):
        greedy_generate(m, tok, [prompt], [im], torch.device("cpu"), limit)


def test_cut_at_stop_takes_the_earliest():
    assert cut_at_stop("a red. circle\nx", [".", "\n"]) == "a red"
    assert cut_at_stop("no stop here", ["Question:"]) == "no stop here"
    assert cut_at_stop("abc", []) == "abc"
