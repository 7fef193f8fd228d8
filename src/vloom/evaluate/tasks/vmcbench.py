"""VMCBench-style multiple-choice files from a local path: image, question, options A-D, answer.

Formats: Parquet, JSON Lines or TSV (VLMEvalKit's layout). The image may be raw bytes, a
`{"bytes": ..., "path": ...}` struct (Hugging Face datasets' Image feature), base64 text (the
TSV convention) or a path, absolute or relative to the file; a row with no image is asked
as text. Scoring ranks the option texts by likelihood (`score=option`, what a small model
can do) or the option letters after the listed options (`score=letter`, VMCBench's form).
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path
from typing import Any

from vloom.evaluate.benchmarks.files import existing_file, read_rows
from vloom.evaluate.scoring import accuracy_by_type, multiple_choice
from vloom.evaluate.tasks import EvalContext, register
from vloom.evaluate.tasks.data import image_prompt
from vloom.evaluate.tasks.mcbench import resolve
from vloom.sequence import encode_text

LETTERS = ("A", "B", "C", "D")
REQUIRED = ("question", "answer", *LETTERS)


def _image_bytes(value: Any, base: Path, where: str) -> bytes | None:
    if value is None or (isinstance(value, float) and value != value):  # None or NaN
        return None
    if isinstance(value, dict):
        if value.get("bytes"):
            return value["bytes"]
        value = value.get("path")
        if not value:
            return None
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, str):
        if not value.strip():
            return None
        p = existing_file(value, base)
        if p is not None:
            return p.read_bytes()
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(
                f"{where}: image {value[:60]!r} is neither a file nor base64"
            ) from None
    raise ValueError(f"{where}: image has unsupported type {type(value).__name__}")


def load_vmcbench(path: str | Path) -> list[dict[str, Any]]:
    """Validated rows: question, options (4 strings), answer (index), image (bytes or None),
    category."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: benchmark file not found")
    raw = read_rows(path)
    if not raw:
        raise ValueError(f"{path}: no rows")
    cols = set().union(*(r.keys() for r in raw))
    missing = [c for c in REQUIRED if c not in cols]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)}")
    rows = []
    for i, r in enumerate(raw):
        where = f"{path}: row {i}" + (f" ({r['index']})" if r.get("index") is not None else "")
        q = r.get("question")
        if q is None or not str(q).strip():
            raise ValueError(f"{where}: empty question")
        opts = []
        for letter in LETTERS:
            o = r.get(letter)
            if o is None or (isinstance(o, float) and o != o) or not str(o).strip():
                raise ValueError(f"{where}: answer option {letter} is missing")
            opts.append(str(o).strip())
        ans = str(r.get("answer") or "").strip().upper()
        if ans not in LETTERS:
            raise ValueError(f"{where}: answer {r.get('answer')!r} is not one of A, B, C, D")
        image = _image_bytes(r.get("image", r.get("image_path")), path.parent, where)
        rows.append(
            {
                "question": str(q).strip(),
                "options": opts,
                "answer": LETTERS.index(ans),
                "image": image,
                "category": str(r.get("category") or "all").strip().replace(" ", "_"),
                "where": where,
            }
        )
    return rows


@register("vmcbench", modality="vision-language")
def vmcbench(ctx: EvalContext, path: str = "vmcbench.parquet", score: str = "option") -> dict:
    if score not in ("option", "letter"):
        raise ValueError(f"vmcbench: score must be 'option' or 'letter', not {score!r}")
    rows = load_vmcbench(resolve(ctx, path))
    if ctx.max_examples:
        rows = rows[: ctx.max_examples]
    m, tok = ctx.model, ctx.tokenizer
    prompts, options, images = [], [], []
    for r in rows:
        text = f"Question: {r['question']}"
        if score == "letter":
            listed = " ".join(f"{k}. {o}" for k, o in zip(LETTERS, r["options"], strict=True))
            text += f" Options: {listed}"
            options.append([encode_text(tok, f" {k}") for k in LETTERS])
        else:
            options.append([encode_text(tok, " " + o) for o in r["options"]])
        head = list(m.layout.prefix)
        if r["image"] is not None:
            slots, pixels = image_prompt(m, r["image"], r["where"])
            images.append(pixels)
            head += slots
        else:
            images.append(None)
        prompts.append(head + encode_text(tok, text + " Answer:"))
    picks = multiple_choice(m, prompts, options, images, ctx.device, ctx.batch_size)
    return accuracy_by_type(picks, [r["answer"] for r in rows], [r["category"] for r in rows])
