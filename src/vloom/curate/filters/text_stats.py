"""Text statistics shared by the text-quality filters: words, sentences, lines, duplicates.

One word tokenizer for all of them, so thresholds mean the same thing in every step.
`words` re-implements the rules of spaCy's English tokenizer (`spacy.blank("en")`,
what datatrove's filters use) without spaCy: whitespace chunks, prefix / suffix /
infix punctuation rules, URLs whole, contractions split ("don't" -> "do" + "n't"),
abbreviations and emoticons whole. On the English Debian manuals it gives spaCy's
tokens on 811 of 812 pages; known gaps: spaCy's full exception table (about 1,300
entries, here the rule-shaped part) and letters outside Latin in its affix classes.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from vloom.doc import Document

# a sentence ends at terminal punctuation (plus closing quotes/brackets) followed by
# space and a non-lowercase character; "e.g. the" does not split (spaCy's abbreviations)
_SENT_END = re.compile(r"[.!?…。！？]+[\"'”’)\]]*\s+(?![a-z])")

# Unicode characters with the Sentence_Terminal property (the set datatrove also uses)
TERMINAL_PUNCTUATION = frozenset(
    "!.?\u0589\u061d\u061e\u061f\u06d4\u0700\u0701\u0702\u07f9\u0837\u0839\u083d\u083e"
    "\u0964\u0965\u104a\u104b\u1362\u1367\u1368\u166e\u1735\u1736\u17d4\u17d5\u17d6\u17d9"
    "\u17da\u1803\u1809\u1944\u1945\u1aa8\u1aa9\u1aaa\u1aab\u1b5a\u1b5b\u1b5e\u1b5f\u1b7d"
    "\u1b7e\u1c3b\u1c3c\u1c7e\u1c7f\u203c\u203d\u2047\u2048\u2049\u2e2e\u2e3c\u2e53\u2e54"
    "\u3002\ua4ff\ua60e\ua60f\ua6f3\ua6f7\ua876\ua877\ua8ce\ua8cf\ua92f\ua9c8\ua9c9\uaa5d"
    "\uaa5e\uaa5f\uaaf0\uaaf1\uabeb\ufe52\ufe56\ufe57\uff01\uff0e\uff1f\uff61\U00010a56"
    "\U00010a57\U00010f55\U00010f56\U00010f57\U00010f58\U00010f59\U00010f86\U00010f87"
    "\U00010f88\U00010f89\U00011047\U00011048\U000110be\U000110bf\U000110c0\U000110c1"
    "\U00011141\U00011142\U00011143\U000111c5\U000111c6\U000111cd\U000111de\U000111df"
    "\U00011238\U00011239\U0001123b\U0001123c\U000112a9\U0001144b\U0001144c\U000115c2"
    "\U000115c3\U000115c9\U000115ca\U000115cb\U000115cc\U000115cd\U000115ce\U000115cf"
    "\U000115d0\U000115d1\U000115d2\U000115d3\U000115d4\U000115d5\U000115d6\U000115d7"
    "\U00011641\U00011642\U0001173c\U0001173d\U0001173e\U00011944\U00011946\U00011a42"
    "\U00011a43\U00011a9b\U00011a9c\U00011c41\U00011c42\U00011ef7\U00011ef8\U00011f43"
    "\U00011f44\U00016a6e\U00016a6f\U00016af5\U00016b37\U00016b38\U00016b44\U00016e98"
    "\U0001bc9f\U0001da88"
)


# ---- word tokenizer: a re-implementation of spaCy's English rules (spacy.blank("en")) ----
# spaCy splits on whitespace, then peels prefixes and suffixes off each chunk, keeps
# URLs and listed exceptions whole, and splits what is left at infixes. The character
# classes below are spaCy's (Latin letters only); its exception table is reduced to
# the rule-shaped part (contractions, dotted abbreviations, a few words and emoticons).
_QUOTES = "'\"”“`‘´’‚,„»«「」『』（）〔〕【】《》〈〉⟦⟧"
_PUNCT = "…,:;!?¿؟¡()[]{}<>_#*&。？！，、；：～·।،۔؛٪"
_CURRENCY = "$£€¥฿₽﷼₴₠₡₢₣₤₥₦₧₨₩₪₫₭₮₯₰₱₲₳₵₶₷₸₹₺₻₼₾₿"
_UNITS = (
    "km|km²|km³|m|m²|m³|dm|dm²|dm³|cm|cm²|cm³|mm|mm²|mm³|ha|µm|nm|yd|in|ft|kg|g|mg|µg|t|lb|oz"
    "|m/s|km/h|kmh|mph|hPa|Pa|mbar|mb|MB|kb|KB|gb|GB|tb|TB|T|G|M|K|%"
)
_ICONS = "".join(c for c in map(chr, range(0x10000)) if unicodedata.category(c) == "So")
_ALPHA, _LOWER, _UPPER = "a-zA-ZÀ-ÖØ-öø-ɏ", "a-zß-öø-ÿ", "A-ZÀ-ÖØ-Þ"
_Q, _P, _C = re.escape(_QUOTES), re.escape(_PUNCT), re.escape(_CURRENCY)
_I = re.escape(_ICONS)
_PREFIX = re.compile(rf"\.\.+|''|[{_P}{_Q}{_C}{_I}§%=—–]|\+(?![0-9])")
_SUFFIX = re.compile(
    rf"(?:\.\.+|''|[{_P}{_Q}{_I}—–]|['’][sS]|(?<=[0-9])\+|(?<=°[FfCcKk])\.|(?<=[0-9])(?:[{_C}]|{_UNITS})"
    rf"|(?<=[0-9{_LOWER}%²\-+{_P}{_Q}])\.|(?<=[{_UPPER}][{_UPPER}])\.)$"
)
_INFIX = re.compile(
    rf"\.\.+|…|[{_I}]|(?<=[0-9])[+\-*^](?=[0-9-])|(?<=[{_LOWER}{_Q}])\.(?=[{_UPPER}{_Q}])"
    rf"|(?<=[{_ALPHA}]),(?=[{_ALPHA}])|(?<=[{_ALPHA}0-9])(?:---|--|—|–|-|~)(?=[{_ALPHA}])"
    rf"|(?<=[{_ALPHA}0-9])[:<>=/](?=[{_ALPHA}])"
)
_URL = re.compile(
    # userinfo: `\S+@` (spaCy's `\S+(?::\S*)?@` is the same language, but backtracks in
    # O(n^2) on a long run of colons)
    r"(?:[\w+\-.]{2,}://)?(?:\S+@)?"
    r"(?:\d{1,3}(?:\.\d{1,3}){3}|(?:(?:[A-Za-z0-9\u00a1-\uffff][A-Za-z0-9\u00a1-\uffff_-]{0,62})?"
    r"[A-Za-z0-9\u00a1-\uffff]\.)+[a-z\u00df-\u00f6\u00f8-\u00ff]{2,63})(?::\d{2,5})?(?:[/?#]\S*)?"
)
_CONTRACTION = re.compile(r"([A-Za-z]+?)(n['’]t|['’](?:re|ve|ll|d|m|RE|VE|LL|D|M))")
_ABBREVIATION = re.compile(
    r"(?:[A-Za-z]\.){2,}|[a-zäöü]\.|(?:Adm|Ak|Ala|Apr|Ariz|Ark|Aug|Bros|Calif|Co|Colo|Conn|Corp|Dec"
    r"|Del|Dr|Feb|Fla|Ga|Gen|Gov|Ia|Id|Ill|Inc|Ind|Jan|Jr|Jul|Jun|Kan|Kans|Ky|La|Ltd|Mar|Mass|Md"
    r"|Messrs|Mich|Minn|Miss|Mo|Mont|Mr|Mrs|Ms|Mt|Neb|Nebr|Nev|Nov|Oct|Okla|Ore|Pa|Ph\.D|Prof|Rep"
    r"|Rev|Sen|Sep|Sept|St|Tenn|Va|Wash|Wis|co|vs|v\.s)\."
)
# contractions written without the apostrophe ("dont", "id", "Wed"): spaCy splits them too
_BARE = re.compile(
    r"((?:[Aa]i|[Aa]re|[Cc]a|[Cc]ould|[Dd]are|[Dd]id|[Dd]oes|[Dd]o|[Hh]ad|[Hh]as|[Hh]ave|[Ii]s|[Mm]ay"
    r"|[Mm]ight|[Mm]ust|[Nn]eed|[Oo]ught|[Ss]ha|[Ss]hould|[Ww]as|[Ww]ere|[Ww]o|[Ww]ould)(?=nt)"
    r"|[Hh]e(?=[ds])|[Ii](?=[dm]|ve)|[Ii]t(?=d|ll)|[Ss]he(?=s)|[Ww]e(?=d|ve)|[Yy]ou(?=d|ll|re|ve)"
    r"|[Tt]hey(?=d|ll|re|ve)|(?:[Tt]hat|[Tt]his)(?=d|ll|s)|(?:[Tt]hese|[Tt]hose)(?=d|ll|re|ve)"
    r"|(?:[Tt]here|[Hh]ow|[Ww]hat|[Ww]hen|[Ww]here|[Ww]hy)(?=d|ll|re|s|ve)|[Ww]ho(?=d|ll|s|ve))"
    r"(nt|d|ll|re|s|m|ve)"
)
# spaCy's emoticons: whole when they stand alone, merged back when affix rules split them
EMOTICONS = frozenset(
    r"""(*_*) =) :/ :() :-))) :'-( =] (^_^) )-: ._. (._.) (-; :-| (: :(( ): :-(( =( :'( :->
    :)) =/ [= ;) ><(((*> :] :') <.< (-: [-: :( (; :-((( :-} :((( (>_<) :-( [: :))) :-/ :-)
    @_@ :> ^__^ :} -__- (-_-) ;_; ^___^ (= =[ :-)) (¬_¬) -_- :) :* :-] >.< :-* >.> ;-) =|
    :'-) ]= ^_^ :| >:( :o) XDD 8-) <333 ;D o.o 0_o :o :-D =3 :-O :0 :-x ;-D :p (o: :-o :-3
    o_O o.O v_v xDD 0.0 8-D ಠ_ಠ (-8 </3 :-0 o_0 O.o (ಠ_ಠ) :O 0.o V_V O_o o_o 8D O.O ಠ︵ಠ <3
    :x :-X 8) >:o XD =D o.0 :-P v.v <33 :D V.V :3 :-p 0_0 O_O :X xD :1 :P""".split()
)
_EXCEPTIONS = {"cannot": ["can", "not"], "Cannot": ["Can", "not"], "and/or": ["and/or"]}
_EXCEPTIONS.update((e, [e]) for e in EMOTICONS)


def _special(s: str) -> list[str] | None:
    """spaCy's exception table, by rule: the tokens of `s` if it is an exception."""
    if s in _EXCEPTIONS:
        return _EXCEPTIONS[s]
    if _ABBREVIATION.fullmatch(s):
        return [s]
    m = _CONTRACTION.fullmatch(s) or _BARE.fullmatch(s)
    return [m[1], m[2]] if m else None


# every leading part of an emoticon: a join of tokens that is none of these cannot grow
# into one, so each token costs O(1) however long the token list
_EMOTICON_PREFIXES = frozenset(e[:k] for e in EMOTICONS for k in range(1, len(e) + 1))


def _merge_emoticons(toks: list[str]) -> list[str]:
    """Merge runs of 2 to 6 tokens that spell an emoticon (the longest run wins)."""
    prefixes = _EMOTICON_PREFIXES
    out: list[str] = []
    n, i, done = len(toks), 0, 0  # toks[done:i] are copied unchanged
    while i < n - 1:
        if toks[i] not in prefixes:
            i += 1
            continue
        cur = toks[i] + toks[i + 1]
        if cur not in prefixes:
            i += 1
            continue
        best = i + 2 if cur in EMOTICONS else 0
        for j in range(i + 2, min(n, i + 6)):
            cur += toks[j]
            if cur not in prefixes:
                break
            if cur in EMOTICONS:
                best = j + 1
        if best:
            out += toks[done:i]
            out.append("".join(toks[i:best]))
            i = done = best
        else:
            i += 1
    out += toks[done:]
    return out


# ---- linear-time affix peeling ----
# spaCy's loop peels one prefix and one suffix per pass and re-tests the rest of the chunk;
# done with string slices and regex searches over the whole rest, a chunk of n brackets costs
# O(n^2) (10,000 "(" took 3.5 s). `_Chunk` runs the same loop over indices [i, j) of the
# chunk, and answers each test in O(1) amortised: every match the rules can make on a long
# rest is bounded in length, except runs of dots (peeled whole) and runs of letters or
# letter-dot pairs (their ends are found once: the start only moves over punctuation).
_SHORT = max(16, *map(len, _EXCEPTIONS))  # longer than any bounded special-case match
_SUFFIX_WINDOW = 8  # longer than any suffix match but dots, plus its lookbehind
_LETTERS = re.compile(r"[A-Za-z]+")
_PAIRS = re.compile(r"(?:[A-Za-z]\.)+")
_ENDING = re.compile(r"n['’]t|['’](?:re|ve|ll|d|m|RE|VE|LL|D|M)")
# characters that, standing first (last), are always a one-character prefix (suffix): the
# prefix (suffix) rule's character class without "." and "'", which also start "..", "''"
_RUN_PREFIX = frozenset(c for c in _PUNCT + _QUOTES + _CURRENCY + _ICONS + "§%=—–" if c not in ".'")
_RUN_SUFFIX = frozenset(c for c in _PUNCT + _QUOTES + _ICONS + "—–" if c not in ".'")


class _Chunk:
    """The rest s[i:j] of a chunk being peeled, with the special-case tests in O(1)."""

    def __init__(self, s: str) -> None:
        self.s, self.i, self.j = s, 0, len(s)
        self.out: list[str] = []  # prefixes peeled in bulk
        self.suffixes: list[str] = []
        self._at = -1  # start for which the run ends below were found
        self._letters_end = self._pairs_end = 0

    def _runs(self) -> tuple[int, int]:
        # the start only moves while it sits on punctuation, so a letter run is scanned once
        if self._at != self.i:
            s, i = self.s, self.i
            m, p = _LETTERS.match(s, i), _PAIRS.match(s, i)
            self._letters_end = m.end() if m else i
            self._pairs_end = p.end() if p else i
            self._at = i
        return self._letters_end, self._pairs_end

    def special(self) -> list[str] | None:
        """`_special(s[i:j])`: only letter-dot runs and contractions can be long."""
        s, i, j = self.s, self.i, self.j
        if j - i <= _SHORT:
            return _special(s[i:j])
        letters_end, pairs_end = self._runs()
        if (j - i) % 2 == 0 and j <= pairs_end:
            return [s[i:j]]  # _ABBREVIATION's (?:[A-Za-z]\.){2,}
        for k in (j - 3, j - 2):  # _CONTRACTION: letters, then an ending of 2 or 3 chars
            if i < k <= letters_end and _ENDING.fullmatch(s, k, j):
                return [s[i:k], s[k:j]]
        return None

    def prefix(self) -> str | None:
        m = _PREFIX.match(self.s, self.i, self.j)
        return m.group() if m and m.end() < self.j else None

    def suffix_start(self) -> int | None:
        """Start of `_SUFFIX.search(s[i:j])` when it is past i (so a suffix can go)."""
        s, i, j = self.s, self.i, self.j
        if s.endswith("..", i, j):
            # the leftmost match is the whole trailing run of dots (no other rule ends in
            # two dots), found without a regex scan of the run
            start = len(s[i:j].rstrip(".")) + i if j - i <= _SUFFIX_WINDOW else j - 2
            while start > i and s[start - 1] == ".":
                start -= 1
            return start if start > i else None
        if j - i <= _SUFFIX_WINDOW:
            m = _SUFFIX.search(s[i:j])
            return i + m.start() if m and m.start() > 0 else None
        # any other match is at most 4 characters long (a unit after a digit), and its
        # lookbehind reaches 2 back: a window of the last 8 holds it, inside [i, j)
        m = _SUFFIX.search(s, j - _SUFFIX_WINDOW, j)
        return m.start() if m else None

    def bulk(self) -> int:
        """How many passes of the peeling loop can run at once on runs of affix characters.

        A pass peels one character off the front when it is in `_RUN_PREFIX` and one off
        the back when it is in `_RUN_SUFFIX`; the other side, when it is not such a run,
        must peel nothing for all those passes, and the rest must stay long enough that no
        special case can match. 0: take the ordinary pass.
        """
        s, i, j = self.s, self.i, self.j
        k = (j - i - 2 * _SHORT) // 2  # passes that keep the rest longer than 2 * _SHORT
        if k < 2:
            return 0
        front = s[i] in _RUN_PREFIX
        back = s[j - 1] in _RUN_SUFFIX
        if not (front or back):
            return 0
        if front:
            f = i + 1
            while f < i + k + 1 and s[f] in _RUN_PREFIX:
                f += 1
            k = min(k, f - i - 1)  # the rest after the last pass still starts in the run
        else:
            if _PREFIX.match(s, i, j) is not None or self.special() is not None:
                return 0
            letters_end, pairs_end = self._runs()
            k = min(k, j - max(pairs_end + 1, letters_end + 4))  # no special case appears
        if back:
            b = j - 1
            while b > j - k - 1 and s[b - 1] in _RUN_SUFFIX:
                b -= 1
            k = min(k, j - b)
        elif self.suffix_start() is not None:
            return 0
        if k < 1:
            return 0
        if front:
            self.out.extend(s[i : i + k])
            self.i += k
        if back:
            self.suffixes.extend(reversed(s[j - k : j]))
            self.j -= k
        return k


def _chunk_tokens(s: str, out: list[str]) -> None:
    c = _Chunk(s)
    c.out, c.suffixes = out, []
    suffixes = c.suffixes
    while c.i < c.j:
        if c.bulk():
            continue
        sp = c.special()
        if sp is not None:
            out += sp
            c.i = c.j
            break
        changed = False
        pre = c.prefix()
        if pre is not None:
            out.append(pre)
            c.i += len(pre)
            changed = True
            if c.special() is not None:
                continue
        start = c.suffix_start()
        if start is not None:
            suffixes.append(s[start : c.j])
            c.j = start
            changed = True
        if not changed:
            break
    if c.i < c.j:
        rest = s[c.i : c.j]
        if _URL.fullmatch(rest):
            out.append(rest)
        else:
            i = 0
            for m in _INFIX.finditer(rest):
                if m.start() > i:
                    out.append(rest[i : m.start()])
                if m.end() > m.start():
                    out.append(m.group())
                i = m.end()
            if i < len(rest):
                out.append(rest[i:])
    out += reversed(suffixes)


def _split_chunk(chunk: str) -> list[str]:
    if chunk.isalpha() and chunk not in _EXCEPTIONS and not _BARE.fullmatch(chunk):
        return [chunk]  # most words: nothing to split
    toks: list[str] = []
    _chunk_tokens(chunk, toks)
    return _merge_emoticons(toks) if len(toks) > 1 else toks


# chunk -> its tokens; word frequencies are Zipfian, so most chunks are seen before
# (spaCy caches the same way). Cleared when full to bound memory.
_CACHE: dict[str, list[str]] = {}
_CACHE_SIZE = 200_000
_CACHE_MAX_CHUNK = 100  # characters; longer chunks are not kept (200,000 x 1 MB would be)


def words(text: str) -> list[str]:
    """Word tokens of `text`, as spaCy's English tokenizer splits them (no model needed)."""
    out: list[str] = []
    cache = _CACHE
    for chunk in text.split():
        toks = cache.get(chunk)
        if toks is None:
            toks = _split_chunk(chunk)
            if len(chunk) <= _CACHE_MAX_CHUNK:
                if len(cache) >= _CACHE_SIZE:
                    cache.clear()
                cache[chunk] = toks
        out += toks
    return out


def count_sentences(line: str) -> int:
    """Sentences in one non-empty line: terminal-punctuation boundaries, at least one."""
    if not line.strip():
        return 0
    return 1 + len(_SENT_END.findall(line.rstrip()))


def find_duplicates(items: Iterable[str]) -> tuple[int, int]:
    """(number of items seen before, their total characters): the Gopher duplicate counts."""
    seen: set[str] = set()
    n_dup = chars_dup = 0
    for x in items:
        if x in seen:
            n_dup += 1
            chars_dup += len(x)
        else:
            seen.add(x)
    return n_dup, chars_dup


def text_items(doc: Document) -> list[str]:
    """The document's text items in reading order (images skipped)."""
    return [t for t in doc.texts if t is not None]


def replace_texts(doc: Document, new_texts: list[str]) -> None:
    """Put edited text items back in place; items that became empty are removed.

    `new_texts` is aligned with `text_items(doc)`. Images keep their order; a slot
    whose text is now empty disappears, so the OBELICS one-non-null rule holds.
    """
    it = iter(new_texts)
    texts: list[str | None] = []
    images: list[bytes | None] = []
    for t, im in zip(doc.texts, doc.images, strict=True):
        if t is None:
            texts.append(None)
            images.append(im)
            continue
        new = next(it)
        if new:
            texts.append(new)
            images.append(None)
    doc.texts, doc.images = texts, images


# Characters that make a token a "symbol word" (no letters or digits to count): ASCII
# punctuation, the common typographic marks and every sentence terminal; the same set
# datatrove's filters use, so word counts agree.
PUNCTUATION = (
    frozenset(
        "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
        "—”〈、━【「」，】；“《„’∶´．（–？！：～«〉》）。…►»％"
        + "".join(map(chr, (*range(0, 9), *range(11, 32), *range(127, 160))))
    )
    | TERMINAL_PUNCTUATION
)
