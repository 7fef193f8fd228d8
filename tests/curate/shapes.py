"""Small realistic documents about coloured shapes, for curation tests (no mocks: real PNGs)."""

from __future__ import annotations

import io
import random

from PIL import Image, ImageDraw

from vloom.doc import Document

COLOURS = {
    "red": (220, 30, 30),
    "blue": (30, 60, 220),
    "green": (30, 160, 60),
    "yellow": (230, 210, 40),
    "purple": (140, 50, 160),
    "orange": (240, 140, 20),
}
SHAPES = ("circle", "square", "triangle")
SENTENCES = (
    "The {c1} {s1} sits to the left of the {c2} {s2}.",
    "A small {c1} {s1} is drawn above the large {c2} {s2}, and it has a thin dark outline.",
    "In this scene we can see that the {c1} {s1} is close to the {c2} {s2}.",
    "Each shape has a solid colour and a clear edge, which makes the picture easy to describe.",
    "The background is plain white, so the {c1} {s1} stands out against it.",
    "If you look carefully, the {c2} {s2} is slightly bigger than the {c1} {s1}.",
    "Children often learn the names of colours by pointing at shapes like these.",
    "There is nothing else in the picture except the {c1} {s1} and the {c2} {s2}.",
)


def prose(rng: random.Random, n_sentences: int = 7) -> str:
    out = []
    for _ in range(n_sentences):
        c1, c2 = rng.sample(sorted(COLOURS), 2)
        s1, s2 = rng.choice(SHAPES), rng.choice(SHAPES)
        out.append(rng.choice(SENTENCES).format(c1=c1, c2=c2, s1=s1, s2=s2))
    return " ".join(out)


def shape_png(rng: random.Random, size: int = 32) -> bytes:
    img = Image.new("RGB", (size, size), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    colour = COLOURS[rng.choice(sorted(COLOURS))]
    x0, y0 = rng.randint(0, size // 2), rng.randint(0, size // 2)
    x1, y1 = x0 + rng.randint(6, size // 2), y0 + rng.randint(6, size // 2)
    shape = rng.choice(SHAPES)
    if shape == "circle":
        draw.ellipse((x0, y0, x1, y1), fill=colour)
    elif shape == "square":
        draw.rectangle((x0, y0, x1, y1), fill=colour)
    else:
        draw.polygon([(x0, y1), (x1, y1), ((x0 + x1) // 2, y0)], fill=colour)
    # a few random pixels make every image distinct, like real photos
    for _ in range(4):
        img.putpixel(
            (rng.randrange(size), rng.randrange(size)), tuple(rng.randrange(256) for _ in range(3))
        )
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def clean_docs(
    n: int, seed: int = 0, image_share: float = 0.7, prefix: str = "doc"
) -> list[Document]:
    """`n` documents of >= 60 words; about `image_share` of them interleave 1-3 PNG images."""
    rng = random.Random(seed)
    docs = []
    for i in range(n):
        items: list[str | bytes] = [prose(rng, rng.randint(6, 8))]
        if rng.random() < image_share:
            for _ in range(rng.randint(1, 3)):
                items += [shape_png(rng), prose(rng, 2)]
        docs.append(
            Document.from_items(f"{prefix}{i:05d}", items, source="test", url=f"https://x.test/{i}")
        )
    return docs
