"""vloom's text filters vs datatrove's on the same documents: docs/s, peak memory, agreement.

    python benchmarks/curate_vs_datatrove.py                  # the Debian manuals (default)
    python benchmarks/curate_vs_datatrove.py --docs DIR       # an ingested vloom shard dir
    python benchmarks/curate_vs_datatrove.py --synthetic 100000

The chain is Gopher quality, Gopher repetition, C4 (line rules + page rules, without
bad words, which datatrove keeps in a separate downloading filter) and FineWeb, each
with the same thresholds in both tools. Both run in this process, one core each:
every timed run is a forked child (so both start from the same memory and the peak
RSS increase is the tool's own), datatrove through its own `run` generators (its
stats bookkeeping included, as in a real pipeline), vloom through `run_steps`. Corpus
loading and Document construction are outside the timings. Agreement is per document
and per filter, each filter judging the same unmodified text.

datatrove's word tokenizer. For English datatrove calls spaCy (`spacy.blank("en")`),
which this environment does not install. Three settings (`--dt-tokenizer`):
  spacy   datatrove's own default; needs `pip install spacy`.
  nltk    (used when spaCy is absent) NLTK's Treebank word tokenizer and an untrained
          Punkt sentence splitter: no data download, an independent tokenizer close to
          spaCy's (splits "don't" -> "do n't", punctuation off words).
  vloom   vloom's own regex tokenizer plugged into datatrove: isolates the filter
          logic, so the ratio measures the rules' implementation, not the tokenizer.
By default the script runs `nltk` (or `spacy` when installed) AND `vloom`, printing both.

Where the tools differ, by disagreement class (vloom reason vs datatrove reason):
- Word tokens. vloom's regex keeps "don't" whole and "..." as one token; spaCy/NLTK
  split contractions and, in NLTK's case, some quotes differently. This moves word
  counts a little, so documents near a threshold flip: gopher_short_doc /
  below_avg_threshold / enough_stop_words (Gopher quality), top_n_gram and
  duplicated_n_grams (repetition: n-grams shift), fineweb_list_ratio (newlines per
  word). With `--dt-tokenizer vloom` these classes disappear for repetition and
  FineWeb, which shows that the remaining rules are the same.
- Gopher quality stop words: vloom matches "The" case-insensitively, datatrove only
  lower case -> some "gopher_enough_stop_words" drops on datatrove's side only.
- Gopher quality symbols: datatrove counts "#" and "..." against spaCy word counts that
  exclude punctuation tokens; vloom does the same with its tokens; rare flips.
- C4 sentences: datatrove counts sentences with spaCy's sentencizer (or here Punkt);
  vloom with a regex that does not split before a lowercase word ("e.g. the").
  Documents with about `min_num_sentences` sentences flip ("c4_too_few_sentences").
- Repetition n-grams: datatrove compares n-grams as joined strings ("ab c" equals
  "a bc" for its duplicated n-gram rule); vloom as word tuples. Very rare.
- FineWeb duplicated-line characters: both use 0.1 here; datatrove's code default is
  0.01 (the published rule is 0.1).
Every class that occurs is printed with its count and an example document id.
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import multiprocessing as mp
import random
import re
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vloom.curate.executor import run_steps
from vloom.curate.filters.c4_quality import C4Quality
from vloom.curate.filters.fineweb_quality import FineWebQuality
from vloom.curate.filters.gopher_quality import GopherQuality
from vloom.curate.filters.gopher_repetition import GopherRepetition
from vloom.curate.filters.text_stats import words as vloom_words
from vloom.doc import Document

FILTERS = ("gopher_quality", "gopher_repetition", "c4_quality", "fineweb_quality")
MANUALS = ("/usr/share/doc/debian-handbook/html", "/usr/share/gimp/2.0/help/en")
_BLOCKS = "p, li, h1, h2, h3, h4, h5, h6, pre, dt, dd, td, th, caption, blockquote, title"
_WS = re.compile(r"\s+")


# ---------------- corpora ----------------


def manual_texts(roots: tuple[str, ...] = MANUALS) -> list[str]:
    """Page text of the Debian manuals: one line per block element (p, li, h*, pre...)."""
    from selectolax.lexbor import LexborHTMLParser

    files = sorted(f for r in roots for f in glob.glob(f"{r}/**/*.html", recursive=True))
    if not files:
        sys.exit(f"no HTML under {', '.join(roots)}: apt-get install debian-handbook gimp-help-en")
    texts = []
    for f in files:
        tree = LexborHTMLParser(Path(f).read_bytes())
        for bad in tree.css("script, style, nav"):
            bad.decompose()
        lines = []
        for node in tree.css(_BLOCKS):
            parent, nested = node.parent, False
            while parent is not None:  # the outermost block owns the text
                if parent.tag in _BLOCKS.replace(" ", "").split(","):
                    nested = True
                    break
                parent = parent.parent
            if nested:
                continue
            raw = node.text(deep=True, separator="")
            if node.tag == "pre":
                lines += [ln.rstrip() for ln in raw.splitlines() if ln.strip()]
            elif raw.strip():
                lines.append(_WS.sub(" ", raw).strip())
        if lines:
            texts.append("\n".join(lines))
    return texts


def synthetic_texts(n: int, seed: int) -> list[str]:
    """n text documents of the synthetic world with spam, foreign and duplicate defects."""
    from vloom.config import NoiseConfig
    from vloom.synth.corpus import _SceneSource, text_doc
    from vloom.synth.noise import inject_noise

    rng = random.Random(seed)
    scenes = _SceneSource(random.Random(seed + 1), 3)
    clean_n = round(n / 1.25)
    docs = [text_doc(i, scenes, rng) for i in range(clean_n)]
    noise = NoiseConfig(
        exact_duplicate=0.05,
        near_duplicate=0.05,
        spam=0.1,
        foreign_language=0.05,
        broken_image=0,
        tiny_image=0,
        unrelated_image=0,
    )
    return [d.text for d in inject_noise(docs, noise, rng)][:n]


def shard_texts(path: str) -> list[str]:
    from vloom.doc import read_documents

    return [d.text for d in read_documents(path)]


# ---------------- the two tools ----------------


def vloom_factories() -> dict[str, Callable[[], Any]]:
    return {
        "gopher_quality": lambda: GopherQuality(skip_if_images=False),
        "gopher_repetition": GopherRepetition,
        "c4_quality": lambda: C4Quality(bad_words=False, skip_if_images=False),
        "fineweb_quality": FineWebQuality,
    }


def datatrove_tokenizer(kind: str) -> Any:
    """The `language` argument for datatrove's filters: "en" (spaCy) or a WordTokenizer."""
    if kind == "spacy":
        return "en"
    from datatrove.utils.word_tokenizers import WordTokenizer

    if kind == "vloom":

        class VloomTokenizer(WordTokenizer):
            def word_tokenize(self, text: str) -> list[str]:
                return vloom_words(text)

            def sent_tokenize(self, text: str) -> list[str]:
                return re.split(r"(?<=[.!?])\s+(?![a-z])", text)

            def span_tokenize(self, text: str) -> list[tuple[int, int]]:
                spans, i = [], 0
                for s in self.sent_tokenize(text):
                    j = text.index(s, i)
                    spans.append((j, j + len(s)))
                    i = j + len(s)
                return spans

        return VloomTokenizer()

    from nltk.tokenize import TreebankWordTokenizer
    from nltk.tokenize.punkt import PunktSentenceTokenizer

    class NltkTokenizer(WordTokenizer):
        def __init__(self) -> None:
            super().__init__("en")
            self.words, self.sents = TreebankWordTokenizer(), PunktSentenceTokenizer()

        def word_tokenize(self, text: str) -> list[str]:
            # Treebank expects one sentence; feed it lines, as spaCy sees the whole text
            return [w for line in text.splitlines() for w in self.words.tokenize(line)]

        def sent_tokenize(self, text: str) -> list[str]:
            return self.sents.tokenize(text)

        def span_tokenize(self, text: str) -> list[tuple[int, int]]:
            return list(self.sents.span_tokenize(text))

    return NltkTokenizer()


def datatrove_factories(lang: Any) -> dict[str, Callable[[], Any]]:
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
    )

    return {
        "gopher_quality": lambda: GopherQualityFilter(language=lang),
        "gopher_repetition": lambda: GopherRepetitionFilter(language=lang),
        "c4_quality": lambda: C4QualityFilter(language=lang),
        "fineweb_quality": lambda: FineWebQualityFilter(char_duplicates_ratio=0.1, language=lang),
    }


# ---------------- timing in forked children ----------------


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _child(fn: Callable[[], list[str]], q: Any) -> None:
    start = _rss_kib("VmRSS")
    t0 = time.perf_counter()
    kept = fn()
    secs = time.perf_counter() - t0
    q.put((secs, kept, max(_rss_kib("VmHWM") - start, 0) / 1024, _rss_kib("VmHWM") / 1024))


def timed(fn: Callable[[], list[str]]) -> tuple[float, list[str], float, float]:
    """(seconds, kept ids, peak RSS increase MiB, peak RSS MiB) of fn run in a forked child."""
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=_child, args=(fn, q))
    p.start()
    out = q.get()
    p.join()
    return out


def vloom_run(texts: list[str], names: tuple[str, ...]) -> Callable[[], list[str]]:
    docs = [Document.from_items(str(i), [t]) for i, t in enumerate(texts)]
    fac = vloom_factories()

    def go() -> list[str]:
        kept, _ = run_steps(docs, [fac[n]() for n in names])
        return [d.id for d in kept]

    return go


def datatrove_run(texts: list[str], names: tuple[str, ...], lang: Any) -> Callable[[], list[str]]:
    from datatrove.data import Document as DTDocument

    docs = [DTDocument(text=t, id=str(i)) for i, t in enumerate(texts)]
    fac = datatrove_factories(lang)

    def go() -> list[str]:
        stream: Any = iter(docs)
        for n in names:
            stream = fac[n]().run(stream, rank=0, world_size=1)
        return [d.id for d in stream]

    return go


# ---------------- agreement ----------------


def verdicts_vloom(name: str, texts: list[str]) -> list[tuple[bool, str]]:
    step = vloom_factories()[name]()
    return [step.filter(Document.from_items(str(i), [t])) for i, t in enumerate(texts)]


def verdicts_datatrove(name: str, texts: list[str], lang: Any) -> list[tuple[bool, str]]:
    from datatrove.data import Document as DTDocument

    f = datatrove_factories(lang)[name]()
    out = []
    for i, t in enumerate(texts):
        v = f.filter(DTDocument(text=t, id=str(i)))
        out.append((v, "") if isinstance(v, bool) else (bool(v[0]), str(v[1])))
    return out


def agreement(
    name: str, texts: list[str], lang: Any
) -> tuple[float, Counter[tuple[str, str]], dict[tuple[str, str], int]]:
    a, b = verdicts_vloom(name, texts), verdicts_datatrove(name, texts, lang)
    classes: Counter[tuple[str, str]] = Counter()
    example: dict[tuple[str, str], int] = {}
    for i, ((ka, ra), (kb, rb)) in enumerate(zip(a, b, strict=True)):
        if ka != kb:
            key = (ra or "kept", rb or "kept")
            classes[key] += 1
            example.setdefault(key, i)
    return 1 - sum(classes.values()) / max(len(texts), 1), classes, example


# ---------------- main ----------------


def load_corpus(args: argparse.Namespace) -> tuple[str, list[str]]:
    if args.docs:
        return f"shards in {args.docs}", shard_texts(args.docs)
    if args.synthetic:
        return f"synthetic world, {args.synthetic} text docs", synthetic_texts(
            args.synthetic, args.seed
        )
    return "Debian manuals (debian-handbook + gimp-help-en)", manual_texts()


def tokenizer_kinds(choice: str) -> list[str]:
    if choice != "auto":
        return [choice]
    has_spacy = importlib.util.find_spec("spacy") is not None
    return ["spacy" if has_spacy else "nltk", "vloom"]


def run_minhash(argv: list[str]) -> None:
    path = Path(__file__).with_name("minhash_vs_datatrove.py")
    if not path.exists():
        print("\n(benchmarks/minhash_vs_datatrove.py not present: MinHash comparison skipped)")
        return
    spec = importlib.util.spec_from_file_location("minhash_vs_datatrove", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    print("\n==== MinHash dedup: benchmarks/minhash_vs_datatrove.py ====", flush=True)
    mod.main(argv)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--docs", help="a directory of vloom shards (e.g. `vloom ingest` output)")
    src.add_argument("--synthetic", type=int, help="N synthetic documents instead of manuals")
    ap.add_argument("--limit", type=int, help="use only the first N documents")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dt-tokenizer", choices=["auto", "spacy", "nltk", "vloom"], default="auto")
    ap.add_argument("--no-minhash", action="store_true", help="skip the MinHash benchmark")
    ap.add_argument("--minhash-args", default="", help="arguments for minhash_vs_datatrove")
    args = ap.parse_args(argv)

    try:
        import datatrove  # noqa: F401
    except ImportError:
        sys.exit("datatrove is not installed: pip install datatrove")

    t0 = time.perf_counter()
    what, texts = load_corpus(args)
    if args.limit:
        texts = texts[: args.limit]
    n = len(texts)
    chars = sum(map(len, texts))
    print(f"corpus: {what}: {n} documents, {chars / 1e6:.1f} M chars ", end="")
    print(f"(loaded in {time.perf_counter() - t0:.1f}s); one core per tool, forked children")
    if n == 0:
        sys.exit("no documents")

    for kind in tokenizer_kinds(args.dt_tokenizer):
        lang = datatrove_tokenizer(kind)
        print(f"\n=== datatrove word tokenizer: {kind} ===")
        head = f"{'filter':<18} {'vloom d/s':>10} {'dtrove d/s':>10} {'ratio':>6}"
        head += f" {'vl MiB':>7} {'dt MiB':>7} {'kept vl/dt':>13} {'agree':>7}"
        print(head)
        rows = [(name, (name,)) for name in FILTERS] + [("chain", FILTERS)]
        all_classes: dict[str, tuple[Counter, dict]] = {}
        for label, names in rows:
            tv, kv, mv, _ = timed(vloom_run(texts, names))
            td, kd, md, _ = timed(datatrove_run(texts, names, lang))
            if label == "chain":  # the documents both chains keep, or both drop
                agree_s = f"{100 * (1 - len(set(kv) ^ set(kd)) / n):6.2f}%"
            else:
                agree, classes, example = agreement(label, texts, lang)
                all_classes[label] = (classes, example)
                agree_s = f"{100 * agree:6.2f}%"
            print(
                f"{label:<18} {n / tv:>10.0f} {n / td:>10.0f} {td / tv:>5.2f}x"
                f" {mv:>7.1f} {md:>7.1f} {f'{len(kv)}/{len(kd)}':>13} {agree_s:>7}",
                flush=True,
            )
        print("disagreements (vloom reason | datatrove reason: count, example doc index):")
        for label, (classes, example) in all_classes.items():
            for (ra, rb), c in classes.most_common():
                print(f"  {label:<18} {ra:<30} | {rb:<28} {c:>5}  e.g. #{example[(ra, rb)]}")
    print(
        "\nratio = vloom docs/s / datatrove docs/s (same process, same documents); MiB = peak "
        "RSS increase of the child running that tool."
    )
    if not args.no_minhash:
        import shlex

        run_minhash(shlex.split(args.minhash_args))


if __name__ == "__main__":
    main()
