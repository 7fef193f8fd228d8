"""The defects curation must remove, injected into a clean corpus with known labels.

`inject_noise` returns the clean documents untouched plus extra defective ones, each a
new document with a unique id and `metadata["defect"]` naming its kind (the NoiseConfig
field names); copies also carry `metadata["duplicate_of"]` (exact/near duplicates) or
`metadata["source_of"]` (the other kinds) with the original's id. A kind's share is
relative to the clean count: `round(share * len(docs))` extra documents. Image defects
draw only from documents that carry images; text defects from any document. All
randomness comes from the `random.Random` passed in, so a seed fixes the output.
"""

from __future__ import annotations

import copy
import io
import random

from PIL import Image

from vloom.config import NoiseConfig
from vloom.doc import Document

KINDS = tuple(NoiseConfig.model_fields)

_SWAPS = {
    "red": "crimson",
    "blue": "azure",
    "green": "emerald",
    "small": "tiny",
    "large": "big",
    "circle": "disc",
    "square": "box",
    "left": "right",
    "above": "over",
    "the": "this",
    "a": "one",
}

_SPAM_LINES = (
    "Buy now! Click here for cheap shapes",
    "CHEAP SHAPES cheap circles discount squares best price",
    "Click here... limited offer...",
    "#deal #cheap #shapes #sale #free #win",
    "Home | Shop | Cart | Login | Contact",
    "Copyright 2024 ShapeMart. All rights reserved",
    "FREE SHIPPING!!! $$$ 100% OFF $$$",
    "Subscribe Subscribe Subscribe",
    "Best deals best deals best deals",
    "Download free triangles now...",
)
_MENU = ("Home", "Shop", "Deals", "Circles", "Squares", "Triangles", "Cart", "Login", "Contact")

_PHRASES = {
    "fr": {
        "colour": ["rouge", "bleu", "vert", "jaune", "violet"],
        "shape": ["cercle", "carré", "triangle", "losange"],
        "templates": [
            "Sur cette image, on voit un {shape} {colour} à côté d'un {shape2} {colour2}.",
            "Le {shape} {colour} est placé au-dessus du {shape2} {colour2}.",
            "Il y a aussi un petit {shape} {colour} dans le coin de la scène.",
            "Nous avons compté les formes et le {shape} {colour} est le plus grand.",
        ],
    },
    "de": {
        "colour": ["roter", "blauer", "grüner", "gelber", "violetter"],
        "shape": ["Kreis", "Würfel", "Stern", "Kegel"],
        "templates": [
            "Auf diesem Bild sieht man einen {colour} {shape} neben einem {colour2} {shape2}.",
            "Der {colour} {shape} liegt über dem {colour2} {shape2}.",
            "In der Ecke der Szene gibt es außerdem einen kleinen {colour} {shape}.",
            "Wir haben die Formen gezählt und der {colour} {shape} ist am größten.",
        ],
    },
    "es": {
        "colour": ["rojo", "azul", "verde", "amarillo", "morado"],
        "shape": ["círculo", "cuadrado", "triángulo", "rombo"],
        "templates": [
            "En esta imagen se ve un {shape} {colour} junto a un {shape2} {colour2}.",
            "El {shape} {colour} está encima del {shape2} {colour2}.",
            "También hay un pequeño {shape} {colour} en la esquina de la escena.",
            "Contamos las formas y el {shape} {colour} es el más grande.",
        ],
    },
}


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _copy(doc: Document, kind: str, k: int, link: str = "source_of") -> Document:
    new = copy.deepcopy(doc)
    new.id = f"{doc.id}-{kind}{k}"
    new.metadata.pop("defect", None)
    new.metadata["defect"] = kind
    new.metadata[link] = doc.id
    return new


def _image_slots(doc: Document) -> list[int]:
    return [i for i, im in enumerate(doc.images) if im is not None]


def _near_duplicate(doc: Document, k: int, rng: random.Random) -> Document:
    new = _copy(doc, "near_duplicate", k, link="duplicate_of")
    slots = [i for i, t in enumerate(new.texts) if t and t.split()]
    if not slots:
        new.texts.append("(edited)")
        new.images.append(None)
        return new
    n_edits = rng.randint(2, 4)
    for _ in range(n_edits):
        i = rng.choice(slots)
        words = new.texts[i].split()  # type: ignore[union-attr]
        j = rng.randrange(len(words))
        w = words[j]
        if w.lower() in _SWAPS:
            words[j] = _SWAPS[w.lower()]
        elif len(words) > 1:
            j2 = rng.randrange(len(words))
            words[j], words[j2] = words[j2], words[j]
        else:
            words[j] = w + "s"
        new.texts[i] = " ".join(words)
    if new.text == doc.text:  # a swap of equal words changed nothing: force one visible edit
        i = slots[0]
        new.texts[i] = "Indeed, " + new.texts[i]  # type: ignore[operator]
    return new


def spam_text(rng: random.Random) -> str:
    """A boilerplate page: menus, shouting offers, trailing ellipses, hashtags, footer."""
    style = rng.randrange(4)
    lines: list[str] = []
    if style == 0:  # a navigation menu of bullets
        lines = [f"• {rng.choice(_MENU)}" for _ in range(rng.randint(8, 20))]
    elif style == 1:  # offers that trail off
        lines = [f"{rng.choice(_SPAM_LINES).rstrip('.')}..." for _ in range(rng.randint(6, 15))]
    elif style == 2:  # hashtag soup
        tags = ["#cheap", "#shapes", "#deal", "#sale", "#free", "#win", "#circle", "#promo"]
        lines = [" ".join(rng.choice(tags) for _ in range(8)) for _ in range(rng.randint(4, 10))]
    else:  # keyword stuffing with no sentences
        lines = [rng.choice(_SPAM_LINES) for _ in range(rng.randint(5, 12))]
        lines += [" | ".join(rng.sample(_MENU, 5))]
    lines.append("Copyright 2024 ShapeMart. All rights reserved")
    return "\n".join(lines)


def foreign_text(rng: random.Random, lang: str, min_sentences: int = 4) -> str:
    bank = _PHRASES[lang]
    sents = []
    for _ in range(rng.randint(min_sentences, 8)):
        sents.append(
            rng.choice(bank["templates"]).format(
                colour=rng.choice(bank["colour"]),
                colour2=rng.choice(bank["colour"]),
                shape=rng.choice(bank["shape"]),
                shape2=rng.choice(bank["shape"]),
            )
        )
    return " ".join(sents)


def _broken_bytes(good: bytes, rng: random.Random) -> bytes:
    if rng.random() < 0.5 and len(good) > 16:
        return good[: rng.randint(8, len(good) // 2)]  # truncated: header present, data cut
    return bytes(rng.randrange(256) for _ in range(rng.randint(16, 256)))


def _tiny_png(rng: random.Random) -> bytes:
    colour = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
    return _png(Image.new("RGB", (2, 2), colour))


def inject_noise(docs: list[Document], cfg: NoiseConfig, rng: random.Random) -> list[Document]:
    """The clean docs plus labelled defective ones, shuffled by `rng` (deterministic)."""
    n = len(docs)
    with_images = [d for d in docs if d.n_images > 0]
    out: list[Document] = list(docs)
    if n == 0:
        return out

    def pick(pool: list[Document], count: int) -> list[Document]:
        if count <= len(pool):
            return rng.sample(pool, count)
        return [rng.choice(pool) for _ in range(count)]

    for kind in KINDS:
        count = round(getattr(cfg, kind) * n)
        image_kind = kind in ("broken_image", "tiny_image", "unrelated_image")
        pool = with_images if image_kind else docs
        if count == 0 or not pool:
            continue
        for k, src in enumerate(pick(pool, count)):
            if kind == "exact_duplicate":
                new = _copy(src, kind, k, link="duplicate_of")
            elif kind == "near_duplicate":
                new = _near_duplicate(src, k, rng)
            elif kind == "spam":
                new = Document.from_items(
                    f"{src.id}-spam{k}",
                    [spam_text(rng)],
                    source=src.source,
                    url=src.url,
                    language=src.language,
                    metadata={"defect": kind, "source_of": src.id},
                )
            elif kind == "foreign_language":
                new = _copy(src, kind, k)
                lang = rng.choice(sorted(_PHRASES))
                # >= 5 sentences (C4's page minimum): only its language tells the defect apart,
                # so the language step is what catches it, not a sentence count by chance
                new.texts = [
                    foreign_text(rng, lang, 5) if t is not None else None for t in new.texts
                ]
                new.metadata["true_language"] = lang  # `language` stays mislabeled, as on the web
            else:
                new = _copy(src, kind, k)
                slot = rng.choice(_image_slots(new))
                if kind == "broken_image":
                    new.images[slot] = _broken_bytes(new.images[slot] or b"", rng)
                elif kind == "tiny_image":
                    new.images[slot] = _tiny_png(rng)
                else:  # unrelated_image: an image from another document
                    others = [d for d in with_images if d.id != src.id]
                    if not others:
                        continue
                    other = rng.choice(others)
                    new.images[slot] = other.images[rng.choice(_image_slots(other))]
            out.append(new)
    rng.shuffle(out)
    return out
