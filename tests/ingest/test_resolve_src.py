"""resolve_src's shortcut for a plain relative path on a plain http(s) page gives exactly what
urljoin gives, on URLs built from the characters that change urljoin's answer."""

from __future__ import annotations

import random
from urllib.parse import urljoin

from vloom.ingest import html_images
from vloom.ingest.html_images import resolve_src


def _by_urljoin(src: str, base: str) -> str:
    src = src.strip().replace("\\", "/") if not src.startswith("data:") else src
    if not src:
        return ""
    if src[:5].lower() == "data:":
        return src
    try:
        return urljoin(base, src).split("#", 1)[0]
    except ValueError:
        return ""


_PARTS = ["a", "img", "x.png", ".", "..", "...", "", "%20", "é", ":", ";p", "?q=1", "#f", "~u",
          "a b", "\t", "\n", "[", "]", "@", "+", "data:", "HTTP:", "//", "\\", " "]  # fmt: skip
_HOSTS = ["docs.gimp.org", "Example.COM:8080", "user@host", "[::1]", "[bad", "h%41", "hé.de", ""]
_SCHEMES = ["https", "http", "HTTPS", "ftp", "file", ""]


def _path(rng: random.Random) -> str:
    return "/".join(rng.choice(_PARTS) for _ in range(rng.randrange(0, 5)))


def test_plain_relative_paths_resolve_as_urljoin_does():
    rng = random.Random(7)
    bases = ["https://docs.gimp.org/2.10/en/gimp-tool-align.html", "http://h/a/"]
    for _ in range(1000):
        scheme = rng.choice(_SCHEMES)
        bases.append(f"{scheme}://{rng.choice(_HOSTS)}/{_path(rng)}")
    srcs = ["images/toolbox/stock-tool-align-22.png", "x.png", "a/b:c/d.png", "a:b/c.png"]
    srcs += [_path(rng) for _ in range(2000)]
    fast = 0
    for base in bases:
        html_images._base_folder.cache_clear()
        for src in rng.sample(srcs, 40) + srcs[:4]:
            assert resolve_src(src, base) == _by_urljoin(src, base), (src, base)
            fast += bool(
                html_images._PLAIN_SRC.fullmatch(src.strip()) and html_images._base_folder(base)
            )
    assert fast > 500  # the shortcut was taken often
