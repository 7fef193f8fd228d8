"""One HTML page -> text blocks and image references where they stand, boilerplate out.

`extract_page` parses with selectolax (lexbor) and walks the DOM of the main content
(<main> unless it is a stub, role=main, a lone <article> unless it is hidden or only one entry
of the content, else <body>)
iteratively, so nesting depth cannot exhaust Python's stack. Boilerplate (navigation,
headers/footers, menus, cookie banners, scripts and styles, forms, hidden and screen-reader-only
elements, and class/id names from the common vocabularies: nav, menu, footer, sidebar, comment,
share, social, related, breadcrumb, cookie, newsletter, ad, DocBook's navheader/navfooter...) is
found with CSS selectors in lexbor and skipped whole, unless it is a layout wrapper (it holds most
of the page's words, or its <h1>). Ruby annotations (<rt>) are left out. An image's caption
(<figcaption>, a figure wrapper's caption or legend) becomes the image's `caption` field instead
of page text, so it goes where its image goes. Text becomes blocks (paragraphs, headings with
their level, list items, table rows, <pre> verbatim) with their link-text counts;
`html_blocks.select` then keeps the main content (link lists out, the main column chosen, prose
around it). Consecutive kept blocks between two images form one text item, as in OBELICS.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from selectolax.lexbor import LexborHTMLParser, LexborNode

from vloom.ingest.html_blocks import Entries, select
from vloom.ingest.html_decode import decode_html_utf8

# Chrome's parser stops nesting at 512 levels; real pages stay far below this. Deeper pages are
# rejected ("html_too_deep") rather than walked: they are adversarial or broken.
MAX_DEPTH = 2048
# lexbor's tree builder is quadratic in nesting depth (100k levels take ~15 s), so pages with
# this many tags get a cheap depth pre-scan before parsing.
_PRESCAN_TAGS = 20_000

# --- boilerplate -------------------------------------------------------------------------------
_SKIP_TAGS = (
    "nav aside script style noscript template button select textarea input iframe object "
    "embed canvas svg dialog menu head title map audio video rt rp"
).split()
_SKIP_ATTRS = (
    "[hidden]",
    # text for screen readers only ("opens in a new window", "Skip to content"), in the class
    # names of the common CSS frameworks and CMSs. (A plain "hidden" class is often content a
    # script reveals, so it stays.)
    ".sr-only, .screen-reader-text, .visually-hidden, .visuallyhidden, .element-invisible",
)
# ... and aria-hidden="true", an inline style that hides, the landmark roles of page furniture.
# lexbor finds the elements that have these attributes at all (_VALUED_SEL) and their values
# are compared here, as lexbor's [aria-hidden=true], [style*="display:none"], [role=navigation]
# would (case-sensitive; equal, or holding the text): three presence tests are cheaper than
# fourteen value tests on every element of a page.
_HIDING_STYLES = ("display:none", "display: none", "visibility:hidden", "visibility: hidden")
_SKIP_ROLES = frozenset(
    "navigation banner contentinfo complementary search menu menubar dialog alertdialog".split()
)
_VALUED_SEL = '[aria-hidden], [style], [role], a[href^="#"]'
# a heading's permalink ("Examples§", "Usage¶", "Promise example#") or a back-to-top arrow
_ANCHOR_MARKS = frozenset(["#", "¶", "§", "🔗", "↑", "⇧", "^"])


def _skipped_by_value(node: LexborNode) -> bool:
    a = node.attributes
    if a.get("aria-hidden") == "true" or a.get("role") in _SKIP_ROLES:
        return True
    style = a.get("style")
    if style and any(s in style for s in _HIDING_STYLES):
        return True
    href = a.get("href")
    return (
        href is not None
        and href.startswith("#")
        and node.tag == "a"
        and (node.text() or "").strip() in _ANCHOR_MARKS
    )


# Parts of class/id names (split on whitespace, '-' and '_') that mark boilerplate. Matched as
# whole parts, so DocBook's inline "guimenu" / "menuchoice" spans are not "menu".
_BOILER_PARTS = frozenset(
    """nav navbar navigation navheader navfooter navlinks docnav menu menubar megamenu breadcrumb
    breadcrumbs crumbs sidebar cookie cookies cookiebanner consent gdpr skip skiplink skiplinks
    share sharing sharebar social advert advertisement adverts ads ad banner popup newsletter
    subscribe footer masthead toolbar pagination pager comment comments commentlist respond
    reply replies disqus related tags tagcloud taglist sharedaddy addtoany shariff
    outbrain taboola sponsored promo recommended recirculation postmeta copyright legal
    entrymeta""".split()
)
# Parts that mark boilerplate only on a block (an author box, a disclosure): on an
# inline element they tag content (DocBook's <span class="author"> in a list of contributors).
_BLOCK_BOILER_PARTS = frozenset("author authors authorbox disclosure".split())
_BLOCK_BOILER_TAGS = frozenset("div section aside dl ul ol p".split())
# Name parts that start like boilerplate ("commentform", "relatedposts", "socialicons").
_BOILER_PREFIXES = (
    "comment",
    "related",
    "social",
    "share",
    "newsletter",
    "breadcrumb",
    "cookie",
    "footer",
)
# Share and social bars are a line of buttons: an element so named with this many words is an
# article that carries the name as a flag ("entry share").
_SMALL_PREFIXES = ("share", "sharing", "social")
_SMALL_WORDS = 150
_WRAPPER_SEL = "h1"
# wrappers of one image and its caption, and the caption inside them
_FIGURE_CLASSES = frozenset("figure informalfigure mediaobject".split())
_CAPTION_SEL = "figcaption, .caption, .title, .legend, [class*=caption], [class*=legend]"
# any of the above on a page (class names in either case)
_ANY_CAPTION_SEL = (
    "figcaption, .figure, .informalfigure, .mediaobject, [class*=aption], [class*=egend]"
)
# ... or end like it, run together in camelCase ("darkFooter", "mainNavigation")
_BOILER_SUFFIXES = ("footer", "navigation", "sidebar", "comments", "breadcrumbs")
# "has-sidebar", "no-footer": layout flags on wrappers, not boilerplate themselves; WordPress's
# taxonomy classes on an article ("category-newsletter", "tag-social-media") name its topic.
# a BEM element (block__element) of these names in a sidebar layout is its content column
_CONTENT_PARTS = frozenset("main content body article text inner".split())
_NEGATING = frozenset("has no with without is show hide not category tag term".split())
# Substrings of a class or id that make an element a candidate, searched in the lowercased
# names ("Navigation", "mainNav"), as _is_boiler_name lowercases them too (one regex beats 80
# lexbor selectors; re.I would cost it four times as much)
_BOILER_CANDIDATE = re.compile(
    "|".join(
        (
            "nav",
            "menu",
            "crumb",
            "sidebar",
            "cookie",
            "consent",
            "gdpr",
            "skip",
            "shar",
            "social",
            "advert",
            "ad",
            "banner",
            "popup",
            "newsletter",
            "subscribe",
            "footer",
            "masthead",
            "toolbar",
            "pag",
            "comment",
            "respond",
            "repl",
            "disqus",
            "related",
            "tag",
            "addtoany",
            "outbrain",
            "taboola",
            "sponsored",
            "promo",
            "recommend",
            "recirculation",
            "meta",
            "copyright",
            "legal",
            "author",
            "disclosure",
        )
    ),
)
_PART_SPLIT = re.compile(r"[\s_\-]+")

# A <main> holding less of the page's text than this is a stub, not the main content.
_MIN_MAIN_SHARE = 0.2

# --- block structure ---------------------------------------------------------------------------
_NONE, _CELL, _LINE, _PARA = 0, 1, 2, 3
_SEPS = ("", "\t", "\n", "\n\n")
_BR = "\x00"  # a <br> in the inline buffer (page text never holds NUL: extract_page maps it)
_BLOCK: dict[str, int] = {
    t: _PARA
    for t in (
        "p h1 h2 h3 h4 h5 h6 blockquote figure figcaption table ul ol dl section article main "
        "header footer address details summary caption hr fieldset legend center div"
    ).split()
}  # a <div> holding text is nearly always a paragraph (DocBook's div.para, say)
_BLOCK.update({t: _LINE for t in "li tr dt dd option body".split()})
_BLOCK.update({"td": _CELL, "th": _CELL})


@dataclass(slots=True)
class ImageRef:
    """An <img> as written on the page, with what the page says about it."""

    src: str
    alt: str = ""
    title: str = ""
    caption: str = ""


@dataclass(slots=True)
class Page:
    title: str
    lang: str
    items: list[str | ImageRef]  # text items (blocks joined) and image references, in order
    base: str = ""  # <base href>, if the page declares one
    canonical: str = ""  # <link rel="canonical" href>, if any
    redirect: str = ""  # where a <meta http-equiv=refresh> sends the reader at once, if it does


class PageError(ValueError):
    """A page that cannot be ingested; `reason` is the ledger slug."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9:-]*)[^>]*?(/?)>")
_VOID = frozenset("area base br col embed hr img input link meta source track wbr".split())
# Elements whose start tag closes an open one of the same kind, so they do not nest in practice.
_SELF_CLOSING_KIN = frozenset("p li dt dd option tr td th".split())


# An element whose content HTML parses as raw text, written self-closed as XHTML does
# (<iframe src="..."/>): a parser takes the rest of the document for its text, lost with it.
# Debian's ImageMagick manual (130 pages) has <iframe .../> before every page's content.
_RAW_TEXT_TAGS = frozenset("iframe script style textarea title noembed noframes xmp".split())
_SELF_CLOSED_RAW = re.compile(
    r"<(iframe|script|style|textarea|title|noembed|noframes|xmp)(\s[^<>]*)?/>", re.I
)


def _swallowed(parser: LexborHTMLParser) -> bool:
    """Whether the document, or its <head>, ends inside a raw-text element holding markup: one
    written self-closed took the rest of the page (the last node of each is looked at, not
    every element; after a <head> so ended, the parser adds an empty <body>)."""
    for node in (parser.root, parser.head):
        depth = 0
        while node is not None and node.last_child is not None and depth < MAX_DEPTH:
            node = node.last_child
            depth += 1
        if node is not None and node.parent is not None and node.parent.tag in _RAW_TEXT_TAGS:
            if "<" in (node.text_content or ""):
                return True
    return False


def _too_deep(text: str, limit: int) -> bool:
    """Rough nesting depth from tags alone (a guard, not a parser): True if it passes `limit`."""
    depth = 0
    for m in _TAG.finditer(text):
        name = m.group(2).lower()
        if name in _VOID or name in _SELF_CLOSING_KIN or m.group(3):
            continue
        if m.group(1):
            depth = max(0, depth - 1)
        else:
            depth += 1
            if depth > limit:
                return True
    return False


# --- the DOM walk ------------------------------------------------------------------------------
def _attr(node: LexborNode, name: str) -> str:
    v = node.attributes.get(name)
    return v.strip() if v else ""


def _is_boiler_name(value: str, block: bool) -> bool:
    for token in value.lower().split():
        parts = _PART_SPLIT.split(token)
        if parts[0] in _NEGATING:
            continue
        if "__" in token:  # BEM's "sidebar__main": the main element of a sidebar layout
            block_name, element = token.rsplit("__", 1)
            if "sidebar" in block_name and _PART_SPLIT.split(element)[0] in _CONTENT_PARTS:
                continue
        for p in parts:
            if p in _BOILER_PARTS or p.startswith(_BOILER_PREFIXES) or p.endswith(_BOILER_SUFFIXES):
                return True
            if block and p in _BLOCK_BOILER_PARTS:
                return True
    return False


_CANDIDATES: dict[tuple[str | None, str | None], bool] = {}  # a site repeats its class names


def _is_candidate(cls: str | None, ident: str | None) -> bool:
    """Whether a class/id pair holds a boilerplate name's substring (remembered per pair)."""
    key = (cls, ident)
    hit = _CANDIDATES.get(key)
    if hit is None:
        if len(_CANDIDATES) >= 1 << 16:
            _CANDIDATES.clear()
        hit = _CANDIDATES[key] = bool(
            _BOILER_CANDIDATE.search(f"{cls or ''} {ident or ''}".lower())
        )
    return hit


def _is_comments(a) -> bool:
    return "comment" in f"{a.get('class') or ''} {a.get('id') or ''}".lower()


def _only_small_names(*values: str | None) -> bool:
    """True if the element's boilerplate names are all ones that mark small widgets."""
    found = False
    for value in values:
        for token in (value or "").lower().split():
            for p in _PART_SPLIT.split(token):
                if p.startswith(_SMALL_PREFIXES):
                    found = True
                elif p in _BOILER_PARTS or p.startswith(_BOILER_PREFIXES):
                    return False
    return found


def _is_prose_sidebar(node: LexborNode, words: int) -> bool:
    """DocBook's <sidebar> (div.sidebar: tips, notes) is prose; a site's sidebar is links.
    Only "sidebar" names get this test: cookie banners and menus go whatever their text."""
    cls = (node.attributes.get("class") or "").lower().split()
    if not any("sidebar" in _PART_SPLIT.split(c) for c in cls):
        return False
    link_words = sum(len((a.text(deep=True) or "").split()) for a in node.css("a[href]"))
    return link_words < 0.25 * words


def _inside(node: LexborNode, skip: set[int], tags: frozenset[str], root: LexborNode) -> bool:
    """An ancestor of `node` (below `root`) is skipped: in `skip`, or one of `tags`."""
    top = root.mem_id
    p = node.parent
    while p is not None and p.mem_id != top:
        if p.mem_id in skip or p.tag in tags:
            return True
        p = p.parent
    return False


# inside <main>/<article> a <header> holds the title: keep it there
_SKIP_TAGSETS = {
    True: frozenset([*_SKIP_TAGS, "header", "footer"]),  # under <body>
    False: frozenset([*_SKIP_TAGS, "footer"]),
}
_SKIP_ATTRS_SEL = ", ".join(_SKIP_ATTRS)


def _skip_tags(root: LexborNode) -> frozenset[str]:
    """Tags the walk skips with their subtree (by name as it meets them: cheaper than adding
    these type selectors to the lexbor query of `_skip_set`; the same elements)."""
    return _SKIP_TAGSETS[root.tag == "body"]


def _skip_set(root: LexborNode, tags: frozenset[str]) -> set[int]:
    """mem_ids of boilerplate elements under `root` besides those named by `tags` (the walk
    skips both with their subtree)."""
    skip = {n.mem_id for n in root.css(_SKIP_ATTRS_SEL)}
    skip.update(n.mem_id for n in root.css(_VALUED_SEL) if _skipped_by_value(n))
    total = -1
    for n in root.css("form"):
        # a form is a search box or a login, unless it wraps the page (ASP.NET's aspnetForm)
        if total < 0:
            total = len((root.text(deep=True) or "").split())
        if total < 20 or len((n.text(deep=True) or "").split()) <= total // 2:
            skip.add(n.mem_id)
    for n in root.css("[class], [id]"):
        if not _is_candidate(n.attrs.get("class"), n.id):  # (no dict of every attribute)
            continue
        a = n.attributes
        block = n.tag in _BLOCK_BOILER_TAGS
        if _is_boiler_name(a.get("class") or "", block) or _is_boiler_name(
            a.get("id") or "", block
        ):
            if _inside(n, skip, tags, root):
                continue  # goes with the boilerplate around it: no need to weigh it
            if total < 0:
                total = len((root.text(deep=True) or "").split())
            words = len((n.text(deep=True) or "").split())
            # a name-matched element holding most of the page's words is a layout wrapper
            # ("sidebar-layout", "nav-container"), not boilerplate
            if total >= 20 and words > total // 2:
                continue
            if words >= 30 and _is_prose_sidebar(n, words):
                continue
            if words >= _SMALL_WORDS and _only_small_names(a.get("class"), a.get("id")):
                continue
            # the page's title inside: a layout wrapper flagged "nav_right", not navigation
            if _WRAPPER_SEL and n.css_first(_WRAPPER_SEL) is not None and not _is_comments(a):
                continue
            skip.add(n.mem_id)
    return skip


def _caption_nodes(img: LexborNode, seen: dict, marks: _Marks) -> list[LexborNode]:
    """The elements that caption `img`: <figure>'s <figcaption>, the captions/title/legend of a
    wrapper named for a figure (DocBook's div.figure, WordPress's div.wp-caption, a CMS's
    div.media with a description and a credit line), or a caption-named element right after the
    image's wrapper (a lightbox's div.legend), a few levels up. None that holds an image.
    `seen`: the page's answers per (ancestor, level) so far (images in one paragraph or list
    share their ancestors: each is looked at once)."""
    node = img.parent
    for level in range(6):
        if node is None:
            return []
        key = (node.mem_id, level)
        found = seen.get(key, _UNSEEN)
        if found is _UNSEEN:
            found = seen[key] = _caption_step(node, level, marks)
        if found is not None:
            return found
        node = node.parent
    return []


_UNSEEN = object()
# every element whose class could make it a figure wrapper or a caption: lexbor's ASCII
# case-insensitive substrings find all that str.lower() would (no other character lowers to
# one of these letters alone), and _caption_step weighs them as before
_MARK_SEL = "[class*=caption i], [class*=legend i], [class*=figure i], [class*=mediaobject i]"


@dataclass(slots=True)
class _Marks:
    """The page's caption-related elements by mem_id, found in one lexbor query, so the climb
    from each image reads no attributes of elements that have none of these names."""

    figure: set[int]  # a class that may name a figure wrapper (or hold "caption")
    named: set[int]  # caption-named elements (_caption_named, less the image test)
    parents: set[int]  # the parents of those
    before: set[int]  # the element before each (text and comments between)


def _caption_marks(body: LexborNode) -> _Marks:
    marks = _Marks(set(), set(), set(), set())
    for n in body.css(_MARK_SEL):
        nid = n.mem_id
        if nid in marks.figure:
            continue  # (listed once per selector it matches)
        marks.figure.add(nid)
        name = (n.attributes.get("class") or "").lower()
        if "caption" in name or "legend" in name:
            marks.named.add(nid)
            p = n.parent
            if p is not None:
                marks.parents.add(p.mem_id)
            p = n.prev
            while p is not None and p.tag in ("-text", "-comment"):
                p = p.prev
            if p is not None:
                marks.before.add(p.mem_id)
    return marks


def _caption_step(node: LexborNode, level: int, marks: _Marks) -> list[LexborNode] | None:
    """_caption_nodes at the ancestor `level` levels above the image: the captions (a list, may
    be empty: look no further), or None: look at the next ancestor."""
    tag = node.tag
    if tag in ("body", "html"):
        return []
    if tag == "figure":
        return [c for c in node.css("figcaption") if c.css_first("img") is None]
    nid = node.mem_id
    if nid in marks.figure:
        cls = (node.attributes.get("class") or "").lower()
        if any(c in _FIGURE_CLASSES for c in cls.split()) or "caption" in cls:
            caps = [c for c in node.css(_CAPTION_SEL) if c.mem_id != nid]
            if caps:
                return [c for c in caps if c.css_first("img") is None]
    if level < 2 and nid in marks.parents:  # the image's own wrapper: its caption-named children
        caps = [c for c in node.iter() if _caption_named(c, marks)]
        if caps:
            return caps
    if level < 3 and nid in marks.before:
        sib = node.next
        while sib is not None and sib.tag in ("-text", "-comment"):
            sib = sib.next
        if sib is not None and _caption_named(sib, marks):
            return [sib]
    return None


def _caption_named(node: LexborNode, marks: _Marks) -> bool:
    """An element whose class names a caption or legend and that holds no image."""
    return node.mem_id in marks.named and node.css_first("img") is None


def _captions(root: LexborNode, skip: set[int], body: LexborNode | None = None) -> dict[int, str]:
    """Caption text per image (by mem_id). The caption leaves the page's text for its image:
    a VLM corpus keeps it as the image's own field, a picture credit ("Foto: dpa") is not prose,
    and a caption whose image goes (a teaser thumbnail) goes with it. Caption elements join
    `skip`. `body`: the page's <body>, where the climb from an image can reach (default: root)."""
    caps: dict[int, str] = {}
    if root.css_first(_ANY_CAPTION_SEL) is None:  # most pages: nothing to look for per image
        return caps
    seen: dict = {}
    marks = _caption_marks(body if body is not None else root)
    for img in root.css("img"):
        nodes = _caption_nodes(img, seen, marks)
        if nodes:
            # once each, and not again inside another (a grouped selector can match twice)
            ids = {c.mem_id for c in nodes}
            outer = {}
            for c in nodes:
                p = c.parent
                while p is not None and p.mem_id not in ids:
                    p = p.parent
                if p is None:
                    outer[c.mem_id] = c
            caps[img.mem_id] = " ".join(
                " ".join((c.text(deep=True) or "").split()) for c in outer.values()
            )
            skip.update(outer)
    return caps


class _Emitter:
    """Collects inline text into blocks, and blocks and images into `Entries` in order."""

    __slots__ = ("ent", "buf", "buf_links", "pending", "in_head", "head_level")

    def __init__(self) -> None:
        self.ent = Entries()
        self.buf: list[str] = []
        self.buf_links = 0  # characters of the buffer's text inside <a>
        self.pending = _NONE
        self.in_head = 0  # depth of open <h1>..<h6>
        self.head_level = 0  # the outermost open heading's level

    def boundary(self, kind: int) -> None:
        if self.buf:
            self._flush_buf()
        if kind > self.pending:
            self.pending = kind

    def _flush_buf(self) -> None:
        raw = "".join(self.buf)
        self.buf.clear()
        links, self.buf_links = self.buf_links, 0
        if _BR in raw:  # <br> made lines: keep them, collapse spaces inside each
            lines = [" ".join(line.split()) for line in raw.split(_BR)]
            text = "\n".join(line for line in lines if line)
        else:
            text = " ".join(raw.split())
        if text:
            self.add_block(text, links)

    def add_block(self, text: str, links: int = 0) -> None:
        ent = self.ent
        ent.items.append(text)
        ent.seps.append(self.pending or _LINE)
        n = len(text)
        if not text.isascii():
            size = len(text.encode("utf-8", "surrogatepass"))
            if size > 2.5 * n:
                # Chinese/Japanese/Korean: a character says about as much as a Latin word's
                # third, so weigh it as three when telling prose from labels (UTF-8 spends 3
                # bytes on it)
                n *= 3
                links *= 3
            elif size > n + 1:
                # ... also among Latin words (package names, commands, numbers in a Chinese
                # sentence): those characters weigh three each, the rest one
                wide = len(_WIDE.findall(text))
                if wide:
                    links = links * (n + 2 * wide) // n
                    n += 2 * wide
        ent.chars.append(n)
        ent.links.append(min(links, n))
        ent.heads.append(self.head_level if self.in_head else 0)
        self.pending = _NONE

    def image(self, ref: ImageRef) -> None:
        self.boundary(_NONE)
        ent = self.ent
        ent.items.append(ref)
        ent.seps.append(_NONE)
        ent.chars.append(0)
        ent.links.append(0)
        ent.heads.append(0)
        self.pending = _NONE


def _join(ent: Entries, keep: list[bool]) -> list[str | ImageRef]:
    """Kept entries as items: consecutive text blocks join into one text item, as in OBELICS."""
    items: list[str | ImageRef] = []
    blocks: list[str] = []
    for item, sep, k in zip(ent.items, ent.seps, keep, strict=True):
        if not k:
            continue
        if isinstance(item, str):
            if blocks:
                blocks.append(_SEPS[sep])
            blocks.append(item)
        else:
            if blocks:
                items.append("".join(blocks))
                blocks = []
            items.append(item)
    if blocks:
        items.append("".join(blocks))
    return items


_HEADINGS = frozenset("h1 h2 h3 h4 h5 h6".split())
# containers whose entry ranges the selection weighs (link lists, main-column candidates)
_BOX_TAGS = frozenset("div section article main body td ul ol dl table li p header footer".split())


# Chinese, Japanese and Korean characters (Han, kana, Hangul, their punctuation and full-width
# forms), not the typographic quotes and dashes of Latin text
_WIDE = re.compile(
    "[\u1100-\u11ff\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef\U00020000-\U0003ffff]"
)
# lexbor's tag id -> name (`tag_id` is about half the cost of `tag`, which decodes the name each
# time). Ids of the tags lexbor knows are small constants; an unknown tag's id is the address of
# its name in that document's heap, so those are never remembered.
_TAG_NAMES: dict[int, str] = {}
_STATIC_TAG_IDS = 1 << 16
_ANCHOR = "a:target"  # a link target, as the walk names it: no link text, no link
_TARGET_ATTRS = frozenset("id name class xmlns lang xml:lang title".split())


def _is_target(a: LexborNode) -> bool:
    """An <a> without href that only names a place (id= or name=): no link. DocBook's XHTML
    writes them as <a id="x"/>, which an HTML parser opens and, once its heading closes,
    reopens around the text after it up to the next link; counted as links, most sections of
    a Debian Reference chapter were link lists. An <a> with a script's attributes (data-*,
    onclick, role, tabindex) is a link a script follows."""
    attrs = a.attributes
    return ("id" in attrs or "name" in attrs) and all(k in _TARGET_ATTRS for k in attrs)


def _walk(
    root: LexborNode,
    skip: set[int],
    tags: frozenset[str],
    caps: dict[int, str],
    code: set[int] | frozenset[int] = frozenset(),
) -> Entries:
    """Iterative depth-first walk of `root`'s subtree in document order (no recursion); elements
    in `skip` or named in `tags` are passed over with their subtree. Elements in `code` (mem_ids
    of Doxygen's div.fragment) are code blocks, as <pre> is."""
    em = _Emitter()
    ent = em.ent
    buf = em.buf
    boxes = ent.boxes
    # per element we descended into: (block kind, first entry, links before it, is a box, the
    # element, its tag) - climbing back takes these, not node.parent and its tag again
    exits: list[tuple[int, int, int, bool, LexborNode, str]] = []
    n_links = 0
    in_link = 0  # depth of open <a> elements
    node = root.first_child
    while node is not None:
        tid = node.tag_id
        tag = _TAG_NAMES.get(tid)
        if tag is None:
            tag = node.tag
            if 0 < tid < _STATIC_TAG_IDS and tag is not None:
                _TAG_NAMES[tid] = tag
        if tag == "-text":
            t = node.text_content
            # whitespace before any text adds nothing (spaces collapse); most text nodes of
            # indented markup are that, and each would cost a flush
            if buf or not t.isspace():
                buf.append(t)
                if in_link:
                    em.buf_links += len(t.strip())
        elif tag is not None and tag[0] != "-" and tag not in tags and node.mem_id not in skip:
            # (no tag: a processing instruction such as <?php ... ?>, which holds no text)
            if tag == "img":
                a = node.attributes
                src = (a.get("src") or a.get("data-src") or "").strip()
                if not src and a.get("srcset"):
                    src = a["srcset"].split(",")[0].split()[0]
                em.image(
                    ImageRef(
                        src,
                        " ".join((a.get("alt") or "").split()),
                        " ".join((a.get("title") or "").split()),
                        caps.get(node.mem_id, ""),
                    )
                )
            elif tag == "br":
                buf.append(_BR)
            elif tag == "pre" or tag == "listing" or tag == "xmp" or (code and node.mem_id in code):
                em.boundary(_PARA)
                text = _pre_text(node, tags) if tag != "div" else _fragment_text(node, tags)
                text = text.strip("\n").rstrip()
                if text.strip():
                    em.add_block(text)
                em.boundary(_PARA)
            else:
                kind = _BLOCK.get(tag, _NONE)
                if kind:  # em.boundary(kind), inlined in this loop
                    if buf:
                        em._flush_buf()
                    if kind > em.pending:
                        em.pending = kind
                if tag == "a":
                    if "href" in node.attrs or not _is_target(node):
                        n_links += 1
                    else:  # a link target, no link (see _is_target)
                        tag = _ANCHOR
                child = node.first_child
                if child is not None:
                    if len(exits) >= MAX_DEPTH:
                        raise PageError("html_too_deep", f"nesting deeper than {MAX_DEPTH}")
                    if tag == "a":
                        in_link += 1
                    elif tag in _HEADINGS:
                        if not em.in_head:
                            em.head_level = int(tag[1])
                        em.in_head += 1
                    exits.append((kind, len(ent.items), n_links, tag in _BOX_TAGS, node, tag))
                    node = child
                    continue
                if kind:
                    if buf:
                        em._flush_buf()
                    if kind > em.pending:
                        em.pending = kind
        # next node: the sibling, else climb (closing blocks) until an ancestor has a sibling
        nxt = node.next
        while nxt is None:
            if not exits:
                em.boundary(_NONE)
                return ent
            kind, first, links0, is_box, node, tag = exits.pop()  # the parent
            if kind:
                if buf:
                    em._flush_buf()
                if kind > em.pending:
                    em.pending = kind
            if tag == "a":
                in_link -= 1
            elif tag in _HEADINGS:
                em.in_head -= 1
            if is_box:
                boxes.append((first, len(ent.items), n_links - links0, len(exits), node, tag))
            nxt = node.next
        node = nxt
    em.boundary(_NONE)
    return ent


_TAG_SELS: dict[frozenset[str], str] = {}


def _pre_text(node: LexborNode, tags: frozenset[str]) -> str:
    """A <pre>'s text as written, without what the walk skips inside it: a code block's "copy"
    button (Node's docs, most documentation themes), a script."""
    sel = _TAG_SELS.get(tags)
    if sel is None:
        sel = _TAG_SELS[tags] = ", ".join(sorted(tags))
    if node.css_first(sel) is None:
        return node.text(deep=True) or ""
    out: list[str] = []
    stack = [node.first_child]
    while stack:
        n = stack.pop()
        if n is None:
            continue
        stack.append(n.next)
        tag = n.tag
        if tag == "-text":
            out.append(n.text_content)
        elif tag is not None and tag[0] != "-" and tag not in tags:
            stack.append(n.first_child)
    return "".join(out)


def _fragment_text(node: LexborNode, tags: frozenset[str]) -> str:
    """A Doxygen code fragment (a source listing, an @code example) as its lines: one
    div.line each, without its span.lineno. Written as divs of linked identifiers, not as a
    <pre>, it was walked as one short block per line, mostly link text, and went as a link
    list (libstdc++'s source pages kept nothing but the project's name)."""
    lines = node.css("div.line")
    if not lines:
        return _pre_text(node, tags)
    out: list[str] = []
    for line in lines:
        text = line.text(deep=True) or ""
        num = line.css_first("span.lineno")
        if num is not None:
            n = num.text(deep=True) or ""
            if text.startswith(n):
                text = text[len(n) :]
        out.append(text.rstrip())
    return "\n".join(out)


def _name_of(node: LexborNode) -> str:
    a = node.attributes
    return f"{a.get('class') or ''} {a.get('id') or ''} {a.get('itemprop') or ''}"


def _hidden(node: LexborNode) -> bool:
    """The element or one of its ancestors is hidden (a lightbox's sign-up form, a closed
    dialog): no candidate for the page's main content."""
    while node is not None and node.tag != "html":
        a = node.attributes
        if "hidden" in a or a.get("aria-hidden") == "true":
            return True
        style = (a.get("style") or "").replace(" ", "").lower()
        if "display:none" in style or "visibility:hidden" in style:
            return True
        node = node.parent
    return False


# What extract_page looks up in the whole document, in one lexbor query (each query walks every
# element). lexbor lists the matches in document order, an element once per selector it matches
# (twice: <article role=main>); _page_nodes sorts them out as each selector alone would find them.
_PAGE_SEL = (
    'base[href], link[rel="canonical" i][href], main, [role=main], article, '
    'meta[http-equiv="refresh" i][content]'
)


def _page_nodes(parser: LexborHTMLParser) -> dict[str, list[LexborNode]]:
    """{"base", "canonical", "main", "role_main", "article", "refresh"}: what
    parser.css(<its selector>) returns, in document order."""
    out: dict[str, list[LexborNode]] = {
        k: [] for k in ("base", "canonical", "main", "role_main", "article", "refresh", "fragment")
    }
    seen: set[int] = set()
    for n in parser.css(_PAGE_SEL):
        if n.mem_id in seen:
            continue
        seen.add(n.mem_id)
        tag, a = n.tag, n.attributes
        if tag == "base" and "href" in a:
            out["base"].append(n)
        # [rel="canonical" i]: ASCII case-insensitive; lower() maps no other character to one
        # of these letters without also changing the length
        if tag == "link" and "href" in a and (a.get("rel") or "").lower() == "canonical":
            out["canonical"].append(n)
        if tag == "main":
            out["main"].append(n)
        if a.get("role") == "main":  # lexbor's [role=main]: case-sensitive equality
            out["role_main"].append(n)
        if tag == "article":
            out["article"].append(n)
        if tag == "meta" and (a.get("http-equiv") or "").lower() == "refresh":
            out["refresh"].append(n)
    return out


# A page that sends the browser elsewhere within this many seconds is a redirect, not content
# (rustdoc leaves one per moved item: a third of its pages; crawls keep many). A refresh with
# no URL (a news front page reloading itself every few minutes) is not one.
MAX_REDIRECT_SECONDS = 5.0
# the HTML standard's "shared declarative refresh steps": whole seconds (what follows a dot is
# skipped), then [;,] and url=, the URL possibly quoted
_REFRESH = re.compile(r"\s*(\d*)([\d.]*)\s*[;,]?\s*(?:url\s*=\s*)?(.*)", re.I | re.S)


def meta_redirect(content: str) -> str:
    """The URL of a refresh `content` ("0; url=/new") that moves on within
    MAX_REDIRECT_SECONDS, else ""."""
    m = _REFRESH.match(content)
    if m is None or not (m[1] or m[2].startswith(".")):
        return ""  # no time: browsers ignore it
    url = m[3].strip()
    if url[:1] in ("'", '"'):
        url = url[1:].split(url[0], 1)[0].strip()
    if not url or int(m[1] or 0) > MAX_REDIRECT_SECONDS:
        return ""
    return url


def _main_root(parser: LexborHTMLParser, found: dict[str, list[LexborNode]]) -> LexborNode | None:
    """<main> or role=main unless it is a stub, else a lone visible <article> that is not one
    entry of the content, else <body>."""
    body = parser.body
    total = -1
    for key in ("main", "role_main"):
        n = found[key][0] if found[key] else None
        if n is not None:
            # an empty or stub <main> (a theme's placeholder, the page's content beside it)
            # is no main content: fall back to the body
            if body is None:
                return n
            if total < 0:
                total = len(body.text(deep=True) or "")
            if len(n.text(deep=True) or "") >= _MIN_MAIN_SHARE * total:
                return n
            break
    arts = found["article"]
    if len(arts) == 1 and not _hidden(arts[0]) and not _article_is_part(arts[0], body):
        return arts[0]
    return body


def _para_chars(node: LexborNode) -> int:
    """The text of the <p> elements in `node`'s subtree, itself included."""
    return sum(len(p.text(deep=True) or "") for p in node.css("p"))


def _article_is_part(art: LexborNode, body: LexborNode | None) -> bool:
    """A lone <article> that is one entry of the page's content, not the content: it holds no
    <h1>/<h2> while the page's <h1> stands outside it, and the paragraphs beside it (in the
    nearest ancestor that holds any) outweigh its own. Erlang/OTP's reference pages mark up one
    function of many as <article class="func">, the rest of the manual page in <section>s; a
    news article holds its headline, or most of the page's paragraphs."""
    if body is None or art.css_first("h1, h2") is not None or body.css_first("h1") is None:
        return False
    inside = _para_chars(art)
    child, node = art, art.parent
    while node is not None:  # each sibling subtree is read once: linear in the page
        beside = 0
        sib = node.first_child
        while sib is not None:
            if sib.mem_id != child.mem_id and (sib.tag or "-")[0] != "-":
                beside += _para_chars(sib)
            sib = sib.next
        if beside > 0:
            return beside > inside
        child, node = node, node.parent
    return False


def text_chars(items: list[str | ImageRef]) -> int:
    return sum(len(i) for i in items if isinstance(i, str))


def extract_page(html: str | bytes, declared_charset: str | None = None) -> Page:
    """Parse one page into text items and image references; raises PageError(reason)."""
    utf8 = False  # the text is the bytes decoded as UTF-8 whole
    if isinstance(html, bytes):
        text, utf8 = decode_html_utf8(html, declared_charset)
    else:
        text = html
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
        utf8 = False
    if text.count("<") > _PRESCAN_TAGS and _too_deep(text, MAX_DEPTH):
        raise PageError("html_too_deep", f"nesting deeper than {MAX_DEPTH} levels")
    # lexbor parses UTF-8 bytes; the text would be encoded back to the page's own bytes
    parser = LexborHTMLParser(html if utf8 else text)
    if _swallowed(parser):  # parse again with those elements closed where they were written
        closed = _SELF_CLOSED_RAW.sub(r"<\1\2></\1>", text)
        if closed != text:
            parser = LexborHTMLParser(closed)
    title_node = parser.css_first("title")
    title = " ".join(title_node.text().split()) if title_node is not None else ""
    html_node = parser.css_first("html")
    lang = ""
    if html_node is not None:
        lang = _attr(html_node, "lang") or _attr(html_node, "xml:lang")
    found = _page_nodes(parser)
    base = _attr(found["base"][0], "href") if found["base"] else ""
    canonical = _attr(found["canonical"][0], "href") if found["canonical"] else ""
    redirect = meta_redirect(_attr(found["refresh"][0], "content")) if found["refresh"] else ""
    root = _main_root(parser, found)
    if not lang:  # DocBook/publican put it on the content element, not on <html>
        for sel in ("body [lang]", 'meta[http-equiv="content-language" i]'):
            n = parser.css_first(sel)
            if n is not None:
                lang = _attr(n, "lang") or _attr(n, "content")
                break
    if root is None:
        return Page(title, lang, [], base, canonical, redirect)
    tags = _skip_tags(root)
    skip = _skip_set(root, tags)
    # Doxygen's code fragments (a lexbor query only where the word is: it costs every page)
    code = {n.mem_id for n in root.css("div.fragment")} if "fragment" in text else set()
    ent = _walk(root, skip, tags, _captions(root, skip, parser.body), code)
    items = _join(ent, select(ent, _name_of, title))
    return Page(title, lang, items, base, canonical, redirect)
