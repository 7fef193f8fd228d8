"""Bytes of an HTML page -> text, as a browser would choose the encoding."""

from __future__ import annotations

import codecs
import re

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
    return decode_html_utf8(data, declared)[0]


def decode_html_utf8(data: bytes, declared: str | None = None) -> tuple[str, bool]:
    """(decode_html's text, whether it is `data` decoded as UTF-8 whole - so that the text
    encoded as UTF-8 is `data` itself, which a parser can take as it is)."""
    for bom, enc in _BOMS:
        if data.startswith(bom):
            return data[len(bom) :].decode(enc, "replace"), False
    enc = _codec(declared)
    if enc:
        try:
            return data.decode(enc), enc == "utf-8"
        except UnicodeDecodeError:
            pass
    try:
        return data.decode("utf-8"), True
    except UnicodeDecodeError:
        pass
    m = _CHARSET.search(data[:1024])
    enc = _codec(m.group(1)) if m else None
    return data.decode(enc or "cp1252", "replace"), False
