"""`vloom ingest --workers N` against one process: wall time, CPU time, and the same bytes.

    python benchmarks/ingest_workers.py [INPUT ...] [--kind html] [--workers 2] [--repeat 2]

Default input: the GIMP English manual (Debian package gimp-help-en). Each run is a fresh
`vloom ingest` subprocess (as a user runs it: startup, workers, shards and ledger included);
runs alternate 1 / N workers so a loaded machine slows both alike. Prints per run the wall
time and the CPU time of the process and its workers (user + sys), the best-wall speed-up and
the CPU overhead ratio, and checks the two outputs are byte-identical. On a busy machine the
wall ratio is noise-bound; the CPU ratio says what parallelism costs.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GIMP = Path("/usr/share/gimp/2.0/help/en")


def _run(kind: str, inputs: list[str], out: Path, workers: int) -> tuple[float, float]:
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "vloom", "ingest", kind, *inputs, "--out", str(out), "--quiet"]
    r0, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    subprocess.run([*cmd, "--workers", str(workers)], check=True, stdout=subprocess.DEVNULL)
    wall, r1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)


def _same(a: Path, b: Path) -> bool:
    files = sorted(p.name for p in a.iterdir())
    if files != sorted(p.name for p in b.iterdir()):
        return False
    return all((a / f).read_bytes() == (b / f).read_bytes() for f in files)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("inputs", nargs="*", default=[str(GIMP)])
    ap.add_argument("--kind", default="html")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="vloom-bench-workers-"))
    res: dict[int, list[tuple[float, float]]] = {1: [], args.workers: []}
    for _ in range(args.repeat):
        for n in res:
            res[n].append(_run(args.kind, args.inputs, tmp / f"w{n}", n))
    import json

    led = json.loads((tmp / "w1" / "ledger.json").read_text())
    for n, runs in res.items():
        walls = ", ".join(f"{w:.2f}" for w, _ in runs)
        cpus = ", ".join(f"{c:.2f}" for _, c in runs)
        print(f"workers={n}: wall s [{walls}]  cpu s [{cpus}]")
    w1 = min(w for w, _ in res[1])
    wn = min(w for w, _ in res[args.workers])
    c1 = min(c for _, c in res[1])
    cn = min(c for _, c in res[args.workers])
    print(
        f"{led['input']} inputs, {led['kept']} documents: {led['input'] / w1:.0f} vs "
        f"{led['input'] / wn:.0f} inputs/s; speed-up {w1 / wn:.2f}x (best wall), "
        f"CPU {cn / c1:.2f}x of one process"
    )
    print("byte-identical:", _same(tmp / "w1", tmp / f"w{args.workers}"))
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
