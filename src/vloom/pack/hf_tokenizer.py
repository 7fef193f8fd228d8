"""A pretrained LM's own tokenizer (`model.lm.init`), made ready for vloom's token layout.

The special ids come from the tokenizer: bos / eos / pad as its tokenizer_config.json (or
special_tokens_map.json, or the model's config.json ids) names them. vloom needs a pad distinct
from eos (padding is skipped by the loss; eos is a target), so when the tokenizer has none, or
pads with eos as Llama / Qwen2 recipes do, a `<pad>` token is added; a bos equal to eos
(GPT-2 style) means documents are separated by eos alone (no bos). `<image>` is added as a
special token when absent. Added tokens take the ids after the tokenizer's, and the model's
embedding rows grow to cover them (see vloom.model.hf_lm).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tokenizers import AddedToken, Tokenizer

from vloom.model.lm_config import read_hf_config
from vloom.ondisk import read_json_object
from vloom.sequence import IMAGE, PAD, TokenLayout

TOKENIZER_JSON = "tokenizer.json"
NAMING_FILES = ("tokenizer_config.json", "special_tokens_map.json")
ROLES = ("bos", "eos", "pad")


def _token_name(value: Any) -> str | None:
    """`"<s>"` or an AddedToken's JSON `{"content": "<s>", ...}`."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


def special_ids(hf_dir: Path, tok: Tokenizer) -> dict[str, int | None]:
    """bos / eos / pad ids as the directory's files name them (None where none does)."""
    hf, cfg_path = read_hf_config(hf_dir)
    ids: dict[str, int | None] = {}
    for role in ROLES:
        ids[role] = None
        for fname in NAMING_FILES:
            path = hf_dir / fname
            if not path.exists() or f"{role}_token" not in (d := read_json_object(path)):
                continue
            name = _token_name(d[f"{role}_token"])
            if name is None:
                break  # named as null: the tokenizer has none
            ids[role] = tok.token_to_id(name)
            if ids[role] is None:
                raise ValueError(f"{path}: {role}_token {name!r} is not in {TOKENIZER_JSON}")
            break
        else:  # no tokenizer file names it: the model's config.json id, if any
            i = hf.get(f"{role}_token_id")
            ids[role] = i if isinstance(i, int) and tok.id_to_token(i) is not None else None
    if ids["eos"] is None:
        raise ValueError(
            f"{hf_dir}: no eos_token in {' or '.join(NAMING_FILES)} nor eos_token_id in "
            f"{cfg_path.name} (vloom ends every document with eos)"
        )
    return ids


def _add(tok: Tokenizer, name: str) -> int:
    """The id of `name`, added as a special token when the vocabulary lacks it."""
    if tok.token_to_id(name) is None:
        tok.add_special_tokens([AddedToken(name, special=True, normalized=False)])
    return tok.token_to_id(name)


def prepare_hf_tokenizer(
    hf_dir: str | Path, out_path: str | Path
) -> tuple[Tokenizer, TokenLayout, int]:
    """Load `hf_dir`'s tokenizer, add `<image>` (and `<pad>`), save it to `out_path`; returns
    (tokenizer, its layout, the model's vocabulary size: its embedding rows or, when the added
    tokens go past them, the tokenizer's size)."""
    hf_dir = Path(hf_dir)
    tok_path = hf_dir / TOKENIZER_JSON
    hf, cfg_path = read_hf_config(hf_dir)
    if not tok_path.exists():
        slow = [f for f in ("tokenizer.model", "vocab.json") if (hf_dir / f).exists()]
        hint = f" (only {', '.join(slow)}: save the fast tokenizer)" if slow else ""
        raise FileNotFoundError(f"{tok_path}: not found; model.lm.init needs its tokenizer{hint}")
    try:
        tok = Tokenizer.from_file(str(tok_path))
    except Exception as e:
        raise ValueError(f"{tok_path}: not a tokenizers file ({str(e).splitlines()[0]})") from None
    rows = hf.get("vocab_size")
    if not isinstance(rows, int) or rows < 1:
        raise ValueError(f"{cfg_path}: vocab_size is missing or not a positive integer")
    image = tok.token_to_id(IMAGE)
    n = tok.get_vocab_size() - (image is not None and image >= rows)  # a present <image> aside
    if n > rows:
        raise ValueError(
            f"{tok_path} has {n} tokens but {cfg_path} has vocab_size {rows} (embedding rows): "
            "the tokenizer does not belong to these weights"
        )
    ids = special_ids(hf_dir, tok)
    eos = ids["eos"]
    bos = None if ids["bos"] == eos else ids["bos"]
    pad = ids["pad"]
    if pad is None or pad in (eos, bos):
        pad = _add(tok, PAD)
    layout = TokenLayout(pad=pad, bos=bos, eos=eos, image=_add(tok, IMAGE))
    layout = TokenLayout.from_json(layout.to_json(), f"{hf_dir}: special tokens")
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tok.save(str(out_path))
    return tok, layout, max(rows, tok.get_vocab_size())
