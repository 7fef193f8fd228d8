"""Byte-level BPE trained on the corpus with Hugging Face `tokenizers`."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from vloom.sequence import SPECIAL_TOKENS


def train_tokenizer(
    texts: Iterable[str],
    vocab_size: int,
    out_path: str | Path | None = None,
    special_tokens: list[str] | None = None,
) -> Tokenizer:
    """Train a byte-level BPE (and save it as `out_path` when given); the special tokens take
    the first ids (by default vloom's 0..3, see vloom.sequence)."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS if special_tokens is None else special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    if out_path is not None:
        out_path = Path(out_path)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        tok.save(str(out_path))
    return tok
