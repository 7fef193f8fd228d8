"""Templates: vloom's own rendered exactly, the loss mask checked token by token, and a Hugging
Face chat_template (a tokenizer built here, nothing downloaded) with its assistant spans."""

from __future__ import annotations

import io

import numpy as np
import pytest
from chattok import CHATML, CORPUS, hf_dir
from PIL import Image

from vloom.chat.conversation import ChatError, Conversation, Turn
from vloom.chat.template import HFTemplate, VloomTemplate, make_template
from vloom.pack.hf_tokenizer import prepare_hf_tokenizer
from vloom.pack.sft import encode
from vloom.pack.tokenizer import train_tokenizer
from vloom.sequence import DEFAULT_LAYOUT


def png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 30, 30)).save(buf, format="PNG")
    return buf.getvalue()


def image_fn(_: bytes):
    return np.zeros((16, 16, 3), np.uint8), 2  # two <image> tokens per image


def conv() -> Conversation:
    return Conversation(
        "c",
        [
            Turn("user", (png(), "What colour is it?")),
            Turn("assistant", ("The object is red.",)),
            Turn("user", ("Sure?",)),
            Turn("assistant", ("Yes it is.",)),
        ],
    ).check()


def masked_runs(ids: list[int], mask: list[int], tok) -> list[str]:
    runs, cur = [], []
    for i, m in zip(ids, mask, strict=True):
        if m:
            cur.append(i)
        elif cur:
            runs.append(tok.decode(cur, skip_special_tokens=False))
            cur = []
    if cur:
        runs.append(tok.decode(cur, skip_special_tokens=False))
    return runs


@pytest.fixture(scope="module")
def vloom_tok():
    return train_tokenizer(CORPUS, 300)


def test_vloom_template_is_the_world_prompt_and_masks_answers_only(vloom_tok):
    tok = vloom_tok
    e = encode(VloomTemplate(DEFAULT_LAYOUT).render(conv()), tok, DEFAULT_LAYOUT, image_fn)
    text = tok.decode(e.ids, skip_special_tokens=False)
    assert text == (
        "<bos><image><image>Question: What colour is it? Answer: The object is red.<eos>"
        "Question: Sure? Answer: Yes it is.<eos>"
    )
    # The prompt part is exactly what vqa_open feeds the model: prefix + image + encode(...)
    prompt = [1, 3, 3] + tok.encode("Question: What colour is it? Answer:").ids
    assert e.ids[: len(prompt)] == prompt
    # Token by token: 1 exactly on the answers and the <eos> closing each.
    want = [0] * len(prompt)
    want += [1] * (len(tok.encode(" The object is red.").ids) + 1)
    want += [0] * len(tok.encode("Question: Sure? Answer:").ids)
    want += [1] * (len(tok.encode(" Yes it is.").ids) + 1)
    assert e.mask == want
    assert masked_runs(e.ids, e.mask, tok) == [" The object is red.<eos>", " Yes it is.<eos>"]
    assert e.cuts == [len(prompt) + len(tok.encode(" The object is red.").ids) + 1, len(e.ids)]


def test_vloom_template_system_turn_and_text_only(vloom_tok):
    c = Conversation(
        "s",
        [
            Turn("system", ("Answer in a sentence.",)),
            Turn("user", ("Hi",)),
            Turn("assistant", ("Hello.",)),
        ],
    ).check()
    e = encode(VloomTemplate(DEFAULT_LAYOUT).render(c), vloom_tok, DEFAULT_LAYOUT, image_fn)
    assert vloom_tok.decode(e.ids, skip_special_tokens=False) == (
        "<bos>Answer in a sentence.\nQuestion: Hi Answer: Hello.<eos>"
    )
    assert masked_runs(e.ids, e.mask, vloom_tok) == [" Hello.<eos>"]


def test_hf_chat_template_assistant_spans_from_prefix_renders(tmp_path):
    d = hf_dir(tmp_path, CHATML)
    tok, layout, _ = prepare_hf_tokenizer(d, tmp_path / "tok.json")
    t = make_template("auto", layout, d)
    assert isinstance(t, HFTemplate)
    e = encode(t.render(conv()), tok, layout, image_fn)
    assert tok.decode(e.ids, skip_special_tokens=False) == (
        "<|im_start|>user\n<image><image>\nWhat colour is it?<|im_end|>\n"
        "<|im_start|>assistant\nThe object is red.<|im_end|>\n"
        "<|im_start|>user\nSure?<|im_end|>\n<|im_start|>assistant\nYes it is.<|im_end|>\n"
    )
    assert masked_runs(e.ids, e.mask, tok) == [
        "The object is red.<|im_end|>",
        "Yes it is.<|im_end|>",
    ]
    # token by token: the masked ids are exactly the answers' and the closing token's
    im_end = tok.token_to_id("<|im_end|>")
    closing = [i for i, (t_, m) in enumerate(zip(e.ids, e.mask, strict=True)) if t_ == im_end and m]
    assert len(closing) == 2 and sum(e.mask) == sum(
        len(tok.encode(a).ids) + 1 for a in ("The object is red.", "Yes it is.")
    )
    assert e.ids.count(layout.image) == 2


def test_hf_asked_without_a_chat_template_is_a_one_line_error(tmp_path):
    d = hf_dir(tmp_path, None)
    _, layout, _ = prepare_hf_tokenizer(d, tmp_path / "tok.json")
    with pytest.raises(ValueError, match=r"sft.template: hf, but the tokenizer in .*hf has no"):
        make_template("hf", layout, d)
    assert isinstance(make_template("auto", layout, d), VloomTemplate)
    with pytest.raises(ValueError, match="sft.template: hf needs a Hugging Face tokenizer"):
        make_template("hf", DEFAULT_LAYOUT, None)


def test_template_that_raises_or_rewrites_turns_is_a_named_rejection(tmp_path):
    raising = (
        "{% if messages[0]['role'] == 'system' %}{{ raise_exception('no system') }}{% endif %}"
        + CHATML
    )
    d = hf_dir(tmp_path, raising)
    _, layout, _ = prepare_hf_tokenizer(d, tmp_path / "tok.json")
    t = make_template("hf", layout, d)
    sys_conv = Conversation("x", [Turn("system", ("s",)), *conv().turns])
    with pytest.raises(ChatError) as ei:
        t.render(sys_conv)
    assert ei.value.reason == "chat_template_error" and "no system" in str(ei.value)

    # Renders the last answer differently from the same answer mid-conversation.
    unstable = (
        "{% for m in messages %}{% if loop.last and m['role'] == 'assistant' %}[{{ m['content'] }}]"
        "{% else %}{{ m['role'] }}: {{ m['content'] }}\n{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}assistant: {% endif %}"
    )
    d2 = hf_dir(tmp_path / "u", unstable)
    t2 = make_template("hf", layout, d2)
    with pytest.raises(ChatError) as ei:
        t2.render(conv())
    assert ei.value.reason == "chat_template_unstable"


def test_template_closing_answers_with_plain_text_trains_on_that_text(tmp_path):
    plain = (
        "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}assistant: {% endif %}"
    )
    d = hf_dir(tmp_path, plain)
    tok, layout, _ = prepare_hf_tokenizer(d, tmp_path / "tok.json")
    e = encode(make_template("hf", layout, d).render(conv()), tok, layout, image_fn)
    assert masked_runs(e.ids, e.mask, tok) == ["The object is red.\n", "Yes it is.\n"]


@pytest.mark.parametrize("in_template", [True, False])
def test_bos_once_whether_or_not_the_template_writes_it(tmp_path, in_template):
    template = ("{{ bos_token }}" if in_template else "") + CHATML
    d = hf_dir(tmp_path, template, bos="<s>")
    tok, layout, _ = prepare_hf_tokenizer(d, tmp_path / "tok.json")
    assert layout.bos == tok.token_to_id("<s>")
    e = encode(make_template("hf", layout, d).render(conv()), tok, layout, image_fn)
    assert e.ids[0] == layout.bos and e.ids.count(layout.bos) == 1 and e.mask[0] == 0
    assert masked_runs(e.ids, e.mask, tok) == [
        "The object is red.<|im_end|>",
        "Yes it is.<|im_end|>",
    ]
    assert e.cuts[-1] == len(e.ids) - 1  # the newline after the last <|im_end|> stays untrained
