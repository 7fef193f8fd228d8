"""The run report's gallery: held-out scenes as the model saw them, with its answers.

From the run's per-example records (RUN/examples/<task>.jsonl) of each multiple-choice image
task: up to `k` examples it got right and `k` it got wrong, chosen by a hash of the example id
(the same scenes on every rebuild, not the first rows, which a generator may order by type).
Each shows the image (a thumbnail read from the eval set the record points to), the
question, every option with the model's share of the option probability (softmax of its
summed log-probs), its answer, the right one, and the control's answer when it has records.
"""

from __future__ import annotations

import hashlib
import io
import math
import shutil
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from PIL import Image

from vloom.media import ImageError, decode_image
from vloom.ondisk import atomic_write_bytes
from vloom.report.tables import md_table

THUMB = 128  # px, the longer side of one image


def choose(recs: list[dict[str, Any]], k: int) -> list[dict[str, Any]]:
    """Up to k right and k wrong records, by hash of id, right ones first."""
    usable = [r for r in recs if r.get("options") and r.get("scores") and "image" in r]
    key = lambda r: hashlib.sha1(str(r.get("id")).encode()).hexdigest()  # noqa: E731
    right = sorted((r for r in usable if r.get("correct")), key=key)[:k]
    wrong = sorted((r for r in usable if not r.get("correct")), key=key)[:k]
    return right + wrong


def option_shares(scores: list[float]) -> list[float]:
    """Softmax of summed log-probs: each option's share of the options' probability."""
    top = max(scores)
    e = [math.exp(s - top) for s in scores]
    return [x / sum(e) for x in e]


class _ImageSource:
    """Image cells of eval Parquet files, each (file, column) read once."""

    def __init__(self) -> None:
        self._cols: dict[tuple[str, str], list[Any] | None] = {}

    def images(self, ref: dict[str, Any]) -> list[bytes]:
        key = (str(ref.get("path")), str(ref.get("column", "image")))
        if key not in self._cols:
            try:
                self._cols[key] = pq.read_table(key[0], columns=[key[1]]).column(0).to_pylist()
            except (OSError, KeyError, ValueError):  # the eval set moved or changed
                self._cols[key] = None
        col, row = self._cols[key], ref.get("row")
        if col is None or not isinstance(row, int) or not 0 <= row < len(col):
            return []
        cell = col[row]
        cells = cell if isinstance(cell, list) else [cell]
        return [c for c in cells if isinstance(c, bytes)]


def thumbnail(images: list[bytes]) -> bytes | None:
    """The images side by side, each THUMB px on its longer side, as PNG bytes (None: none
    decodes)."""
    pics = []
    for data in images:
        try:
            im = decode_image(data)
        except ImageError:
            continue
        scale = THUMB / max(im.size)  # small eval images are enlarged, big ones shrunk
        size = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
        pics.append(im.resize(size, Image.Resampling.NEAREST))  # keep the pixels crisp
    if not pics:
        return None
    gap = 4
    w = sum(p.width for p in pics) + gap * (len(pics) - 1)
    sheet = Image.new("RGB", (w, max(p.height for p in pics)), "white")
    x = 0
    for p in pics:
        sheet.paste(p, (x, 0))
        x += p.width + gap
    buf = io.BytesIO()
    sheet.save(buf, format="PNG")
    return buf.getvalue()


def _options_cell(rec: dict[str, Any]) -> str:
    shares = option_shares([float(s) for s in rec["scores"]])
    parts = []
    for j, (opt, p) in enumerate(zip(rec["options"], shares, strict=False)):
        mark = " ✓" if j == rec.get("answer") else ""
        text = f"{opt} {p:.2f}{mark}"
        parts.append(f"**{text}**" if j == rec.get("pick") else text)
    return "; ".join(parts)


def _answer(rec: dict[str, Any] | None) -> str:
    if rec is None or not isinstance(rec.get("pick"), int):
        return ""
    opts = rec.get("options") or []
    name = opts[rec["pick"]] if rec["pick"] < len(opts) else "?"
    return f"{name} ({'right' if rec.get('correct') else 'wrong'})"


def gallery_section(
    run_dir: Path,
    examples: dict[str, list[dict[str, Any]]],
    control: dict[str, list[dict[str, Any]]] | None,
    out_dir: Path,
    k: int = 3,
) -> list[str]:
    """Markdown parts of the gallery; thumbnails go to `out_dir` (emptied first)."""
    shutil.rmtree(out_dir, ignore_errors=True)  # no stale thumbnails from an earlier report
    source = _ImageSource()
    out: list[str] = []
    for task in sorted(examples):
        chosen = choose(examples[task], k)
        if not chosen:
            continue
        ctrl = {r.get("id"): r for r in (control or {}).get(task) or []}
        rows = []
        for rec in chosen:
            png = thumbnail(source.images(rec["image"]))
            if png is None:
                pic = "(image not available)"
            else:
                name = "".join(
                    c if c.isalnum() or c in "-_" else "_" for c in f"{task}-{rec['id']}"
                )
                path = atomic_write_bytes(out_dir / f"{name}.png", png)
                pic = f"![{task} {rec['id']}]({path.relative_to(run_dir).as_posix()})"
            row = [pic, rec.get("question") or "", _options_cell(rec), _answer(rec)]
            if control is not None:
                row.append(_answer(ctrl.get(rec.get("id"))))
            rows.append(row)
        header = ["scene", "question", "options (model's share; bold: its answer, ✓ right)"]
        header += ["model's answer"] + (["control's answer"] if control is not None else [])
        n_right = sum(1 for r in chosen if r.get("correct"))
        out.append(f"### {task}\n")
        out.append(
            f"{n_right} answered right and {len(chosen) - n_right} wrong, of "
            f"{len(examples[task])} held-out examples (chosen by a hash of the example id).\n"
        )
        out.append(md_table(header, rows, align="left"))
    return out
