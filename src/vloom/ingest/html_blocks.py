"""Which of a page's blocks are main content: the selection after the DOM walk.

The walk (`html_extract`) emits a flat list of entries in reading order: text blocks (with their
character and link-text counts, and whether they are headings) and images. It also records, for
every container element it left, the entry range that element spans and its link count.
Selection then works on ranges and prefix sums, so it stays linear in the page:

0. Teasers go first: a linked headline with a short excerpt under it and nothing more, repeated
   (a "related posts" grid), so that the excerpts do not count as the page's prose.
1. Link lists go whole (navigation, "related" teasers, tag clouds, tables of contents): most of
   their text is link text and they hold several links (trafilatura's and readability's test),
   unless they also hold several paragraphs of prose (a section with a list of links in it).
   A data table's links are its data: a table whose rows hold text outside links beside their
   linked cells (a package list's descriptions) is no link list, and its cells stay through the
   edge and context rules (3, 4) wherever the column keeps them.
2. The main column: the deepest container that still holds most of the page's prose (blocks of
   100+ characters outside links), so header, sidebars and footers around it fall away without
   being named; a class/id that names an article body (entry-content, articleBody, ...) wins
   when it holds enough of that prose and a third of the column's text. The column then climbs
   while its parent adds prose and images rather than labels, or when it is one of a document's
   sections (a sibling of the same tag and class); prose a few containers outside it stays
   (readability's sibling rule).
   Pages without two paragraphs of prose in one container have no column and skip this step.
3. Edges of the column: short text after its last paragraph ("Share", "Leave a reply") goes,
   and short non-heading text before its first (a date line, a photo credit).
4. jusText's context rule: link-text blocks go, short blocks take the class of their nearest
   long neighbours (the page's edges count as bad), and a heading whose section lost everything
   ("Read also" over a dropped link list) goes with it.
5. A label that introduced a dropped link list ("Read also:") goes; so do calls to action among
   the last few blocks (subscribe, follow us on two social networks, get the app) and short
   lines that name a social network anywhere (share buttons).
6. The article's heading (the <title> repeats it, or the page's first <h1>) and its lead
   (prose between heading and the first kept text) stay, wherever the column was drawn.
Images are dropped only with a link list (teaser thumbnails): a manual's figures sit among
captions and short option names that weigh little as prose, and their text score says nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# a block with this many characters outside links (and under half link text) reads as prose
_PROSE_CHARS = 100
# a container with this share of link text and this many links is a link list...
_LINK_DENSITY = 0.6
_MIN_LINKS = 3
# ... unless it holds this many characters of prose
_LIST_PROSE = 400
# the main column: the deepest container with this share of the page's prose
_MAIN_SHARE = 0.8
# a named article body wins when it holds this share of the page's prose, and this share of the
# text that the column holds
_NAMED_SHARE = 0.5
_NAMED_TEXT = 1 / 3
# the column climbs into its parent while the labels it adds are under this share of the prose
# it adds, an image counting as this many characters of prose
_CLIMB_RATIO = 0.25
_IMAGE_PROSE = 100
# short text (characters) trimmed before the column's first paragraph and after its last
_EDGE_CHARS_BEFORE = 40
_EDGE_CHARS_AFTER = 40
# ... unless the text after the last paragraph is this many times the text up to it
_TAIL_RATIO = 2
# context rule: a block this much link text is bad; this many characters outside links make it
# good, this many near-good (below: short)
_LINK_BAD = 0.5
_GOOD_CHARS = 60
_NEAR_CHARS = 30
# the article's heading is looked for this many entries before the first kept text; prose of
# this many characters between the two is its lead
_TITLE_REACH = 12
_LEAD_CHARS = 80
_TITLE_SPLIT = re.compile(r"\s+[|\u2013\u2014\u00b7\u2022:\u00bb\u00ab/-]+\s+")
# a teaser's excerpt under its linked headline is shorter than this; a page's teasers repeat
_TEASER_CHARS = 300
_TEASER_REPEAT = 2
# a data table: this many rows, this share of them with this many characters outside links
# (some of them letters); none of its cells holds more than this many blocks
_TABLE_ROWS = 2
_TABLE_SHARE = 2 / 3
_ROW_TEXT = 8
_CELL_BLOCKS = 4
_LETTER = re.compile(r"[^\W\d_]")
_ROW_GROUPS = frozenset("tbody thead tfoot".split())
# a label of a dropped link list is shorter than this
_LABEL_CHARS = 100
# calls to action: looked for among the last this many kept blocks, each shorter than this
_CTA_TAIL = 3
_CTA_CHARS = 300
_CTA = re.compile(
    r"su(?:b)?s[ck]r[iy]|abonn|newsletter|follow us|folgen? sie uns|folge uns|s[ií]guenos|"
    r"suivez[- ]nous|sign(?:ing)? up|android|app store|google play|support(?:ing)? (?:us|our)",
    re.I,
)
# social networks: a call to action when a block names two, or is a short line naming one
_NETWORKS = re.compile(
    r"telegram|whatsapp|instagram|facebook|twitter|youtube|tiktok|linkedin|pinterest", re.I
)
# The same two without re.I, on text lowered first: the same matches at the same places (their
# letters are lower-case), several times faster than re.I, which cannot skip ahead by the
# alternatives' first letters. Exact unless the text holds a character that re.I matches to an
# ASCII letter but str.lower() does not lower to it alone (dotted and dotless i, long s, Kelvin
# sign; the first is also the one character whose lower-case is two): such text takes re.I.
_CTA_LOWER = re.compile(_CTA.pattern)
_NETWORKS_LOWER = re.compile(_NETWORKS.pattern)
_CASE_TWINS = re.compile("[\u0130\u0131\u017f\u212a]")


def _lowers_exactly(text: str) -> bool:
    return text.isascii() or _CASE_TWINS.search(text) is None


_NETWORK_LINE = 80
_SHARE_LINE = 50
# readability's sibling rule reaches prose this many enclosing containers (that add entries)
# out from the column
_SIBLING_LEVELS = 3
_COLUMN_TAGS = frozenset("div section article main body td table".split())
# class/id parts that name an article body (CMS vocabularies: WordPress, Drupal, schema.org)
_CONTENT_NAME = re.compile(
    r"(?:^|[\s_-])(?:(?:entry|post|article|story|blog|page|single)[-_]?(?:content|body|text|"
    r"inner)|articlebody|article|post|entry|story|content|main|text|body|fulltext)(?:$|[\s_-])",
    re.I,
)


@dataclass(slots=True)
class Entries:
    """The walk's output: entries in reading order and the containers around them."""

    items: list = field(default_factory=list)  # str blocks and ImageRef
    seps: list[int] = field(default_factory=list)  # separator kind before each text block
    chars: list[int] = field(default_factory=list)  # characters of each entry (0 for images)
    links: list[int] = field(default_factory=list)  # of those, characters inside <a>
    heads: list[int] = field(default_factory=list)  # 1..6: the block is (in) <h1>..<h6>, else 0
    # containers left by the walk: (start, end, n_links, depth, node, tag)
    boxes: list[tuple] = field(default_factory=list)


def select(ent: Entries, name_of, title: str = "") -> list[bool]:
    """keep[i] for each entry. `name_of(node)` gives a container's class + id string; `title` is
    the page's <title>, which names the article's heading."""
    n = len(ent.items)
    keep = [True] * n
    if n == 0:
        return keep
    chars, links = ent.chars, ent.links
    for i in _teasers(ent):
        keep[i] = False
    table = _data_tables(ent)
    # prefix sums: characters, link characters, prose characters (outside links, long blocks)
    pc = [0] * (n + 1)
    pl = [0] * (n + 1)
    pp = [0] * (n + 1)
    for i in range(n):
        c, lk = (chars[i], links[i]) if keep[i] else (0, 0)
        pc[i + 1] = pc[i] + c
        pl[i + 1] = pl[i] + (0 if table[i] else lk)  # a data table's links are its data
        pp[i + 1] = pp[i] + (c - lk if c - lk >= _PROSE_CHARS and lk < 0.5 * c else 0)
    # 1. link-dense containers
    diff = [0] * (n + 1)
    for start, end, n_links, _depth, _node, _tag in ent.boxes:
        if end <= start or n_links < _MIN_LINKS:
            continue
        c = pc[end] - pc[start]
        prose = pp[end] - pp[start]
        # several paragraphs of prose make a section that holds a link list, not a link list
        if c and pl[end] - pl[start] >= _LINK_DENSITY * c and prose < min(0.5 * c, _LIST_PROSE):
            diff[start] += 1
            diff[end] -= 1
    run = 0
    for i in range(n):
        run += diff[i]
        if run:
            keep[i] = False
    # prose that survived step 1
    kp = [0] * (n + 1)
    for i in range(n):
        kp[i + 1] = kp[i] + (pp[i + 1] - pp[i] if keep[i] else 0)
    total = kp[n]
    if total == 0:  # no prose at all (a gallery, a short note): keep what step 1 kept
        return keep if any(keep) else [True] * n
    if _main_column(ent, keep, pp, kp, name_of):
        _trim_edges(keep, chars, pp, ent.heads, table)
    _context(keep, chars, links, table)
    _drop_orphan_headings(keep, ent.heads)
    _drop_list_labels(keep, ent)
    _drop_calls_to_action(keep, ent)
    _title_and_lead(keep, ent, title)
    return keep


def _data_tables(ent: Entries) -> list[bool]:
    """table[i]: entry i is in a data table, whose rows hold a cell of text outside links beside
    their linked cells (Debian Reference's package | popcon | size | description lists, where
    the first three are links). Cell by cell, the linked ones are link text and the short
    descriptions between them went with them, or the table went whole as a link list. A
    navigation table or a link grid has no such cells; a layout table has cells of many blocks."""
    n = len(ent.items)
    table = [False] * n
    tables = {b[4].mem_id: b for b in ent.boxes if b[5] == "table" and b[2] and b[1] > b[0]}
    if not tables:
        return table
    chars, links = ent.chars, ent.links
    pc = [0] * (n + 1)
    pl = [0] * (n + 1)
    for i in range(n):
        pc[i + 1] = pc[i] + chars[i]
        pl[i + 1] = pl[i] + links[i]
    items = ent.items
    rows: dict[int, dict[int, list[int]]] = {}  # table -> its rows -> [text outside links, letters]
    layout: set[int] = set()
    for start, end, _n_links, _depth, node, tag in ent.boxes:
        if tag != "td" or end <= start:
            continue
        tr = node.parent
        if tr is None or tr.tag != "tr":
            continue
        t = tr.parent
        if t is not None and t.tag in _ROW_GROUPS:
            t = t.parent
        if t is None or t.mem_id not in tables:
            continue
        if end - start > _CELL_BLOCKS:
            layout.add(t.mem_id)
        row = rows.setdefault(t.mem_id, {}).setdefault(tr.mem_id, [0, 0])
        text = pc[end] - pc[start] - (pl[end] - pl[start])
        if text:
            row[0] += text
            if not row[1]:
                row[1] = any(_LETTER.search(items[i]) for i in range(start, end) if chars[i])
    for tid, r in rows.items():
        texts = sum(1 for text, letters in r.values() if text >= _ROW_TEXT and letters)
        if tid not in layout and texts >= _TABLE_ROWS and texts >= _TABLE_SHARE * len(r):
            start, end = tables[tid][0], tables[tid][1]
            table[start:end] = [True] * (end - start)
    return table


def _teasers(ent: Entries) -> list[int]:
    """Teasers of other pages: a linked headline and the short excerpt under it, repeated
    (a "related posts" grid, a front page's list). Found before anything else, so that their
    excerpts do not count as the page's prose."""
    items, chars, links, heads = ent.items, ent.chars, ent.links, ent.heads
    n = len(items)
    found: list[int] = []
    pairs = 0
    for i in range(n):
        if not heads[i] or not chars[i] or links[i] * 2 < chars[i]:
            continue
        j = i + 1
        while j < n and (not chars[j] or links[j] * 2 >= chars[j]) and not heads[j]:
            j += 1  # images, a category or date link
        if j == n or heads[j] or chars[j] - links[j] >= _TEASER_CHARS:
            continue
        k = j + 1  # ... and nothing more under the headline: a post's opening paragraph is not
        while k < n and (not chars[k] or links[k] * 2 >= chars[k]) and not heads[k]:
            k += 1
        if k == n or heads[k]:
            found += [i, j]
            pairs += 1
    return found if pairs >= _TEASER_REPEAT else []


def _main_column(ent: Entries, keep: list[bool], pp: list[int], kp: list[int], name_of) -> bool:
    """Step 2: keep[i] = False for text outside the main column (see the module docstring);
    False if the page has no column (too little prose in any one container)."""
    n, chars, total = len(keep), ent.chars, kp[-1]
    # a container of several prose blocks (one paragraph is not a column)
    kb = [0] * (n + 1)
    for i in range(n):
        kb[i + 1] = kb[i] + (1 if keep[i] and pp[i + 1] > pp[i] else 0)
    if kb[n] < 2:
        return False
    lo, hi = 0, n
    best_depth = -1
    best = named = None
    for start, end, _n_links, depth, node, tag in ent.boxes:
        if tag not in _COLUMN_TAGS or kb[end] - kb[start] < 2:
            continue
        share = kp[end] - kp[start]
        if share >= _MAIN_SHARE * total and depth > best_depth:
            lo, hi, best_depth, best = start, end, depth, node
        if share >= _NAMED_SHARE * total and (named is None or depth > named[2]):
            if _CONTENT_NAME.search(name_of(node)):
                named = (start, end, depth, node)
    if best_depth < 0 and named is None:
        return False
    if named is not None and named[2] > best_depth:
        if best_depth < 0 or _holds_text(ent, keep, named, lo, hi):
            lo, hi, best_depth, best = named
    # climb while the enclosing container adds prose rather than other text: a section's
    # siblings in a manual, an article's lead in its own wrapper; not a sidebar or a footer
    kc = [0] * (n + 1)  # kept characters outside prose blocks
    ki = [0] * (n + 1)  # kept images, each weighed as a paragraph of prose
    for i in range(n):
        kc[i + 1] = kc[i] + (chars[i] if keep[i] and pp[i + 1] == pp[i] else 0)
        ki[i + 1] = ki[i] + (_IMAGE_PROSE if keep[i] and not chars[i] else 0)
    parents = sorted(
        (b for b in ent.boxes if b[0] <= lo and hi <= b[1] and b[3] < best_depth),
        key=lambda b: -b[3],
    )
    for start, end, _n_links, depth, node, _tag in parents:
        prose = kp[end] - kp[start] - (kp[hi] - kp[lo]) + ki[end] - ki[start] - (ki[hi] - ki[lo])
        other = kc[end] - kc[start] - (kc[hi] - kc[lo])
        if other > _CLIMB_RATIO * prose and not (_has_twin(best) or _has_twin(node)):
            break
        lo, hi, best_depth, best = start, end, depth, node
    # readability's sibling rule: prose just outside the column (a lead paragraph in its own
    # wrapper, the article's last paragraph after an embedded box, an intro a few wrappers
    # out) belongs to it
    plo, phi = 0, n
    up = 0
    for start, end, _n_links, depth, _node, _tag in parents:
        if depth < best_depth and (start, end) != (lo, hi):
            plo, phi = start, end
            up += 1
            if up == _SIBLING_LEVELS:
                break
    # Images outside the column stay unless step 1 dropped them: a manual's figures sit in
    # sections of captions and short option names that weigh little as prose, and a page's
    # teaser thumbnails sit in link lists, which went in step 1.
    for i in range(n):
        if (
            keep[i]
            and chars[i]
            and (i < plo or i >= phi or ((i < lo or i >= hi) and pp[i + 1] == pp[i]))
        ):
            keep[i] = False
    return True


def _holds_text(ent: Entries, keep: list[bool], named: tuple, lo: int, hi: int) -> bool:
    """Whether a named article body holds _NAMED_TEXT of the text (outside links) that the
    column found by prose holds: an Erlang/OTP reference page names its description
    "description-body", the prose of the page, while its functions' one-line descriptions
    beside it weigh as labels, not prose (ordsets.html kept 0.8k of its 3k characters)."""
    chars, links = ent.chars, ent.links
    inside = outside = 0
    for i in range(lo, hi):
        if keep[i]:
            if named[0] <= i < named[1]:
                inside += chars[i] - links[i]
            else:
                outside += chars[i] - links[i]
    return inside >= _NAMED_TEXT * (inside + outside)


def _has_twin(node) -> bool:
    """A sibling element of the same tag and class: the column is one of a document's sections
    (DocBook's div.sect2 after div.sect2), so the enclosing one is the column."""
    cls = node.attributes.get("class")
    if not cls:
        return False
    for step in ("prev", "next"):  # the nearest element on each side, past text and comments
        sib = getattr(node, step)
        while sib is not None and sib.tag in ("-text", "-comment"):
            sib = getattr(sib, step)
        if sib is not None:  # the first element met decides, as a twin or not
            return sib.tag == node.tag and sib.attributes.get("class") == cls
    return False


def _title_parts(title: str) -> list[str]:
    """The <title>'s parts long enough to name an article ("Headline | Section | Site")."""
    return [p for p in _TITLE_SPLIT.split(" ".join(title.split()).casefold()) if len(p) >= 12]


def _title_and_lead(keep: list[bool], ent: Entries, title: str) -> None:
    """The article's heading (a heading before the first kept text that the <title> repeats, or
    the page's first <h1> there when no <h1> was kept) and its lead (prose between the two: a
    standfirst in its own box) belong to the article, however the column was drawn
    (trafilatura and readability compare headings with the <title> the same way)."""
    first = next((i for i in range(len(keep)) if keep[i] and ent.chars[i]), -1)
    if first <= 0:
        return
    whole = " ".join(title.split()).casefold()
    parts = _title_parts(title)
    items, heads, chars, links = ent.items, ent.heads, ent.chars, ent.links
    # no <h1> kept: the page's first <h1>, when it stands just above the column, is the article's
    h1 = -1
    if not any(k and h == 1 for k, h in zip(keep, heads, strict=True)):
        h1 = next((i for i in range(first) if heads[i] == 1), -1)
    for t in range(first - 1, max(first - _TITLE_REACH, 0) - 1, -1):
        if not heads[t] or keep[t] or links[t] * 2 >= chars[t]:
            continue
        h = " ".join(items[t].split()).casefold()
        if t == h1 or (len(h) >= 12 and h in whole) or any(p in h for p in parts):
            keep[t] = True
            for i in range(t + 1, first):
                if chars[i] - links[i] >= _LEAD_CHARS and links[i] * 2 < chars[i]:
                    keep[i] = True
            return


def _drop_orphan_headings(keep: list[bool], heads: list[int]) -> None:
    """A heading whose section (up to the next heading) lost everything titled what went:
    "Related articles", "Read more", "Comments". A title right above a subtitle stays."""
    kept = dropped = False  # in the section after the current position, scanning backwards
    for i in range(len(keep) - 1, -1, -1):
        if heads[i]:
            if keep[i] and not kept and dropped:
                keep[i] = False
            kept = dropped = False
        elif keep[i]:
            kept = True
        else:
            dropped = True


def _drop_list_labels(keep: list[bool], ent: Entries) -> None:
    """A short label that introduces a link list that went ("Read also:", "Already read?") goes
    with it: a heading, or a line ending in ':' or '?', right before a dropped link block."""
    items, chars, links, heads = ent.items, ent.chars, ent.links, ent.heads
    n = len(keep)
    for i in range(n - 1):
        c = chars[i]
        if not keep[i] or not c or c >= _LABEL_CHARS or not chars[i + 1] or keep[i + 1]:
            continue
        if heads[i] == 1:  # a page's title over its table of contents (a manual's chapter)
            continue
        if not heads[i] and not items[i].rstrip().endswith((":", "?", "\u2026")):
            continue
        j = i + 1  # the dropped run after the label is all link text (a list, not prose)
        while j < n and not keep[j] and (not chars[j] or links[j] * 2 >= chars[j]):
            j += 1
        if j == n or keep[j]:
            keep[i] = False


def _drop_calls_to_action(keep: list[bool], ent: Entries) -> None:
    """The article's last few blocks that ask the reader to subscribe, follow the site on a
    social network, support it or get its app (trafilatura filters such lines by the networks' names)."""
    items, chars, heads = ent.items, ent.chars, ent.heads
    for i in range(len(keep)):  # anywhere: a line of share buttons ("Save on Pinterest")
        if keep[i] and 0 < chars[i] < _SHARE_LINE and not heads[i] and _names_network(items[i]):
            keep[i] = False
    seen = 0
    for i in range(len(keep) - 1, -1, -1):
        if not keep[i] or not chars[i] or heads[i]:
            continue
        if chars[i] < _CTA_CHARS and _is_call_to_action(items[i]):
            keep[i] = False
        seen += 1
        if seen == _CTA_TAIL:
            return


def _names_network(text: str) -> bool:
    if _lowers_exactly(text):
        return _NETWORKS_LOWER.search(text.lower()) is not None
    return _NETWORKS.search(text) is not None


def _is_call_to_action(text: str) -> bool:
    if _lowers_exactly(text):
        low = text.lower()
        if _CTA_LOWER.search(low):
            return True
        names = {m.group() for m in _NETWORKS_LOWER.finditer(low)}
    else:
        if _CTA.search(text):
            return True
        names = {m.group().lower() for m in _NETWORKS.finditer(text)}
    return len(names) >= 2 or (len(names) == 1 and len(text) < _NETWORK_LINE)


def _trim_edges(
    keep: list[bool], chars: list[int], pp: list[int], heads: list[int], table: list[bool]
) -> None:
    """jusText's context rule at the column's edges: short text after the last paragraph of
    prose ("Share", "Read more", "Leave a reply") goes, unless it is most of the column, and
    short text before the first one that is not a heading (a date line, a section label, a
    photo credit)."""
    n = len(keep)
    prose = [i for i in range(n) if keep[i] and pp[i + 1] > pp[i]]
    if not prose:
        return
    first, last = prose[0], prose[-1]
    for i in range(first):
        if keep[i] and 0 < chars[i] < _EDGE_CHARS_BEFORE and not heads[i] and not table[i]:
            keep[i] = False
    # ... unless what follows outweighs the prose: a reference's entries (Python's errno page,
    # a glossary), each a name and a short line, after its introduction
    tail = sum(chars[i] for i in range(last + 1, n) if keep[i])
    if tail > _TAIL_RATIO * sum(chars[i] for i in range(first, last + 1) if keep[i]):
        return
    for i in range(last + 1, n):
        if keep[i] and 0 < chars[i] < _EDGE_CHARS_AFTER and not table[i]:
            keep[i] = False


_GOOD, _NEAR, _SHORT, _BAD = 0, 1, 2, 3


def _context(keep: list[bool], chars: list[int], links: list[int], table: list[bool]) -> None:
    """jusText's classification of the kept text blocks: link text blocks are bad, long ones good,
    and short ones take their class from the nearest good or bad neighbours (the page's edges
    count as bad), so a lone label between teasers goes and a subheading between paragraphs
    stays."""
    idx = [i for i in range(len(keep)) if keep[i] and chars[i]]
    cls = []
    for i in idx:
        c, lk = chars[i], links[i]
        if table[i]:  # a data table's cells, short or linked, are its content
            cls.append(_GOOD)
        elif lk >= _LINK_BAD * c:
            cls.append(_BAD)
        elif c - lk >= _GOOD_CHARS and lk < 0.5 * c:
            cls.append(_GOOD)
        elif c - lk >= _NEAR_CHARS:
            cls.append(_NEAR)
        else:
            cls.append(_SHORT)
    m = len(idx)

    def neighbour(j: int, step: int, skip_near: bool) -> int:
        j += step
        while 0 <= j < m:
            k = cls[j]
            if k == _GOOD or k == _BAD or (k == _NEAR and not skip_near):
                return k
            j += step
        return _BAD

    new = list(cls)
    for j in range(m):
        if cls[j] == _SHORT:
            a, b = neighbour(j, -1, True), neighbour(j, 1, True)
            if a == _GOOD and b == _GOOD:
                new[j] = _GOOD
            elif a == _BAD and b == _BAD:
                new[j] = _BAD
            else:
                a2, b2 = neighbour(j, -1, False), neighbour(j, 1, False)
                new[j] = _GOOD if a2 != _BAD or b2 != _BAD else _BAD
    for j in range(m):
        if new[j] == _NEAR:
            a, b = neighbour(j, -1, True), neighbour(j, 1, True)
            new[j] = _BAD if a == _BAD and b == _BAD else _GOOD
    for j, i in enumerate(idx):
        if new[j] == _BAD:
            keep[i] = False
