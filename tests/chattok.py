"""A local Hugging Face tokenizer directory with a chat template, for the SFT tests (a byte-level
BPE trained here; nothing downloaded)."""

from __future__ import annotations

import json
from pathlib import Path

from vloom.pack.tokenizer import train_tokenizer

CORPUS = ["Question: What colour is it? Answer: The object is red. Yes it is."] * 20
CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def hf_dir(tmp: Path, template: str | None, bos: str | None = None) -> Path:
    """tmp/hf: tokenizer.json (ChatML specials, and `bos` when given), tokenizer_config.json
    (with `template` as its chat_template when given) and a config.json with the vocab_size
    pack reads."""
    d = tmp / "hf"
    d.mkdir(parents=True, exist_ok=True)
    specials = ["<|im_start|>", "<|im_end|>", "<|pad|>"] + ([bos] if bos else [])
    tok = train_tokenizer(CORPUS, 300, special_tokens=specials)
    tok.save(str(d / "tokenizer.json"))
    cfg = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "eos_token": "<|im_end|>",
        "pad_token": "<|pad|>",
        "bos_token": bos,
    }
    if template is not None:
        cfg["chat_template"] = template
    (d / "tokenizer_config.json").write_text(json.dumps(cfg))
    (d / "config.json").write_text(json.dumps({"vocab_size": 400, "eos_token_id": 1}))
    return d
