"""Pages/s of vloom's PDF ingestion vs a plain PyMuPDF loop, on the same real PDFs.

    python benchmarks/ingest_pdf.py [PDF ...] [--repeat R] [--profile]

Default PDFs: four LilyPond manuals (Debian package lilypond-doc-pdf: learning, music-glossary,
usage, essay; 432 pages). All run in this process, one after the other, single-threaded, each
PDF opened from its bytes inside the timed loop:
- vloom: the `pdf` source - text blocks in reading order (XY-cut, columns, reflow), running
  headers and footers removed, every kept image taken once (a Flate image as a PNG of its stored
  stream, a soft-masked one decoded with its mask and encoded once, others through
  `extract_image`), converted where Pillow needs it and checked (vloom.media.check_image),
  interleaved with the text;
- plain loop: per page `get_text("blocks")` and every image xref not seen before in the PDF
  extracted (`extract_image`: MuPDF decodes a Flate image and encodes it as PNG), nothing
  checked;
- text only: per page `get_text()`.
Pages/s by wall clock and by CPU time (the machine may be shared). Parquet writing is left out. `--repeat R` runs R rounds of the three, interleaved, and keeps
each one's best; `--profile` then prints vloom's top functions (cProfile, one more run).
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
    ap.add_argument("--repeat", type=int, default=1, help="R interleaved rounds, the best of each")
    ap.add_argument("--profile", action="store_true", help="cProfile vloom's run")
    args = ap.parse_args()
    pdfs = [Path(p) for p in args.pdfs]
    missing = [p for p in pdfs if not p.is_file()]
    if missing:
        sys.exit(f"{missing[0]}: not found (apt-get install lilypond-doc-pdf, or pass PDFs)")
    print(f"{len(pdfs)} PDFs ({sum(p.stat().st_size for p in pdfs) / 1e6:.1f} MB)")
    run_plain(pdfs[-1:])  # warm MuPDF the same way for all

    runs = (("vloom", run_vloom), ("plain loop", run_plain), ("text only", run_text))
    times: dict[str, list[float]] = {name: [] for name, _ in runs}
    cpu: dict[str, list[float]] = {name: [] for name, _ in runs}
    outs: dict[str, tuple] = {}
    # rounds interleave the three, so a load that comes and goes falls on each alike
    for _ in range(args.repeat):
        for name, fn in runs:
            t0, c0 = time.perf_counter(), time.process_time()
            outs[name] = fn(pdfs)
            times[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    rows, cpu_rows = {}, {}
    for name, _ in runs:
        pages, img, chars = outs[name]
        rows[name], cpu_rows[name] = pages / min(times[name]), pages / min(cpu[name])
        print(
            f"{name:10}: {rows[name]:8.1f} pages/s, {cpu_rows[name]:8.1f} pages/CPU-s"
            f"  ({pages} pages, {img} images, {chars} chars)"
        )
    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        run_vloom(pdfs)
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)
    for peer in ("plain loop", "text only"):
        print(
            f"ratio vloom / {peer}: {rows['vloom'] / rows[peer]:.2f}x"
            f" ({cpu_rows['vloom'] / cpu_rows[peer]:.2f}x in CPU time)"
        )


if __name__ == "__main__":
    main()
