"""Small real inputs for the `data:` tests: OBELICS documents and HTML pages with PNG images,
each document carrying a unique marker word so tests can find it in packed tokens."""

from __future__ import annotations

import io
import random
from pathlib import Path

from PIL import Image

from vloom.doc import Document, write_documents

WORDS = (
    "the of and to in is that it for on with as was at by this from are be or have an "
    "which one you were her all she there would their we him been has when who will more no "
    "if out so said what up its about into than them can only other new some could time "
    "these two may then do first any my now such like our over man me even most made after "
    "also did many before must through back years where much your way well down should "
    "because each just those people how too little state good very make world still own see "
    "men work long get here between both life being under never day same another know while "
    "last might us great old year off come since against go came right used take three"
).split()


def marker(kind: str, i: int) -> str:
    """A word no prose contains: letters only (gopher's alphabetic-word rule)."""
    return f"qz{kind}" + "".join(chr(97 + int(c)) for c in f"{i:03d}")


def prose(rng: random.Random, mark: str, n_sentences: int = 10) -> str:
    out = []
    for k in range(n_sentences):
        words = [rng.choice(WORDS) for _ in range(rng.randint(8, 14))]
        if k == 0:
            words.insert(3, mark)
        out.append(" ".join(words).capitalize() + ".")
    return " ".join(out)


def png(rng: random.Random, side: int = 48) -> bytes:
    im = Image.new("RGB", (side, side), tuple(rng.randrange(256) for _ in range(3)))
    for _ in range(6):
        x, y = rng.randrange(side - 8), rng.randrange(side - 8)
        im.paste(tuple(rng.randrange(256) for _ in range(3)), (x, y, x + 8, y + 8))
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def write_obelics_dir(out: Path, n: int = 14, seed: int = 1) -> dict[str, str]:
    """n documents: interleaved (text, image, text), every third text only; returns id -> marker."""
    rng = random.Random(seed)
    docs, marks = [], {}
    for i in range(n):
        m = marker("doc", i)
        items = [prose(rng, m), png(rng), prose(rng, marker("docb", i), 4)]
        if i % 3 == 2:
            items = [prose(rng, m, 14)]
        docs.append(Document.from_items(f"obelics-{i:04d}", items, source="obelics"))
        marks[docs[-1].id] = m
    write_documents(out, docs, shard_size=5)
    return marks


def write_html_dir(out: Path, n: int = 12, seed: int = 2) -> dict[str, str]:
    """n pages, each with a captioned figure; returns page file name -> marker."""
    rng = random.Random(seed)
    out.mkdir(parents=True, exist_ok=True)
    marks = {}
    for i in range(n):
        (out / f"fig{i}.png").write_bytes(png(rng))
        m = marker("page", i)
        page = (
            f"<html lang='en'><head><title>Page {i}</title></head><body><main>"
            f"<h1>Manual page {i}</h1><p>{prose(rng, m)}</p>"
            f"<figure><img src='fig{i}.png' alt='a square'>"
            f"<figcaption>A coloured square with small patches, figure {i}.</figcaption></figure>"
            f"<p>{prose(rng, marker('pageb', i), 4)}</p></main></body></html>"
        )
        (out / f"page{i:02d}.html").write_text(page)
        marks[f"page{i:02d}.html"] = m
    return marks
