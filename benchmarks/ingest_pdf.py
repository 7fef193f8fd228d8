"""Pages/s of vloom's PDF ingestion vs a plain PyMuPDF loop, on the same real PDFs.

    python benchmarks/ingest_pdf.py [PDF ...] [--repeat R] [--profile]

Default PDFs: four LilyPond manuals (Debian package lilypond-doc-pdf: learning, music-glossary,
usage, essay; 432 pages). All run in this process, one after the other, single-threaded, each
PDF opened from its bytes inside the timed loop:
- vloom: the `pdf` source - text blocks in reading order (XY-cut, columns, reflow), running
  headers and footers removed, every kept image extracted once, converted where Pillow needs it
  and fully checked (vloom.media.check_image), interleaved with the text;
- plain loop: per page `get_text("blocks")` and every image xref not seen before in the PDF
  extracted (`extract_image`), nothing checked;
- text only: per page `get_text()`.
Parquet writing is left out. `--profile` prints vloom's top functions (cProfile).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from pathlib import Path

import pymupdf

from vloom.ingest.base import IngestOptions
from vloom.ingest.pdf import ingest_pdf
from vloom.ledger import Ledger

LILY = Path("/usr/share/doc/lilypond/html/Documentation")
DEFAULT = [LILY / f"{n}.pdf" for n in ("learning", "music-glossary", "usage", "essay")]


def run_vloom(pdfs: list[Path]) -> tuple[int, int, int]:
    """(pages, images attached, text chars) through the `pdf` source."""
    led = Ledger()
    opts = IngestOptions(out_dir=Path("/nonexistent-benchmark-out"))
    n_img = chars = 0
    for doc in ingest_pdf(pdfs, led, opts):
        n_img += doc.n_images
        chars += len(doc.text)
    return led.extra["pdf"]["pages"], n_img, chars


def run_plain(pdfs: list[Path]) -> tuple[int, int, int]:
    """(pages, unique images extracted, text chars): text blocks + every image once."""
    pages = n_img = chars = 0
    for path in pdfs:
        with pymupdf.open(stream=path.read_bytes(), filetype="pdf") as pdf:
            seen: set[int] = set()
            for page in pdf:
                pages += 1
                chars += sum(len(b[4]) for b in page.get_text("blocks") if b[6] == 0)
                for img in page.get_images(full=True):
                    if img[0] not in seen:
                        seen.add(img[0])
                        pdf.extract_image(img[0])
                        n_img += 1
    return pages, n_img, chars


def run_text(pdfs: list[Path]) -> tuple[int, int, int]:
    pages = chars = 0
    for path in pdfs:
        with pymupdf.open(stream=path.read_bytes(), filetype="pdf") as pdf:
            for page in pdf:
                pages += 1
                chars += len(page.get_text())
    return pages, 0, chars


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pdfs", nargs="*", default=[str(p) for p in DEFAULT])
    ap.add_argument("--repeat", type=int, default=1, help="time each R times, keep the best")
    ap.add_argument("--profile", action="store_true", help="cProfile vloom's run")
    args = ap.parse_args()
    pdfs = [Path(p) for p in args.pdfs]
    missing = [p for p in pdfs if not p.is_file()]
    if missing:
        sys.exit(f"{missing[0]}: not found (apt-get install lilypond-doc-pdf, or pass PDFs)")
    print(f"{len(pdfs)} PDFs ({sum(p.stat().st_size for p in pdfs) / 1e6:.1f} MB)")
    run_plain(pdfs[-1:])  # warm MuPDF the same way for all

    def best(fn) -> tuple[float, tuple]:
        times, out = [], ()
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            out = fn()
            times.append(time.perf_counter() - t0)
        return min(times), out

    rows = {}
    for name, fn in (("vloom", run_vloom), ("plain loop", run_plain), ("text only", run_text)):
        prof = cProfile.Profile() if args.profile and name == "vloom" else None
        if prof:
            prof.enable()
        t, (pages, img, chars) = best(lambda fn=fn: fn(pdfs))
        if prof:
            prof.disable()
            pstats.Stats(prof).sort_stats("tottime").print_stats(25)
        rows[name] = pages / t
        print(f"{name:10}: {pages / t:8.1f} pages/s  ({pages} pages, {img} images, {chars} chars)")
    for peer in ("plain loop", "text only"):
        print(f"ratio vloom / {peer}: {rows['vloom'] / rows[peer]:.2f}x")


if __name__ == "__main__":
    main()
