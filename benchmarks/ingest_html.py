"""Pages/s of vloom's HTML ingestion vs trafilatura's text extraction, on the same real pages.

    python benchmarks/ingest_html.py [PAGES_DIR] [--limit N] [--repeat R] [--profile]

Default pages: the GIMP English manual (Debian package gimp-help-en). Both tools run in this
process, one after the other, single-threaded, over the same files read from disk inside the
timed loop. vloom does more: boilerplate removal, interleaved text blocks, and every <img>
resolved, read and fully decoded (vloom.media.check_image) into the Document; trafilatura
(`trafilatura.extract`, its default settings) returns the main text only. Parquet writing is
left out of both. `--profile` prints vloom's top functions (cProfile) after the run.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from pathlib import Path

from vloom.ingest.base import IngestOptions
from vloom.ingest.html import HTML_SUFFIXES, ingest_html, walk_inputs
from vloom.ledger import Ledger

GIMP = Path("/usr/share/gimp/2.0/help/en")


def run_vloom(pages: list[Path], root: Path) -> tuple[int, int, int]:
    """(documents, images attached, text chars) for the pages, through the `html` source."""
    led = Ledger()
    opts = IngestOptions(out_dir=Path("/nonexistent-benchmark-out"))
    n_docs = n_img = chars = 0
    # each page as its own input, rooted at the manual's directory like a directory walk
    for doc in ingest_html(pages, led, opts):
        n_docs += 1
        n_img += doc.n_images
        chars += len(doc.text)
    assert led.input == len(pages)
    return n_docs, n_img, chars


def run_trafilatura(pages: list[Path]) -> tuple[int, int]:
    import trafilatura

    n = chars = 0
    for p in pages:
        text = trafilatura.extract(p.read_bytes())
        if text:
            n += 1
            chars += len(text)
    return n, chars


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pages", nargs="?", default=str(GIMP), help="directory of HTML pages")
    ap.add_argument("--limit", type=int, default=0, help="use only the first N pages (sorted)")
    ap.add_argument("--repeat", type=int, default=1, help="time each tool R times, keep the best")
    ap.add_argument("--profile", action="store_true", help="cProfile vloom's run")
    args = ap.parse_args()

    root = Path(args.pages)
    if not root.is_dir():
        sys.exit(f"{root}: no such directory (apt-get install gimp-help-en, or pass a path)")
    pages = [p for _, p in walk_inputs([root], HTML_SUFFIXES)]
    if args.limit:
        pages = pages[: args.limit]
    if not pages:
        sys.exit(f"{root}: no *.html / *.htm pages")
    mb = sum(p.stat().st_size for p in pages) / 1e6
    print(f"{len(pages)} pages ({mb:.1f} MB of HTML) from {root}")

    run_vloom(pages[:5], root)  # warm imports and caches the same way for both
    run_trafilatura(pages[:5])

    def best(fn) -> tuple[float, tuple]:
        times, out = [], ()
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            out = fn()
            times.append(time.perf_counter() - t0)
        return min(times), out

    t_tr, (n_tr, chars_tr) = best(lambda: run_trafilatura(pages))
    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
    t_vl, (n_vl, img_vl, chars_vl) = best(lambda: run_vloom(pages, root))
    if args.profile:
        prof.disable()

    print(f"trafilatura: {len(pages) / t_tr:8.1f} pages/s  ({n_tr} with text, {chars_tr} chars)")
    print(
        f"vloom:       {len(pages) / t_vl:8.1f} pages/s  ({n_vl} documents, {img_vl} images "
        f"decoded and attached, {chars_vl} chars)"
    )
    print(f"ratio vloom/trafilatura: {t_tr / t_vl:.2f}x (single process each)")
    if args.profile:
        pstats.Stats(prof).sort_stats("cumulative").print_stats(25)


if __name__ == "__main__":
    main()
