"""The token layout shared by packing, training and evaluation.

A document becomes `<bos> item item ... <eos>`: a text item is its BPE tokens, an
image item is `tokens_per_image` copies of `<image>`, replaced inside the model by
the connector's outputs for that image, in order of appearance.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from tokenizers import Tokenizer

PAD, BOS, EOS, IMAGE = "<pad>", "<bos>", "<eos>", "<image>"
SPECIAL_TOKENS = [PAD, BOS, EOS, IMAGE]
PAD_ID, BOS_ID, EOS_ID, IMAGE_ID = 0, 1, 2, 3
IGNORE_INDEX = -100  # targets the loss skips: padding and image placeholders


def load_tokenizer(path: str) -> Tokenizer:
    tok = Tokenizer.from_file(str(path))
    for name, want in zip(SPECIAL_TOKENS, (PAD_ID, BOS_ID, EOS_ID, IMAGE_ID), strict=True):
        got = tok.token_to_id(name)
        if got != want:
            raise ValueError(f"{path}: special token {name} has id {got}, expected {want}")
    return tok


def encode_text(tok: Tokenizer, text: str) -> list[int]:
    return tok.encode(text, add_special_tokens=False).ids


def blocks(
    tok: Tokenizer, items: Iterable[str | None], bos: bool = True, eos: bool = True
) -> Iterator[tuple[str, list[int]]]:
    """("text", ids) and ("image", []) blocks for an item list; `None` stands for an image."""
    if bos:
        yield "text", [BOS_ID]
    prev_text = False
    for it in items:
        if it is None:
            yield "image", []
            prev_text = False
        else:
            # Adjacent text items are separate blocks on the page: keep them apart.
            yield "text", encode_text(tok, "\n" + it if prev_text else it)
            prev_text = True
    if eos:
        yield "text", [EOS_ID]


def encode_items(
    tok: Tokenizer,
    items: Iterable[str | None],
    tokens_per_image: int,
    bos: bool = True,
    eos: bool = True,
) -> list[int]:
    """Token ids for an interleaved item list; `None` stands for an image."""
    ids: list[int] = []
    for kind, block in blocks(tok, items, bos, eos):
        ids.extend([IMAGE_ID] * tokens_per_image if kind == "image" else block)
    return ids
