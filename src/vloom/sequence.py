"""The token layout shared by packing, training and evaluation.

A document becomes `<bos> item item ... <eos>`: a text item is its BPE tokens, an
image item is `tokens_per_image` copies of `<image>`, replaced inside the model by
the connector's outputs for that image, in order of appearance.

Which ids those special tokens have is a `TokenLayout`: vloom's own BPE puts them at 0..3
(the defaults, and the module constants below); a pretrained tokenizer (`model.lm.init`)
keeps its own bos/eos and gains `<image>` (and `<pad>`) at the end of its vocabulary. Pack
writes the layout into `stats.json`, a checkpoint carries it in its `config.json`, and
training, evaluation, export and generation read it from there.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

from tokenizers import Tokenizer

PAD, BOS, EOS, IMAGE = "<pad>", "<bos>", "<eos>", "<image>"
SPECIAL_TOKENS = [PAD, BOS, EOS, IMAGE]
PAD_ID, BOS_ID, EOS_ID, IMAGE_ID = 0, 1, 2, 3
IGNORE_INDEX = -100  # targets the loss skips: padding and image placeholders


@dataclass(frozen=True)
class TokenLayout:
    """The special token ids of a tokenizer; bos None: documents start with no marker (Qwen2,
    whose documents are only separated by eos)."""

    pad: int = PAD_ID
    bos: int | None = BOS_ID
    eos: int = EOS_ID
    image: int = IMAGE_ID

    @property
    def prefix(self) -> list[int]:
        """What a sequence starts with: [bos], or nothing without a bos token."""
        return [] if self.bos is None else [self.bos]

    def to_json(self) -> dict[str, int | None]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any] | None, where: str = "token_layout") -> TokenLayout:
        """A layout from its JSON; None (data packed before layouts were written) = the default."""
        if d is None:
            return cls()
        try:
            lay = cls(**d)
        except TypeError:
            raise ValueError(
                f"{where}: expected keys pad, bos, eos, image, got {sorted(d)}"
            ) from None
        ids = [lay.pad, lay.eos, lay.image] + lay.prefix
        if not all(isinstance(i, int) and i >= 0 for i in ids) or len(set(ids)) < len(ids):
            raise ValueError(f"{where}: token ids must be distinct non-negative integers, got {d}")
        return lay


DEFAULT_LAYOUT = TokenLayout()


def load_tokenizer(path: str, layout: TokenLayout = DEFAULT_LAYOUT) -> Tokenizer:
    """Load tokenizer.json and check that it has the layout's special tokens."""
    tok = Tokenizer.from_file(str(path))
    if layout == DEFAULT_LAYOUT:  # vloom's own BPE: the names at ids 0..3
        for name, want in zip(SPECIAL_TOKENS, (PAD_ID, BOS_ID, EOS_ID, IMAGE_ID), strict=True):
            got = tok.token_to_id(name)
            if got != want:
                raise ValueError(f"{path}: special token {name} has id {got}, expected {want}")
        return tok
    if tok.token_to_id(IMAGE) != layout.image:
        raise ValueError(
            f"{path}: {IMAGE} has id {tok.token_to_id(IMAGE)}, expected {layout.image}"
        )
    for role, i in asdict(layout).items():
        if i is not None and tok.id_to_token(i) is None:
            raise ValueError(f"{path}: the {role} token id {i} is not in the vocabulary")
    return tok


def encode_text(tok: Tokenizer, text: str) -> list[int]:
    return tok.encode(text, add_special_tokens=False).ids


def item_texts(items: Iterable[str | None]) -> list[str | None]:
    """The text each item is encoded as (`None` for an image): adjacent text items are
    separate blocks on the page, so a text after a text starts on a new line."""
    out: list[str | None] = []
    prev_text = False
    for it in items:
        out.append(None if it is None else ("\n" + it if prev_text else it))
        prev_text = it is not None
    return out


def blocks(
    tok: Tokenizer,
    items: Iterable[str | None],
    bos: bool = True,
    eos: bool = True,
    layout: TokenLayout = DEFAULT_LAYOUT,
) -> Iterator[tuple[str, list[int]]]:
    """("text", ids) and ("image", []) blocks for an item list; `None` stands for an image."""
    if bos and layout.bos is not None:
        yield "text", [layout.bos]
    for text in item_texts(items):
        if text is None:
            yield "image", []
        else:
            yield "text", encode_text(tok, text)
    if eos:
        yield "text", [layout.eos]


def encode_items(
    tok: Tokenizer,
    items: Iterable[str | None],
    tokens_per_image: int,
    bos: bool = True,
    eos: bool = True,
    layout: TokenLayout = DEFAULT_LAYOUT,
) -> list[int]:
    """Token ids for an interleaved item list; `None` stands for an image."""
    ids: list[int] = []
    for kind, block in blocks(tok, items, bos, eos, layout):
        ids.extend([layout.image] * tokens_per_image if kind == "image" else block)
    return ids
