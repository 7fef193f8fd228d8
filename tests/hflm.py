"""Tiny local Hugging Face LM directories for tests: a byte-level BPE trained here, wrapped as
PreTrainedTokenizerFast, and a random Llama / Qwen2 model sized to it (nothing downloaded)."""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import processors

CORPUS = [
    "A red circle sits left of a blue square.",
    "Two green triangles and one yellow star, near the top.",
    "The quick brown fox jumps over the lazy dog; naive cafe 123.",
    "a small photo of a cat on a mat",
] * 25
SIZES = dict(
    hidden_size=32,
    intermediate_size=88,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=128,
)


def hf_tokenizer(pad: str | None = None, bos: str | None = "<s>", vocab_size: int = 300):
    """A PreTrainedTokenizerFast with <s> </s> (+ pad) at ids 0.. and, with a bos, a post-
    processor that prepends it (as Llama's does)."""
    from transformers import PreTrainedTokenizerFast

    from vloom.pack.tokenizer import train_tokenizer

    specials = [t for t in (bos, "</s>", pad) if t]
    tok = train_tokenizer(CORPUS, vocab_size, special_tokens=specials)
    if bos:
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", special_tokens=[(bos, tok.token_to_id(bos))]
        )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=bos, eos_token="</s>", pad_token=pad
    )


def save_hf_lm(
    path: Path, family: str = "llama", pad: str | None = None, extra_rows: int = 0, seed: int = 0
):
    """Save a random `family` LM (weights nudged off their init) with its tokenizer to `path`;
    returns (model, tokenizer). extra_rows: embedding rows beyond the tokenizer (Qwen-style)."""
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    tok = hf_tokenizer(pad=pad, bos=None if family == "qwen2" else "<s>")
    common = dict(
        SIZES,
        vocab_size=len(tok) + extra_rows,
        eos_token_id=tok.eos_token_id,
        bos_token_id=tok.bos_token_id,
    )
    if family == "qwen2":
        cls, cfg = Qwen2ForCausalLM, Qwen2Config(**common, tie_word_embeddings=True)
        cfg.rope_parameters = {"rope_type": "default", "rope_theta": 1e6}
    else:
        cls, cfg = LlamaForCausalLM, LlamaConfig(**common, rms_norm_eps=1e-5)
        cfg.rope_parameters = {"rope_type": "default", "rope_theta": 500.0}
    torch.manual_seed(seed)
    model = cls(cfg).eval()
    with torch.no_grad():  # non-trivial norms and biases, as in a trained model
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    model.save_pretrained(str(path))
    tok.save_pretrained(str(path))
    return model, tok
