"""HTML pages -> interleaved Documents: text blocks and images where they stand, boilerplate out.

`extract_page` parses with selectolax (lexbor) and walks the DOM of the main content
(<main>, role=main, a lone <article>, else <body>) iteratively, so nesting depth cannot exhaust
Python's stack. Boilerplate (navigation, headers/footers, menus, cookie banners, scripts and
styles, forms, hidden elements, and class/id names such as DocBook's navheader/navfooter,
breadcrumbs, sidebars, skip links) is found with CSS selectors in lexbor and skipped whole.
Text becomes blocks (paragraphs, headings, list items, table rows, <pre> verbatim); consecutive
blocks between two images form one text item, as in OBELICS.

`attach_images` turns a page's image references into bytes: data: URIs, local files under the
input root (never outside it), an `ImageStore` (a WARC's image records), or - only with
`opts.fetch` - the network. Every image passes `vloom.media.check_image`; each outcome is counted
in the ledger (`record_image`) and each attached image gets an entry in metadata["images"].

The `html` source (`ingest_html`) walks directories for *.html / *.htm / *.xhtml, sorted.
"""

from __future__ import annotations

import base64
import codecs
import functools
import hashlib
import os
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, unquote_to_bytes, urljoin, urlsplit

from selectolax.lexbor import LexborHTMLParser, LexborNode

from vloom.doc import Document
from vloom.ingest.base import IngestError, IngestOptions, inside_root, read_regular_file
from vloom.ingest.run import record_image
from vloom.ledger import Ledger
from vloom.media import ImageError, check_image

HTML_SUFFIXES = (".html", ".htm", ".xhtml")
# Chrome's parser stops nesting at 512 levels; real pages stay far below this. Deeper pages are
# rejected ("html_too_deep") rather than walked: they are adversarial or broken.
MAX_DEPTH = 2048
# lexbor's tree builder is quadratic in nesting depth (100k levels take ~15 s), so pages with
# this many tags get a cheap depth pre-scan before parsing.
_PRESCAN_TAGS = 20_000
MAX_PAGE_BYTES = 32 * 1024 * 1024

# --- boilerplate -------------------------------------------------------------------------------
_SKIP_TAGS = (
    "nav aside script style noscript template form button select textarea input iframe object "
    "embed canvas svg dialog menu head title map audio video"
).split()
_SKIP_ATTRS = (
    "[hidden]",
    "[aria-hidden=true]",
    '[style*="display:none"]',
    '[style*="display: none"]',
    '[style*="visibility:hidden"]',
    '[style*="visibility: hidden"]',
    "[role=navigation]",
    "[role=banner]",
    "[role=contentinfo]",
    "[role=complementary]",
    "[role=search]",
    "[role=menu]",
    "[role=menubar]",
    "[role=dialog]",
    "[role=alertdialog]",
)
# Parts of class/id names (split on whitespace, '-' and '_') that mark boilerplate. Matched as
# whole parts, so DocBook's inline "guimenu" / "menuchoice" spans are not "menu".
_BOILER_PARTS = frozenset(
    """nav navbar navigation navheader navfooter navlinks docnav menu menubar megamenu breadcrumb
    breadcrumbs crumbs sidebar cookie cookies cookiebanner consent gdpr skip skiplink skiplinks
    share sharing sharebar social advert advertisement adverts ads banner popup newsletter
    subscribe footer masthead toolbar pagination pager""".split()
)
# "has-sidebar", "no-footer": layout flags on wrappers, not boilerplate themselves.
_NEGATING = frozenset("has no with without is show hide not".split())
_BOILER_CANDIDATES = ", ".join(
    f"[{a}*={p}]"
    for p in (
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
        "ads",
        "banner",
        "popup",
        "newsletter",
        "subscribe",
        "footer",
        "masthead",
        "toolbar",
        "pag",
    )
    for a in ("class", "id")
)
_PART_SPLIT = re.compile(r"[\s_\-]+")

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


class PageError(ValueError):
    """A page that cannot be ingested; `reason` is the ledger slug."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


# --- decoding ----------------------------------------------------------------------------------
_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_CHARSET = re.compile(rb"""charset\s*=\s*["']?\s*([A-Za-z0-9_\-.:]+)""", re.I)


def _codec(label: str | bytes | None) -> str | None:
    if not label:
        return None
    if isinstance(label, bytes):
        label = label.decode("ascii", "ignore")
    try:
        name = codecs.lookup(label.strip()).name
    except LookupError:
        return None
    # HTML treats latin-1/ascii labels as windows-1252; utf-16 in a meta tag means utf-8.
    return {
        "latin-1": "cp1252",
        "iso8859-1": "cp1252",
        "ascii": "cp1252",
        "utf-16": "utf-8",
        "utf-16-le": "utf-8",
        "utf-16-be": "utf-8",
    }.get(name, name)


def decode_html(data: bytes, declared: str | None = None) -> str:
    """Bytes -> text: BOM, then the transport's charset, then valid UTF-8, then <meta charset>
    in the first 1024 bytes, then windows-1252 (what browsers fall back to). Never raises."""
    for bom, enc in _BOMS:
        if data.startswith(bom):
            return data[len(bom) :].decode(enc, "replace")
    enc = _codec(declared)
    if enc:
        try:
            return data.decode(enc)
        except UnicodeDecodeError:
            pass
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    m = _CHARSET.search(data[:1024])
    enc = _codec(m.group(1)) if m else None
    return data.decode(enc or "cp1252", "replace")


_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9:-]*)[^>]*?(/?)>")
_VOID = frozenset("area base br col embed hr img input link meta source track wbr".split())
# Elements whose start tag closes an open one of the same kind, so they do not nest in practice.
_SELF_CLOSING_KIN = frozenset("p li dt dd option tr td th".split())


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


def _is_boiler_name(value: str) -> bool:
    for token in value.lower().split():
        parts = _PART_SPLIT.split(token)
        if parts[0] in _NEGATING:
            continue
        if any(p in _BOILER_PARTS for p in parts):
            return True
    return False


def _is_prose_sidebar(node: LexborNode, words: int) -> bool:
    """DocBook's <sidebar> (div.sidebar: tips, notes) is prose; a site's sidebar is links.
    Only "sidebar" names get this test: cookie banners and menus go whatever their text."""
    cls = (node.attributes.get("class") or "").lower().split()
    if not any("sidebar" in _PART_SPLIT.split(c) for c in cls):
        return False
    link_words = sum(len((a.text(deep=True) or "").split()) for a in node.css("a"))
    return link_words < 0.25 * words


def _skip_set(root: LexborNode) -> set[int]:
    """mem_ids of boilerplate elements under `root` (the walk skips them with their subtree)."""
    tags = list(_SKIP_TAGS)
    if root.tag == "body":  # inside <main>/<article> a <header> holds the title: keep it there
        tags.append("header")
    tags.append("footer")
    skip = {n.mem_id for n in root.css(", ".join(tags + list(_SKIP_ATTRS)))}
    total = -1
    for n in root.css(_BOILER_CANDIDATES):
        a = n.attributes
        if _is_boiler_name(a.get("class") or "") or _is_boiler_name(a.get("id") or ""):
            if total < 0:
                total = len((root.text(deep=True) or "").split())
            words = len((n.text(deep=True) or "").split())
            # a name-matched element holding most of the page's words is a layout wrapper
            # ("sidebar-layout", "nav-container"), not boilerplate
            if total >= 20 and words > total // 2:
                continue
            if words >= 30 and _is_prose_sidebar(n, words):
                continue
            skip.add(n.mem_id)
    return skip


def _caption(img: LexborNode) -> str:
    """<figure>'s <figcaption>, or the caption/title of a DocBook-style div.figure around it."""
    node = img.parent
    for _ in range(6):
        if node is None or node.tag in ("body", "html"):
            return ""
        if node.tag == "figure":
            cap = node.css_first("figcaption")
            return " ".join(cap.text(deep=True).split()) if cap is not None else ""
        cls = (node.attributes.get("class") or "").split()
        if any(c in ("figure", "informalfigure", "mediaobject", "caption-wrapper") for c in cls):
            cap = node.css_first(".caption, .title, figcaption")
            if cap is not None:
                return " ".join(cap.text(deep=True).split())
        node = node.parent
    return ""


class _Emitter:
    """Collects inline text into blocks and blocks into text items, split by images."""

    __slots__ = ("items", "blocks", "buf", "pending")

    def __init__(self) -> None:
        self.items: list[str | ImageRef] = []
        self.blocks: list[str] = []
        self.buf: list[str] = []
        self.pending = _NONE

    def boundary(self, kind: int) -> None:
        if self.buf:
            self._flush_buf()
        if kind > self.pending:
            self.pending = kind

    def _flush_buf(self) -> None:
        raw = "".join(self.buf)
        self.buf.clear()
        if _BR in raw:  # <br> made lines: keep them, collapse spaces inside each
            lines = [" ".join(line.split()) for line in raw.split(_BR)]
            text = "\n".join(line for line in lines if line)
        else:
            text = " ".join(raw.split())
        if text:
            self.add_block(text)

    def add_block(self, text: str) -> None:
        if self.blocks:
            self.blocks.append(_SEPS[self.pending or _LINE])
        self.blocks.append(text)
        self.pending = _NONE

    def image(self, ref: ImageRef) -> None:
        self.boundary(_NONE)
        self._end_text()
        self.items.append(ref)

    def _end_text(self) -> None:
        if self.blocks:
            self.items.append("".join(self.blocks))
            self.blocks = []
        self.pending = _NONE

    def finish(self) -> list[str | ImageRef]:
        self.boundary(_NONE)
        self._end_text()
        return self.items


def _walk(root: LexborNode, skip: set[int]) -> list[str | ImageRef]:
    """Iterative depth-first walk of `root`'s subtree in document order (no recursion)."""
    em = _Emitter()
    buf = em.buf
    exits: list[int] = []  # block kind of each element we descended into
    node = root.child
    while node is not None:
        tag = node.tag
        if tag == "-text":
            buf.append(node.text_content)
        elif tag is not None and tag[0] != "-" and node.mem_id not in skip:
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
                        _caption(node),
                    )
                )
            elif tag == "br":
                buf.append(_BR)
            elif tag == "pre" or tag == "listing" or tag == "xmp":
                em.boundary(_PARA)
                text = (node.text(deep=True) or "").strip("\n").rstrip()
                if text.strip():
                    em.add_block(text)
                em.boundary(_PARA)
            else:
                kind = _BLOCK.get(tag, _NONE)
                if kind:
                    em.boundary(kind)
                child = node.child
                if child is not None:
                    if len(exits) >= MAX_DEPTH:
                        raise PageError("html_too_deep", f"nesting deeper than {MAX_DEPTH}")
                    exits.append(kind)
                    node = child
                    continue
                if kind:
                    em.boundary(kind)
        # next node: the sibling, else climb (closing blocks) until an ancestor has a sibling
        nxt = node.next
        while nxt is None:
            if not exits:
                return em.finish()
            node = node.parent
            kind = exits.pop()
            if kind:
                em.boundary(kind)
            nxt = node.next
        node = nxt
    return em.finish()


def _main_root(parser: LexborHTMLParser) -> LexborNode | None:
    for sel in ("main", "[role=main]"):
        n = parser.css_first(sel)
        if n is not None:
            return n
    arts = parser.css("article")
    if len(arts) == 1:
        return arts[0]
    return parser.body


def _text_chars(items: list[str | ImageRef]) -> int:
    return sum(len(i) for i in items if isinstance(i, str))


def extract_page(html: str | bytes, declared_charset: str | None = None) -> Page:
    """Parse one page into text items and image references; raises PageError(reason)."""
    text = decode_html(html, declared_charset) if isinstance(html, bytes) else html
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    if text.count("<") > _PRESCAN_TAGS and _too_deep(text, MAX_DEPTH):
        raise PageError("html_too_deep", f"nesting deeper than {MAX_DEPTH} levels")
    parser = LexborHTMLParser(text)
    title_node = parser.css_first("title")
    title = " ".join(title_node.text().split()) if title_node is not None else ""
    html_node = parser.css_first("html")
    lang = ""
    if html_node is not None:
        lang = _attr(html_node, "lang") or _attr(html_node, "xml:lang")
    base_node = parser.css_first("base[href]")
    base = _attr(base_node, "href") if base_node is not None else ""
    canon_node = parser.css_first('link[rel="canonical" i][href]')
    canonical = _attr(canon_node, "href") if canon_node is not None else ""
    root = _main_root(parser)
    if not lang:  # DocBook/publican put it on the content element, not on <html>
        for sel in ("body [lang]", 'meta[http-equiv="content-language" i]'):
            n = parser.css_first(sel)
            if n is not None:
                lang = _attr(n, "lang") or _attr(n, "content")
                break
    if root is None:
        return Page(title, lang, [], base, canonical)
    return Page(title, lang, _walk(root, _skip_set(root)), base, canonical)


# --- images ------------------------------------------------------------------------------------
class ImageStore(Protocol):
    """Image bytes by absolute URL from somewhere other than disk or the network (a WARC)."""

    def get(self, url: str) -> bytes | str | None:
        """Bytes, a failure reason, or None if the store does not hold `url`."""


@dataclass
class PageSource:
    """Where a page came from: its URL (http(s) or file:) and, for local pages, the input root."""

    url: str
    root: Path | None = None  # local pages: images must resolve inside this directory
    rel: str = ""  # local pages: path relative to root


class ImageChecker:
    """check_image with a verdict cache by URL/path (manuals reuse icons on every page)."""

    def __init__(self, max_bytes: int, cache_size: int = 100_000) -> None:
        self.max_bytes = max_bytes
        self.cache: dict[str, tuple[str, int, int] | str] = {}
        self.cache_size = cache_size

    def check(self, key: str, data: bytes) -> tuple[str, int, int] | str:
        hit = self.cache.get(key)
        if hit is not None:
            return hit
        if len(data) > self.max_bytes:
            verdict: tuple[str, int, int] | str = "image_too_large"
        else:
            try:
                with warnings.catch_warnings():  # Pillow's palette/transparency notes: noise here
                    warnings.simplefilter("ignore", UserWarning)
                    verdict = check_image(data)
            except ImageError as e:
                verdict = e.reason
        if len(self.cache) >= self.cache_size:
            self.cache.clear()
        self.cache[key] = verdict
        return verdict


def _decode_data_uri(uri: str) -> bytes | str:
    head, sep, payload = uri[5:].partition(",")
    if not sep:
        return "bad_data_uri"
    try:
        if head.lower().endswith(";base64"):
            return base64.b64decode(unquote(payload).strip(), validate=False)
        return unquote_to_bytes(payload)
    except ValueError:
        return "bad_data_uri"


@functools.lru_cache(maxsize=1024)
def _realpath(path: str) -> str:
    return os.path.realpath(path)  # input roots: resolved once, not once per image


def _read_local(url: str, src: PageSource, max_bytes: int) -> tuple[bytes | str, str]:
    """Read a file: URL inside the input root: (bytes or reason, path relative to the root)."""
    assert src.root is not None
    parts = urlsplit(url)
    raw_path = parts.path
    candidates = [unquote(raw_path)]
    if "%" in raw_path:
        candidates.append(raw_path)  # a file whose name really contains '%xx'
    root = _realpath(str(src.root))
    last_rel = candidates[0]
    for cand in candidates:
        real = os.path.realpath(cand)
        if real != root and not real.startswith(root + os.sep):
            # never read: ../ or a symlink leaving the input root (metadata shows the src as written)
            return "outside_root", ""
        last_rel = os.path.relpath(real, root).replace(os.sep, "/")
        try:
            size = os.path.getsize(real)
            if not os.path.isfile(real):
                return "not_a_file", last_rel
            if size > max_bytes:
                return "image_too_large", last_rel
            with open(real, "rb") as f:
                return f.read(), last_rel
        except FileNotFoundError:
            continue
        except OSError:
            return "unreadable", last_rel
    return "file_not_found", last_rel


def resolve_src(src: str, base: str) -> str:
    """An <img src> made absolute against the page (or <base>) URL; "" if it cannot be."""
    src = src.strip().replace("\\", "/") if not src.startswith("data:") else src
    if not src:
        return ""
    if src[:5].lower() == "data:":
        return src
    try:
        url = urljoin(base, src)
    except ValueError:
        return ""
    return url.split("#", 1)[0]


def attach_images(
    page: Page,
    src: PageSource,
    ledger: Ledger,
    opts: IngestOptions,
    checker: ImageChecker,
    store: ImageStore | None = None,
) -> tuple[list[str | bytes], list[dict], list[dict]]:
    """Resolve the page's image references. Returns (items, images metadata, missing metadata)."""
    base = src.url
    if page.base and src.root is None:  # <base href> only for web pages; local files stay local
        base = urljoin(src.url, page.base)
    resolved: list[tuple[ImageRef, str, str, bytes | str]] = []  # ref, origin, url, data|reason
    root_uri = Path(os.path.abspath(src.root)).as_uri() + "/" if src.root is not None else ""
    remote: list[int] = []
    for item in page.items:
        if isinstance(item, str):
            continue
        s = item.src.strip()
        if src.root is not None and s.startswith("/") and not s.startswith("//"):
            url = resolve_src(s.lstrip("/"), root_uri)  # "/img/x.png": <input root>/img/x.png
        else:
            url = resolve_src(s, base)
        scheme = url.split(":", 1)[0].lower() if url else ""
        if not item.src.strip():
            resolved.append((item, "none", "", "no_src"))
        elif scheme == "data":
            resolved.append((item, "data", "data:", _decode_data_uri(url)))
        elif scheme == "file":
            if src.root is None:
                resolved.append((item, "local", url, "local_file_from_web_page"))
            else:
                data, rel = _read_local(url, src, opts.max_image_bytes)
                resolved.append((item, "local", rel, data))
        elif scheme in ("http", "https"):
            hit = store.get(url) if store is not None else None
            if hit is not None:
                resolved.append((item, "warc", url, hit))
            else:
                remote.append(len(resolved))
                resolved.append((item, "remote", url, "remote_not_fetched"))
        else:
            resolved.append((item, "other", url, "unsupported_src"))
    if remote and opts.fetch:
        fetched = _fetch(sorted({resolved[i][2] for i in remote}), opts)
        for i in remote:
            ref, origin, url, _ = resolved[i]
            resolved[i] = (ref, origin, url, fetched.get(url, "fetch_failed"))

    items: list[str | bytes] = []
    meta: list[dict] = []
    missing: list[dict] = []
    it = iter(resolved)
    for item in page.items:
        if isinstance(item, str):
            if items and isinstance(items[-1], str):  # the image between them was left out
                items[-1] = f"{items[-1]}\n\n{item}"
            else:
                items.append(item)
            continue
        ref, origin, url, data = next(it)
        if isinstance(data, bytes):
            key = url if origin != "data" else hashlib.sha1(data).hexdigest()
            verdict = checker.check(f"{origin}:{key}", data)
            if isinstance(verdict, tuple):
                record_image(ledger, origin, "attached")
                fmt, w, h = verdict
                items.append(data)
                meta.append(
                    {
                        "src": url,
                        "alt": ref.alt,
                        "title": ref.title,
                        "caption": ref.caption,
                        "format": fmt,
                        "width": w,
                        "height": h,
                    }
                )
                continue
            data = verdict
        record_image(ledger, origin, data)
        missing.append({"src": url or ref.src[:200], "reason": data})
    return items, meta, missing


def _fetch(urls: list[str], opts: IngestOptions) -> dict[str, bytes | str]:
    try:
        from vloom.ingest.fetch import fetch_images
    except ImportError:
        return {u: "fetch_unavailable" for u in urls}
    return fetch_images(urls, opts)


def page_document(
    page: Page,
    src: PageSource,
    ledger: Ledger,
    opts: IngestOptions,
    checker: ImageChecker,
    kind: str,
    doc_id: str,
    store: ImageStore | None = None,
    extra_meta: dict | None = None,
) -> Document | None:
    """The page as a Document, or None after counting it dropped (too little text)."""
    if _text_chars(page.items) < max(opts.min_text_chars, 1):
        ledger.drop(kind, "no_content")
        for item in page.items:  # its images are not attached: say so
            if isinstance(item, ImageRef):
                record_image(ledger, "page", "page_dropped")
        return None
    items, meta, missing = attach_images(page, src, ledger, opts, checker, store)
    metadata: dict = {"title": page.title, "images": meta}
    if missing:
        metadata["images_missing"] = missing
    if page.canonical:
        metadata["canonical_url"] = page.canonical
    if extra_meta:
        metadata.update(extra_meta)
    lang = opts.language or page.lang.split("-")[0].split("_")[0].lower()
    return Document.from_items(
        doc_id,
        items,
        source=kind,
        url=src.url if src.root is None else src.rel,
        language=lang,
        metadata=metadata,
    )


def doc_id(kind: str, key: str) -> str:
    """A stable id from what identifies the page (its URL, or its path under the input root)."""
    return f"{kind}-{hashlib.sha1(key.encode('utf-8', 'surrogatepass')).hexdigest()[:20]}"


# --- the `html` source -------------------------------------------------------------------------
def walk_inputs(inputs: list[Path], suffixes: tuple[str, ...]) -> Iterator[tuple[Path, Path]]:
    """(root, file) for every matching file: named files, or directories walked sorted.

    Directory symlinks are not followed (no loops, no leaving the tree).
    """
    for inp in inputs:
        if inp.is_dir():
            for dirpath, dirnames, filenames in os.walk(inp):
                dirnames.sort()
                for name in sorted(filenames):
                    if name.lower().endswith(suffixes):
                        yield inp, Path(dirpath) / name
        else:
            yield inp.parent, inp


def ingest_html(inputs: list[Path], ledger: Ledger, opts: IngestOptions) -> Iterator[Document]:
    """The `html` source: local pages (files or directories) -> Documents.

    A page found by walking a directory must lie inside it once symlinks are followed
    ("outside_root"), and every page must be a regular file (a FIFO is "unreadable_file")."""
    checker = ImageChecker(opts.max_image_bytes)
    n = 0
    named = {Path(p) for p in inputs if not Path(p).is_dir()}
    for root, path in walk_inputs(inputs, HTML_SUFFIXES):
        n += 1
        ledger.input += 1
        if path not in named and not inside_root(path, root):
            ledger.reject("outside_root")  # a symlink out of the input directory: never read
            continue
        rel = os.path.relpath(path, root).replace(os.sep, "/")
        doc = _local_page(path, root, rel, ledger, opts, checker)
        if doc is not None:
            yield doc
    if n == 0:
        names = ", ".join(str(p) for p in inputs)
        raise IngestError(f"{names}: no {' / '.join(HTML_SUFFIXES)} files found")


def _local_page(
    path: Path, root: Path, rel: str, ledger: Ledger, opts: IngestOptions, checker: ImageChecker
) -> Document | None:
    try:
        data = read_regular_file(path, MAX_PAGE_BYTES)
    except ValueError:
        ledger.reject("page_too_large")
        return None
    except OSError:
        ledger.reject("unreadable_file")  # also a FIFO or device: never blocks
        return None
    try:
        page = extract_page(data)
    except PageError as e:
        ledger.reject(e.reason)
        return None
    src = PageSource(url=Path(os.path.abspath(path)).as_uri(), root=root, rel=rel)
    key = f"{Path(os.path.abspath(root)).name}/{rel}"
    return page_document(
        page, src, ledger, opts, checker, "html", doc_id("html", key), extra_meta={"path": rel}
    )
