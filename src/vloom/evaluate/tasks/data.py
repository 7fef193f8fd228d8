"""Reading evaluation files with clear errors, and turning their images into model inputs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import torch
from tokenizers import Tokenizer

from vloom.imagebatch import ImageBatch, join_images
from vloom.media import ImageError, to_array
from vloom.model.vlm import VLM
from vloom.pack.images import prepare_image
from vloom.sequence import blocks


def read_rows(path: Path, required: tuple[str, ...], limit: int | None) -> list[dict[str, Any]]:
    if not path.exists():
        raise FileNotFoundError(f"{path}: evaluation file not found")
    table = pq.read_table(path)
    missing = [c for c in required if c not in table.column_names]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)}")
    rows = table.slice(0, limit).to_pylist() if limit else table.to_pylist()
    for i, r in enumerate(rows):
        opts = r.get("options")
        if opts is not None and (not opts or any(o is None or o == "" for o in opts)):
            raise ValueError(f"{path}: row {i} ({r.get('id')}) has an empty answer option")
        if opts is not None and not 0 <= int(r["answer"]) < len(opts):
            raise ValueError(
                f"{path}: row {i} ({r.get('id')}) answer index {r['answer']} is out of range"
            )
    return rows


def answer_text(row: dict[str, Any], option: str) -> str:
    """The continuation scored for an option: the row's answer template filled in, if it has one."""
    template = row.get("template")
    return template.format(option) if template else option


def read_table_rows(
    path: Path, required: tuple[str, ...], limit: int | None
) -> list[dict[str, Any]]:
    """Rows of an evaluation Parquet file that has the required columns (no option checks)."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: evaluation file not found")
    table = pq.read_table(path)
    missing = [c for c in required if c not in table.column_names]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)}")
    return table.slice(0, limit).to_pylist() if limit else table.to_pylist()


def file_metadata(path: Path) -> dict[str, str]:
    """The key/value metadata of an evaluation Parquet file's schema (text only)."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: evaluation file not found")
    raw = pq.read_schema(path).metadata or {}
    return {k.decode("utf-8", "replace"): v.decode("utf-8", "replace") for k, v in raw.items()}


def pixels(data: bytes, size: int) -> torch.Tensor:
    """One image as an [1, size, size, 3] square (fixed resolution only; tasks use
    `image_input`, which follows the model's resolution mode)."""
    return torch.from_numpy(to_array(data, size))[None]


def image_input(m: VLM, data: bytes, where: str | None = None) -> tuple[torch.Tensor, int]:
    """One image as the model sees it: (pixels [1, H, W, 3] uint8, number of `<image>` tokens
    it takes in a prompt). The one place every task turns image bytes into model input, so
    eval prepares images exactly as the pack did for training: an image_size square in fixed
    mode, the aspect-kept smart resize (its own size and token count) in dynamic mode.
    `where` (file and row) prefixes the error for bytes that are not a usable image."""
    try:
        px, n_tokens = prepare_image(data, m.vision.cfg, m.vision.image_size)
    except ImageError as e:
        if where is None:
            raise
        raise ImageError(e.reason, f"{where}: {e}") from None
    return torch.from_numpy(px)[None], n_tokens


def image_prompt(m: VLM, data: bytes, where: str | None = None) -> tuple[list[int], torch.Tensor]:
    """`<image>` placeholders for one image (as many as it makes tokens) and its pixels."""
    px, n = image_input(m, data, where)
    return [m.layout.image] * n, px


def interleaved_input(
    m: VLM,
    tok: Tokenizer,
    texts: Sequence[str | None],
    images: Sequence[bytes | None],
    where: str | None = None,
    bos: bool = True,
    eos: bool = False,
) -> tuple[list[int], torch.Tensor | ImageBatch | None]:
    """An aligned texts/images document (None marks the other kind) as token ids, each image
    its own number of `<image>` tokens, and its images in order: a [n, H, W, 3] stack when
    they share a size, an ImageBatch when they do not (dynamic resolution), None if none."""
    pics = [image_input(m, b, where) for b in images if b is not None]
    if sum(t is None for t in texts) != len(pics):
        raise ValueError(f"{where or 'document'}: texts and images do not align")
    it = iter(pics)
    ids: list[int] = []
    for kind, block in blocks(tok, texts, bos, eos, m.layout):
        ids.extend([m.layout.image] * next(it)[1] if kind == "image" else block)
    vc = m.vision.cfg
    return ids, join_images([p for p, _ in pics], vc.patch_size, vc.merge)
