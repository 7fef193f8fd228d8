"""The `html` source: local pages -> interleaved Documents (text blocks and images in order).

`ingest_html` walks directories for *.html / *.htm / *.xhtml (each also gzipped), sorted; each
page is extracted (`html_extract`: DOM walk and boilerplate, decoded by `html_decode`), its images
resolved (`html_images`), and made a Document (`page_document`, shared with the WARC source). A
page found by walking a directory must lie inside it once symlinks are followed, and must be a
regular file.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

from vloom.doc import Document
from vloom.ingest.base import (
    CorruptGzip,
    IngestError,
    IngestOptions,
    UnitBoundary,
    inside_root,
    primary_language,
    read_input_file,
    symlinked_dirs_note,
)
from vloom.ingest.html_decode import decode_html
from vloom.ingest.html_extract import MAX_DEPTH, ImageRef, Page, PageError, extract_page, text_chars
from vloom.ingest.html_images import (
    ImageChecker,
    ImageStore,
    PageSource,
    attach_images,
    resolve_src,
)
from vloom.ingest.run import record_image
from vloom.ledger import Ledger

__all__ = [
    "HTML_SUFFIXES",
    "MAX_DEPTH",
    "MAX_PAGE_BYTES",
    "ImageChecker",
    "ImageRef",
    "ImageStore",
    "Page",
    "PageError",
    "PageSource",
    "attach_images",
    "decode_html",
    "doc_id",
    "extract_page",
    "ingest_html",
    "page_document",
    "resolve_src",
    "walk_inputs",
]

HTML_SUFFIXES = (".html", ".htm", ".xhtml", ".html.gz", ".htm.gz", ".xhtml.gz")
MAX_PAGE_BYTES = 32 * 1024 * 1024


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
    """The page as a Document, or None after counting it dropped (a redirect, too little
    text)."""
    why = "redirect" if page.redirect else ""
    if not why and text_chars(page.items) < max(opts.min_text_chars, 1):
        why = "no_content"
    if why:
        ledger.drop(kind, why)
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
    lang = opts.language or primary_language(page.lang)
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
    ("outside_root"), and every page must be a regular file (a FIFO is "unreadable_file").
    A page that raises or runs past `opts.unit_timeout` is "page_error:<Type>"/"page_timeout".
    With `opts.input_root` (the parallel runner), every input is a file found under it."""
    checker = ImageChecker(opts.max_image_bytes)
    boundary = UnitBoundary(ledger, opts, "page")
    n = 0
    named = {Path(p) for p in inputs if not Path(p).is_dir()} if opts.input_root is None else set()
    for root, path in walk_inputs(inputs, HTML_SUFFIXES):
        if opts.input_root is not None:
            root = Path(opts.input_root)
        n += 1
        ledger.input += 1
        if path not in named and not inside_root(path, root):
            ledger.reject("outside_root")  # a symlink out of the input directory: never read
            continue
        rel = os.path.relpath(path, root).replace(os.sep, "/")
        doc = boundary.call(str(path), _local_page, path, root, rel, ledger, opts, checker)
        if doc is not None:
            yield doc
    if n == 0:
        names = ", ".join(str(p) for p in inputs)
        note = symlinked_dirs_note(inputs)
        raise IngestError(f"{names}: no {' / '.join(HTML_SUFFIXES)} files found{note}")


def _local_page(
    path: Path, root: Path, rel: str, ledger: Ledger, opts: IngestOptions, checker: ImageChecker
) -> Document | None:
    try:
        data = read_input_file(path, MAX_PAGE_BYTES)
    except CorruptGzip:
        ledger.reject("gzip_corrupt")
        return None
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
