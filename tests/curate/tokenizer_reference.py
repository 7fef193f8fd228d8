"""The word tokenizer's affix loop as it was before it was made linear (O(n^2) on long runs).

Kept only as the oracle of `test_curate_linear.py`: the linear `_chunk_tokens` must give
exactly these tokens. Uses the module's own rules (patterns, exception table).
"""

import re

from vloom.curate.filters.text_stats import _BARE, _EXCEPTIONS, _INFIX, _PREFIX, _SUFFIX, EMOTICONS
from vloom.curate.filters.text_stats import _special as special

# spaCy's URL pattern as it was (its userinfo part backtracks in O(n^2) on colons)
_URL = re.compile(
    r"(?:[\w+\-.]{2,}://)?(?:\S+(?::\S*)?@)?"
    r"(?:\d{1,3}(?:\.\d{1,3}){3}|(?:(?:[A-Za-z0-9\u00a1-\uffff][A-Za-z0-9\u00a1-\uffff_-]{0,62})?"
    r"[A-Za-z0-9\u00a1-\uffff]\.)+[a-z\u00df-\u00f6\u00f8-\u00ff]{2,63})(?::\d{2,5})?(?:[/?#]\S*)?"
)


def _merge_emoticons(toks: list[str]) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(toks):
        for j in range(min(len(toks), i + 6), i + 1, -1):
            if "".join(toks[i:j]) in EMOTICONS:
                out.append("".join(toks[i:j]))
                i = j
                break
        else:
            out.append(toks[i])
            i += 1
    return out


def _chunk_tokens(s: str, out: list[str]) -> None:
    suffixes: list[str] = []
    while s:
        sp = special(s)
        if sp is not None:
            out += sp
            s = ""
            break
        changed = False
        m = _PREFIX.match(s)
        if m and m.end() < len(s):
            out.append(m.group())
            s = s[m.end() :]
            changed = True
            if special(s) is not None:
                continue
        m = _SUFFIX.search(s)
        if m and m.start() > 0:
            suffixes.append(m.group())
            s = s[: m.start()]
            changed = True
        if not changed:
            break
    if s:
        if _URL.fullmatch(s):
            out.append(s)
        else:
            i = 0
            for m in _INFIX.finditer(s):
                if m.start() > i:
                    out.append(s[i : m.start()])
                if m.end() > m.start():
                    out.append(m.group())
                i = m.end()
            if i < len(s):
                out.append(s[i:])
    out += reversed(suffixes)


def split_chunk(chunk: str) -> list[str]:
    """The reference tokens of one whitespace-free chunk."""
    if chunk.isalpha() and chunk not in _EXCEPTIONS and not _BARE.fullmatch(chunk):
        return [chunk]
    toks: list[str] = []
    _chunk_tokens(chunk, toks)
    return _merge_emoticons(toks) if len(toks) > 1 else toks
