"""Image references of a page -> bytes: data: URIs, files under the input root, a store, the web.

`attach_images` turns a page's image references into bytes: data: URIs, local files under the
input root (never outside it), an `ImageStore` (a WARC's image records), or - only with
`opts.fetch` - the network. Every image passes `vloom.media.check_image`; each outcome is counted
in the ledger (`record_image`) and each attached image gets an entry in metadata["images"].
"""

from __future__ import annotations

import base64
import functools
import hashlib
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, unquote_to_bytes, urljoin, urlsplit

from vloom.ingest.base import IngestOptions, read_regular_file
from vloom.ingest.html_extract import ImageRef, Page
from vloom.ingest.run import record_image
from vloom.ledger import Ledger
from vloom.media import ImageError, check_image


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
            if not os.path.isfile(real):
                os.stat(real)  # FileNotFoundError: try the next spelling
                return "not_a_file", last_rel
            # non-blocking open + fstat: a path swapped for a FIFO after the check cannot hang
            return read_regular_file(Path(real), max_bytes), last_rel
        except FileNotFoundError:
            continue
        except ValueError:
            return "image_too_large", last_rel
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
    if _PLAIN_SRC.fullmatch(src):  # "images/a.png" on an http(s) page: urljoin's answer, faster
        folder = _base_folder(base)
        if folder:
            return folder + src
    try:
        url = urljoin(base, src)
    except ValueError:
        return ""
    return url.split("#", 1)[0]


# A relative path urljoin only appends to the page's folder: no scheme (no ":" before the first
# "/"), query, fragment, params, leading "/", empty, "." or ".." segment, space or control
# character (which urljoin strips or removes), nothing but URL path characters.
_PLAIN_SRC = re.compile(
    r"(?!\.\.?(?:/|$))[\w\-.~%!$&'()*+,=@]+(?:/(?!\.\.?(?:/|$))[\w\-.~%!$&'()*+,=@:]+)*",
    re.ASCII,
)
_PLAIN_BASE = re.compile(
    r"(https?)://([\w\-.~%!$&'()*+,;=:@]+)((?:/(?!\.\.?(?:/|$))[\w\-.~%!$&'()*+,=@:]+)*/)[^/?#;]*",
    re.IGNORECASE | re.ASCII,
)


@functools.lru_cache(maxsize=1024)
def _base_folder(base: str) -> str:
    """ "scheme://host/dir/" of a plain http(s) page URL (no empty, "." or ".." segment in its
    folder, no params there), which urljoin joins a plain relative path to; "" for any other."""
    m = _PLAIN_BASE.fullmatch(base)
    if m is None:
        return ""
    return f"{m[1].lower()}://{m[2]}{m[3]}"


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
