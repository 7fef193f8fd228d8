"""Page layout for the pdf source: text blocks, reading order, reflow and running headers.

Reading order within a page is a recursive XY-cut: split the page at its widest empty band (a
horizontal band splits rows, a vertical one columns), so two-column papers read column by column
and a figure lands between the paragraphs it stands between. The unit is MuPDF's block, split
where its lines fall into side-by-side columns of real text (MuPDF may join lines of two columns
that share baselines; a bullet or a list number beside its item is not a column). What it costs:
boxes that overlap (text over a background image) have no band to split at and fall back to
top-to-bottom, left-to-right order; a table reads column by column. A block's wrapped lines are
joined into one line (hyphenated words rejoined; list items and monospaced blocks keep their line
breaks), and so is a sentence that a page or column break cut in two.

Running headers and footers: a line in the top or bottom margin that recurs, digits aside, on at
least MIN_REPEATS pages ("Chapter 2 · Setup", page numbers).
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pymupdf

SCANNED_COVERAGE = 0.5  # share of the page covered by images on a page without text
_MAX_XY_BOXES = 2000  # beyond this many blocks on one page, plain top-to-bottom order
MARGIN = 0.08  # top and bottom share of the page where running headers and footers live
MIN_REPEATS = 3  # pages a margin line must recur on to count as a running header/footer
WIDE_MARGIN = 0.12  # ... or the page's first/last line of text, if it ends within this share
_SAME_LINE = 2.0  # points: blocks starting this close to the page's first line are on it
_APART = 1.5  # ... and a first line stands apart unless its gap is within this factor of the next
_DIGITS = re.compile(r"\d+")
_ROMAN = re.compile(r"[ivxlcdm]+")
_MONOSPACED = 8  # PyMuPDF span flag bit
# a line that starts a list item: a bullet or dash, "3." / "(3)" / "b)"
_LIST_ITEM = re.compile(
    r"^(?:[\u2022\u00b7\u2023\u25e6\u25aa\u25cf\u25a0*\-\u2013\u2014]|\(?\d{1,3}[.)]|\(?[a-z][.)])(?:\s|$)"
)
_TEXT_FLAGS = pymupdf.TEXTFLAGS_DICT & ~pymupdf.TEXT_PRESERVE_IMAGES


@dataclass(slots=True)
class Block:
    bbox: tuple[float, float, float, float]
    text: str | None = None
    image: dict[str, Any] | None = None  # an image placement (see pdf_images), no bytes
    mono: bool = False  # all monospaced: code or terminal output
    size: float = 0.0  # font size of the block's first span with text (caption detection)


def text_blocks(
    page: pymupdf.Page,
    dl: pymupdf.DisplayList | None = None,
    tp: pymupdf.TextPage | None = None,
) -> list[Block]:
    """The page's text blocks (split into columns, reflowed); images are not extracted here.
    `dl`: the page's display list, when the caller reads it for more than text; `tp`: a text
    page of the page already made, holding no image blocks (they split text blocks)."""
    if tp is None and dl is not None:
        tp = textpage(page, dl, _TEXT_FLAGS)
    out: list[Block] = []
    for b in page.get_text("dict", flags=_TEXT_FLAGS, sort=False, textpage=tp)["blocks"]:
        if b["type"] != 0:
            continue
        lines = []
        mono = True  # every span with text monospaced (a line with text has such a span)
        size = 0.0
        for ln in b.get("lines", ()):
            spans = ln["spans"]
            text = "".join([s["text"] for s in spans]).strip()
            if not text:
                continue
            lines.append((tuple(ln["bbox"]), text))
            if not size:
                size = next(s["size"] for s in spans if s["text"].strip())
            if mono:
                mono = all(s["flags"] & _MONOSPACED or not s["text"].strip() for s in spans)
        mono = mono and bool(lines)
        for part in _columns(lines):
            x0 = min(bb[0] for bb, _ in part)
            y0 = min(bb[1] for bb, _ in part)
            x1 = max(bb[2] for bb, _ in part)
            y1 = max(bb[3] for bb, _ in part)
            text = _reflow([t for _, t in part], mono)
            out.append(Block((x0, y0, x1, y1), text=text, mono=mono, size=size))
    return out


def textpage(page: pymupdf.Page, dl: pymupdf.DisplayList, flags: int) -> pymupdf.TextPage:
    """A text page of `page` built from its display list (the content stream is interpreted
    once for every text page made from it); the same text page MuPDF builds from the page."""
    tp = pymupdf.TextPage(dl.get_textpage(flags=flags))
    tp.parent = page  # what page.get_text(textpage=...) checks
    return tp


def margin_lines(
    blocks: Iterable[Block], rect: pymupdf.Rect, strict: bool = True
) -> list[tuple[str, list[Block]]]:
    """One page's candidate running headers and footers, each as (normalised key, its blocks):
    every text block in the MARGIN bands, and at an end of the page with none there, the
    page's first (last) line of text (its blocks side by side, as one key) when it lies within
    WIDE_MARGIN, stands apart (see _apart) and is set no larger than most of the page's blocks
    (a heading is). Erlang/OTP's manuals set their headers 83 pt down an 842 pt page and their
    footers 74 pt up; a label beside a code line is one line with it. Not `strict` (a page
    whose running lines are known): the line need not stand further apart than the next."""
    texts = [b for b in blocks if b.text is not None]
    band, wide = MARGIN * rect.height, WIDE_MARGIN * rect.height
    top = [b for b in texts if b.bbox[3] <= rect.y0 + band]
    foot = [b for b in texts if b.bbox[1] >= rect.y1 - band and b.bbox[3] > rect.y0 + band]
    out = [(_norm(b.text), [b]) for b in top + foot]
    if len(out) == len(texts) or (top and foot):
        return out
    rest = [b for b in texts if b.bbox[3] > rect.y0 + band and b.bbox[1] < rect.y1 - band]
    body = statistics.median_low(b.size for b in rest)  # no larger: not a heading
    # each end of the page without a margin line, as distances from that edge
    ends = [] if top else [[(b.bbox[1] - rect.y0, b.bbox[3] - rect.y0, b) for b in rest]]
    if not foot:
        ends.append([(rect.y1 - b.bbox[3], rect.y1 - b.bbox[1], b) for b in rest])
    for spans in ends:
        line = _apart(sorted(spans, key=lambda t: t[0]), wide, strict)
        if line and all(b.size <= body for b in line) and (not out or line != out[-1][1]):
            out.append((_line_key(line), line))
    return out


def _apart(spans: list[tuple[float, float, Block]], wide: float, strict: bool) -> list[Block]:
    """The blocks of the first line (spans sorted by their distance from the page's edge) if
    the line ends within `wide` of the edge and stands apart from the text after it: a gap of
    at least its own height and, if `strict`, not about the gap after the next line (a body
    line that opens or closes a page, or an item of a loose list, sits as close to its
    neighbours as they do to theirs)."""
    lines: list[tuple[float, float, list[Block]]] = []
    for start, end, b in spans:
        if lines and start <= lines[-1][0] + _SAME_LINE:
            s0, e0, bs = lines[-1]
            lines[-1] = (s0, max(e0, end), bs + [b])
        elif len(lines) == 3:
            break
        else:
            lines.append((start, end, [b]))
    if not lines or lines[0][1] > wide:
        return []
    start, end, first = lines[0]
    if len(lines) == 1:
        return first
    gap = lines[1][0] - end
    if gap < end - start:
        return []
    if strict and len(lines) == 3:
        after = lines[2][0] - lines[1][1]
        if after / _APART <= gap <= _APART * after:  # evenly spaced: a list, body lines
            return []
    return first


def _line_key(line: list[Block]) -> str:
    return _norm(" ".join(b.text or "" for b in sorted(line, key=lambda b: b.bbox[0])))


def margin_keys(blocks: Iterable[Block], rect: pymupdf.Rect) -> set[str]:
    """The normalised margin lines of one page (what running-header detection counts)."""
    return {key for key, _ in margin_lines(blocks, rect)}


def running_lines(counts: dict[str, int]) -> set[str]:
    """Margin lines (counted once per page) that recur on at least MIN_REPEATS pages."""
    return {k for k, n in counts.items() if n >= MIN_REPEATS}


def running_blocks(blocks: Iterable[Block], rect: pymupdf.Rect, running: set[str]) -> list[Block]:
    """One page's text blocks that are the PDF's running headers or footers."""
    return [b for key, line in margin_lines(blocks, rect, False) if key in running for b in line]


def _norm(text: str) -> str:
    """A margin line with its numbers blanked: "Page 3 of 9" and "Page 4 of 9" are one line,
    and so are the roman page numbers of front matter ("iv", "v")."""
    text = " ".join(text.lower().split())
    return "#" if _ROMAN.fullmatch(text) else _DIGITS.sub("#", text)


def continues(prev: str, nxt: str) -> bool:
    """Whether `nxt` carries on the sentence `prev` broke off (at a page break, a column end):
    `prev` ends mid-sentence (a letter, a comma, a hyphen) and `nxt` starts in lower case."""
    return bool(prev) and (prev[-1].isalpha() or prev[-1] in ",-") and nxt[:1].islower()


def join_split(prev: str, nxt: str) -> str:
    if len(prev) > 1 and prev[-1] == "-" and prev[-2].isalpha():
        return prev[:-1] + nxt
    return prev + " " + nxt


def _reflow(lines: list[str], mono: bool) -> str:
    """The wrapped lines of a paragraph as one line, as the text was written (and as line-based
    quality filters expect); a word hyphenated across lines is joined. List items keep their own
    lines; monospaced blocks (code, terminal output) keep every line break."""
    if mono:
        return "\n".join(lines)
    out = lines[0]
    for ln in lines[1:]:
        if _LIST_ITEM.match(ln):
            out += "\n" + ln
        else:
            out = join_split(out, ln) if ln[:1].islower() else out + " " + ln
    return out


def _columns(
    lines: list[tuple[tuple[float, ...], str]],
) -> list[list[tuple[tuple[float, ...], str]]]:
    """The lines of one block, split into side-by-side columns when they form columns of text.

    Lines are grouped by overlapping x-ranges; the split is kept only when every group holds a
    line wider than three line heights, so a bullet or "1." beside its item stays with it.
    """
    if len(lines) < 2:
        return [lines] if lines else []
    height = sorted(bb[3] - bb[1] for bb, _ in lines)[len(lines) // 2]
    order = sorted(range(len(lines)), key=lambda i: lines[i][0][0])
    groups: list[list[int]] = []
    reach = float("-inf")
    for i in order:
        x0, _, x1, _ = lines[i][0]
        if groups and x0 < reach:
            groups[-1].append(i)
        else:
            groups.append([i])
        reach = max(reach, x1) if len(groups[-1]) > 1 else x1
    wide = all(max(lines[i][0][2] - lines[i][0][0] for i in g) > 3 * height for g in groups)
    if len(groups) == 1 or not wide:
        return [lines]
    return [[lines[i] for i in sorted(g)] for g in groups]


def behind_text(blocks: list[Block], rect: pymupdf.Rect) -> set[int]:
    """ids of images covering half the page or more with text drawn over them."""
    page_area = abs(rect) or 1.0
    out = set()
    for b in blocks:
        if b.image is None or abs(pymupdf.Rect(b.bbox) & rect) < SCANNED_COVERAGE * page_area:
            continue
        box = pymupdf.Rect(b.bbox)
        for t in blocks:
            if t.text is not None and box.contains(
                pymupdf.Point((t.bbox[0] + t.bbox[2]) / 2, (t.bbox[1] + t.bbox[3]) / 2)
            ):
                out.add(id(b))
                break
    return out


def coverage(blocks: list[Block], rect: pymupdf.Rect) -> float:
    """Area of the page covered by image blocks (overlaps counted once per block, clipped)."""
    total = 0.0
    for b in blocks:
        if b.image is not None:
            total += abs(pymupdf.Rect(b.bbox) & rect)
    return total


def reading_order(boxes: list[tuple[float, float, float, float]]) -> list[int]:
    """Indices of `boxes` (x0, y0, x1, y1) in reading order by recursive XY-cut.

    Each region is split at its widest empty band across either axis (ties: the horizontal band,
    i.e. rows before columns); a region with no band is read top-to-bottom, left-to-right.
    Iterative, so a page of thousands of lines cannot exhaust the recursion limit.
    """
    if len(boxes) > _MAX_XY_BOXES:
        return sorted(range(len(boxes)), key=lambda i: (boxes[i][1], boxes[i][0]))
    out: list[int] = []
    stack = [list(range(len(boxes)))]
    while stack:
        idx = stack.pop()
        cut = _widest_gap(boxes, idx) if len(idx) > 1 else None
        if cut is None:
            out.extend(sorted(idx, key=lambda i: (boxes[i][1], boxes[i][0])))
            continue
        axis, pos = cut
        first = [i for i in idx if boxes[i][axis] < pos]
        second = [i for i in idx if boxes[i][axis] >= pos]
        stack.append(second)  # popped after `first`
        stack.append(first)
    return out


def _widest_gap(
    boxes: list[tuple[float, float, float, float]], idx: list[int]
) -> tuple[int, float] | None:
    """(axis, coordinate) of the widest empty band between boxes; axis 1 = y (rows), 0 = x."""
    best: tuple[float, int, float] | None = None
    for axis in (1, 0):
        spans = sorted((boxes[i][axis], boxes[i][axis + 2]) for i in idx)
        reach = spans[0][1]
        for lo, hi in spans[1:]:
            gap = lo - reach
            if gap > 0 and (best is None or gap > best[0]):
                best = (gap, axis, (reach + lo) / 2)
            reach = max(reach, hi)
    return None if best is None else (best[1], best[2])
