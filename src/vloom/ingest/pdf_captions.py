"""Captions of a PDF page's kept images: which text block is an image's caption.

A caption leaves the page's text for its image's `caption` field, as in HTML ingest (pack puts it
back right after the image, `vloom.pack.captions`). A caption is one text block that:
- is the nearest text block right below the image (or right above: tables and some house styles
  caption from above) among those overlapping it horizontally, within LABEL_GAP font sizes of
  it, and starts with a numbered label: "Figure 3:", "Fig. 2.1", "Table IV.", "Abbildung 4",
  "Tabla 2", "Рис. 5", "图 1"... (the word alone is not enough: "Table of contents" and "Figure
  out" are prose; pdffigures2 also needs the number after the word); or
- is unlabelled but short (one or two lines, at most SHORT_CHARS characters) right below the
  image (within SHORT_GAP font sizes), centred under it, in a font no larger than the page's
  body text (a heading is not a caption), narrower than the page's widest text block (a line of
  prose below a centred image is centred too), not starting in lower case (the sentence goes on
  from above) nor ending with ":" (it introduces what follows): "Henle (2000)", "(Image source:
  Ted Ross)" under an engraving.
Distances are from the figure: the image's box grown by its own text drawn over or against it
(axis ticks and labels of a plot: short blocks in a smaller font than the body's, which stay in
the text). Each block captions at most one image, each image has at most one caption block. Text
blocks beside an image (instructions next to a screenshot) are never captions; nor are code
blocks, nor unlabelled blocks of mostly digits and punctuation (axis ticks).
"""

from __future__ import annotations

import re
from collections import Counter

from vloom.ingest.pdf_layout import Block

LABEL_GAP = 3.0  # font sizes between an image and its labelled caption
SHORT_GAP = 2.0  # ... and an unlabelled one
SHORT_CHARS = 160
SHORT_LINES = 2.6  # font sizes of height: two lines at most
CENTRED = 0.15  # centre offset allowed, as a share of the wider of image and caption
NOT_FULL_WIDTH = 0.85  # an unlabelled caption is narrower than this share of the widest block
LETTERS = 1 / 3  # share of an unlabelled caption's characters that are letters, at least
FIGURE_TEXT_CHARS = 40  # a figure's own text (axis labels) drawn over or against its image

_WORDS = (
    # en / fr / es / pt / it / nl / scandinavian / de / pl / cs / tr / ru
    r"figures?|fig\.?|figs\.?|figura|figuur|figur|table|tab\.|tableau|tabla|tabela|tabella|"
    r"tabell|tabel|tabelle|tabulka|tablo|plate|chart|diagram|exhibit|image|imagen|imagem|"
    r"immagine|illustration|ilustraci[oó]n|ilustra[cç][aã]o|illustrazione|abbildung|abb\.|"
    r"bild|grafik|gr[aá]fico|cuadro|afbeelding|rysunek|rys\.|obr[aá]zek|obr\.|[sş]ekil|"
    r"рисунок|рис\.|таблица|табл\.|схема"
)
# the label word, then a number: 3, 2.1, 4-1, A.2, S1, 3a, IV; then punctuation, a space or the end
_LABEL = re.compile(
    rf"^(?:(?:{_WORDS})\s*(?:no\.?\s*)?(?:[a-z]?\d+(?:[.\-\u2013]\d+)*[a-z]?|[ivxlc]+)"
    r"|[图圖図表]\s*\d+(?:[.\-]\d+)*)(?=[\s:.\-\u2013\u2014)\uff1a]|$)",
    re.IGNORECASE,
)


def is_labelled(text: str) -> bool:
    """Whether `text` starts with a numbered caption label ("Figure 1:", "Tabelle 3.2")."""
    return _LABEL.match(text) is not None


def body_size(texts: list[Block]) -> float:
    """The font size of most of the page's text (by characters)."""
    sizes: Counter = Counter()
    for t in texts:
        sizes[round(t.size, 1)] += len(t.text or "")
    return sizes.most_common(1)[0][0] if sizes else 0.0


def find_captions(images: list[Block], texts: list[Block]) -> dict[int, Block]:
    """{id(image): its caption block} for the page's kept `images` among its `texts` (running
    headers and footers already left out)."""
    texts = [t for t in texts if t.text and not t.mono and t.size > 0]
    if not images or not texts:
        return {}
    body = body_size(texts)
    widest = max(t.bbox[2] - t.bbox[0] for t in texts)
    used: set[int] = set()
    out: dict[int, Block] = {}
    for im in images:
        box, inside = _figure_box(im, texts, body)
        below, above = _nearest(box, [t for t in texts if id(t) not in inside])
        found = None
        near = [x for x in (below, above) if x is not None and id(x[1]) not in used]
        for gap, t in sorted(near, key=lambda x: x[0]):
            if gap <= LABEL_GAP * t.size and is_labelled(t.text or ""):
                found = t
                break
        if found is None and below is not None and id(below[1]) not in used:
            gap, t = below
            if gap <= SHORT_GAP * t.size and _short_centred(im, t, body, widest):
                found = t
        if found is not None:
            used.add(id(found))
            out[id(im)] = found
    return out


def _figure_box(
    im: Block, texts: list[Block], body: float
) -> tuple[tuple[float, float, float, float], set[int]]:
    """The image's box grown by the figure's own text drawn over or against it (axis ticks and
    labels: short, in a font smaller than the body's), and those blocks' ids: the caption is
    looked for beyond them."""
    x0, y0, x1, y1 = im.bbox
    inside: set[int] = set()
    grown = True
    while grown:
        grown = False
        for t in texts:
            if id(t) in inside or t.size >= body or len(t.text or "") > FIGURE_TEXT_CHARS:
                continue
            tx0, ty0, tx1, ty1 = t.bbox
            near = 0.25 * t.size
            if tx0 < x1 + near and tx1 > x0 - near and ty0 < y1 + near and ty1 > y0 - near:
                inside.add(id(t))
                x0, y0, x1, y1 = min(x0, tx0), min(y0, ty0), max(x1, tx1), max(y1, ty1)
                grown = True
    return (x0, y0, x1, y1), inside


def _nearest(
    box: tuple[float, float, float, float], texts: list[Block]
) -> tuple[tuple[float, Block] | None, tuple[float, Block] | None]:
    """(gap, block) of the nearest text block below and above `box` that overlaps it
    horizontally (a block may reach half its font size into the box)."""
    x0, y0, x1, y1 = box
    below = above = None
    for t in texts:
        tx0, ty0, tx1, ty1 = t.bbox
        if min(x1, tx1) - max(x0, tx0) <= 0:
            continue
        slack = 0.5 * t.size
        gap = ty0 - y1
        if gap >= -slack and (below is None or gap < below[0]):
            below = (max(gap, 0.0), t)
        gap = y0 - ty1
        if gap >= -slack and (above is None or gap < above[0]):
            above = (max(gap, 0.0), t)
    return below, above


def _short_centred(im: Block, t: Block, body: float, widest: float) -> bool:
    text = t.text or ""
    if len(text) > SHORT_CHARS or t.bbox[3] - t.bbox[1] > SHORT_LINES * t.size:
        return False
    if text[:1].islower() or text.rstrip().endswith(":") or t.size > body + 0.5:
        return False
    letters = sum(c.isalpha() for c in text)
    if letters < LETTERS * sum(not c.isspace() for c in text):
        return False  # axis ticks, numbers, a URL's punctuation: not a caption
    wi, wt = im.bbox[2] - im.bbox[0], t.bbox[2] - t.bbox[0]
    if wt > NOT_FULL_WIDTH * widest:
        return False
    offset = abs((t.bbox[0] + t.bbox[2]) / 2 - (im.bbox[0] + im.bbox[2]) / 2)
    return offset <= CENTRED * max(wi, wt) + 1.0
