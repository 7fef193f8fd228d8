"""report.html: a markdown report as one self-contained page that opens from disk.

The markdown (report.md, study.md) is rendered with markdown-it (CommonMark + tables); every
image it references is read from disk and embedded as a base64 data URI, the CSS is inline,
and nothing points outside the file, so the page makes no request of any kind. Raw HTML in
the markdown is escaped except the <details>/<summary> folds the reports use, so a run name
or a config value can never inject markup or a remote resource.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path
from typing import Any

from markdown_it import MarkdownIt

from vloom.ondisk import atomic_write_text

CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1b1b1b;
       max-width: 1100px; margin: 2em auto; padding: 0 1.2em; }
h1, h2, h3 { line-height: 1.2; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; }
table { border-collapse: collapse; margin: .8em 0; font-size: 13.5px; }
th, td { border: 1px solid #d0d0d0; padding: .25em .6em; vertical-align: top; }
th { background: #f3f3f3; } tr:nth-child(even) td { background: #fafafa; }
img { max-width: 100%; height: auto; border: 1px solid #eee; }
code, pre { font: 12.5px/1.4 ui-monospace, "DejaVu Sans Mono", monospace; }
pre { background: #f6f6f6; padding: .7em; overflow-x: auto; }
details { margin: .6em 0; } summary { cursor: pointer; color: #333; }
.missing { color: #a33; font-style: italic; }
"""
# The only markup kept from raw HTML: bare <details>/<summary> tags (a block such as
# `<details><summary>Configuration</summary>` keeps its tags and escapes its text).
_FOLD_TAG = re.compile(r"(</?(?:details|summary)>)")
_MIME = {".png": "image/png", ".svg": "image/svg+xml", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}


def _renderer(base_dir: Path) -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": True}).enable("table")

    def image(self: Any, tokens: list, idx: int, options: Any, env: Any) -> str:
        tok = tokens[idx]
        src = str(tok.attrGet("src") or "")
        alt = html.escape(tok.content or "", quote=True)
        path = (base_dir / src) if not re.match(r"^[a-z][a-z0-9+.-]*:", src, re.I) else None
        mime = _MIME.get(path.suffix.lower()) if path else None
        if path is None or mime is None or not path.is_file():
            # A remote or missing image would be a request or a broken <img>: say so instead.
            return f'<span class="missing">[image not available: {html.escape(src)}]</span>'
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        return f'<img src="data:{mime};base64,{data}" alt="{alt}">'

    def raw(self: Any, tokens: list, idx: int, options: Any, env: Any) -> str:
        parts = _FOLD_TAG.split(tokens[idx].content)  # odd positions are the kept tags
        return "".join(p if i % 2 else html.escape(p) for i, p in enumerate(parts))

    md.add_render_rule("image", image)
    md.add_render_rule("html_inline", raw)
    md.add_render_rule("html_block", raw)
    # Links may only point inside the page or at relative files beside it.
    md.validateLink = lambda url: not re.match(r"^\s*(?:[a-z][a-z0-9+.-]*:|//)", url, re.I)
    return md


def markdown_to_html(text: str, base_dir: str | Path, title: str) -> str:
    """A complete HTML document for markdown `text`; images resolve relative to `base_dir`."""
    body = _renderer(Path(base_dir)).render(text)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        # Forbid any network fetch even if something slipped through: data: images only.
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "img-src data:; style-src 'unsafe-inline'\">\n"
        f"<title>{html.escape(title)}</title>\n<style>{CSS}</style>\n</head>\n"
        f"<body>\n{body}</body>\n</html>\n"
    )


def write_html(md_path: str | Path, title: str | None = None) -> Path:
    """Render `X.md` to `X.html` beside it (written then renamed); return the HTML path."""
    md_path = Path(md_path)
    text = md_path.read_text()
    if title is None:
        first = next((ln for ln in text.splitlines() if ln.startswith("# ")), md_path.stem)
        title = first.removeprefix("# ").strip()
    out = md_path.with_suffix(".html")
    return atomic_write_text(out, markdown_to_html(text, md_path.parent, title))
