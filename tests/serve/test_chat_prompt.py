"""Serving prompts: the templates' `prompt` (vloom's render; an HF chat template with its
generation prompt and images), and `vloom serve` over a checkpoint whose tokenizer is a Hugging
Face directory with a chat template (ChatML, built here; nothing downloaded)."""

from __future__ import annotations

import torch
from chattok import CHATML, hf_dir
from tinyexp import tiny_config
from tinyserve import Served, data_url, png, post

from vloom.chat.conversation import Turn
from vloom.chat.prompt import chat_prompt, model_template
from vloom.chat.template import HFTemplate
from vloom.evaluate.harness import load_checkpoint
from vloom.model.io import build_model, save_model
from vloom.pack.hf_tokenizer import prepare_hf_tokenizer


def hf_checkpoint(tmp_path):
    d = hf_dir(tmp_path, CHATML)
    tok, layout, rows = prepare_hf_tokenizer(d, tmp_path / "tok.json")
    model = tiny_config().model.model_dump(mode="json")
    model["lm"]["tokenizer"] = str(d)
    torch.manual_seed(0)
    meta = {"model": model, "vocab_size": rows, "max_seq_len": 96, "image_size": 32}
    vlm = build_model(meta | {"token_layout": layout.to_json()})
    save_model(vlm, tmp_path / "ckpt", extra={"tokenizer": str(tmp_path / "tok.json")})
    return tmp_path / "ckpt", tok


def test_hf_chat_template_prompt_has_the_generation_cue_and_the_image(tmp_path):
    ckpt, tok = hf_checkpoint(tmp_path)
    model, _ = load_checkpoint(ckpt, device="cpu")
    t = model_template(model)
    assert isinstance(t, HFTemplate)
    turns = [Turn("system", ("Be brief.",)), Turn("user", (png(), "What colour?"))]
    ids, images = chat_prompt(model, tok, t, turns)
    assert tok.decode(ids, skip_special_tokens=False) == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n"
        + "<image>" * model.tokens_per_image
        + "\nWhat colour?<|im_end|>\n<|im_start|>assistant\n"
    )
    assert images.shape == (1, 32, 32, 3)


def test_serve_renders_requests_with_the_checkpoints_chat_template(tmp_path):
    ckpt, tok = hf_checkpoint(tmp_path)
    s = Served(ckpt)
    try:
        msgs = [
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": data_url(png())}},
                    {"type": "text", "text": "What colour?"},
                ],
            }
        ]
        status, body = post(s.url + "/chat/completions", {"messages": msgs, "max_tokens": 4})
        assert status == 200, body
        text = "<|im_start|>user\n<image>\nWhat colour?<|im_end|>\n<|im_start|>assistant\n"
        n_text = len(tok.encode(text.replace("<image>", ""), add_special_tokens=False).ids)
        assert body["usage"]["prompt_tokens"] == n_text + s.engine.model.tokens_per_image
    finally:
        s.close()
