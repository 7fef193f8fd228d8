"""Parallel ingest: the same output bytes for any --workers and for Ray, and a run killed with
SIGKILL resumes at input-file granularity without writing anything twice."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from ingestfix import make_site, page, png

from vloom.ingest import executor
from vloom.ingest.base import IngestOptions
from vloom.ingest.run import run_ingest
from vloom.ledger import Ledger

GIMP = Path("/usr/share/gimp/2.0/help/en")
REPO = Path(__file__).resolve().parents[2]


def _bytes(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


def _ingest(kind: str, inputs: list[Path], out: Path, **kw) -> dict[str, bytes]:
    shard_size = kw.pop("shard_size", 5)
    led = run_ingest(kind, inputs, out, IngestOptions(out_dir=out), True, shard_size, **kw)
    led.check()
    assert not executor.work_dir(out).exists()  # the parts are gone once the output is there
    return _bytes(out)


def _site(root: Path, n_pages: int, paras: int = 3) -> Path:
    """make_site's pages and images, plus n_pages more pages in two directories, one empty."""
    make_site(root)
    for i in range(n_pages):
        body = "".join(f"<p>Page {i} paragraph {k} with some words.</p>" for k in range(paras))
        img = '<img src="../img/logo.png" alt="logo">' if i % 3 == 0 else ""
        d = root / ("a" if i % 2 else "b")
        d.mkdir(exist_ok=True)
        (d / f"p{i:04d}.html").write_text(page(f"P{i}", f"<main>{body}{img}</main>"))
    (root / "a" / "empty.html").write_text(page("E", ""))  # dropped: no_content
    return root


def test_html_workers_give_the_same_bytes(tmp_path):
    site = _site(tmp_path / "site", 150)
    one = _ingest("html", [site], tmp_path / "o1")
    two = _ingest("html", [site], tmp_path / "o2", workers=2)
    assert len(executor.split("html", [site])) > 2  # more than one part per worker
    assert two == one and len(one) > 3
    led = Ledger.read(tmp_path / "o2")
    assert led.input == 154 and led.dropped["html"]["no_content"] == 1


def test_html_named_files_and_directories_mixed(tmp_path):
    site = _site(tmp_path / "site", 10)
    inputs = [site / "index.html", site / "a", site / "docs"]
    assert _ingest("html", inputs, tmp_path / "o2", workers=2) == _ingest(
        "html", inputs, tmp_path / "o1"
    )


def test_pairs_workers_give_the_same_bytes(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    for t in range(3):
        with tarfile.open(d / f"{t:05d}.tar", "w") as tf:
            for i in range(4):
                data = [(".png", png(10 * t + i)), (".txt", f"cap {t} {i}".encode())]
                if i == 2:
                    data = [(".png", b"not an image"), (".txt", b"bad")]
                for ext, b in data:
                    info = tarfile.TarInfo(f"k{i}{ext}")
                    info.size = len(b)
                    tf.addfile(info, io.BytesIO(b))
    pq.write_table(pa.table({"jpg": [png(i) for i in range(5)], "txt": ["c"] * 5}), d / "t.parquet")
    one = _ingest("pairs", [d], tmp_path / "o1", shard_size=4)
    two = _ingest("pairs", [d], tmp_path / "o2", shard_size=4, workers=2)
    assert two == one
    led = Ledger.read(tmp_path / "o1")
    assert led.input == 17 and led.kept == 14 and led.rejected["not_an_image"] == 3


@pytest.mark.slow
@pytest.mark.skipif(not GIMP.is_dir(), reason=f"{GIMP} (Debian gimp-help-en) absent")
def test_gimp_manual_workers_give_the_same_bytes(tmp_path):
    one = _ingest("html", [GIMP], tmp_path / "o1", shard_size=100)
    two = _ingest("html", [GIMP], tmp_path / "o2", shard_size=100, workers=2)
    assert two == one
    assert Ledger.read(tmp_path / "o1").kept > 600


def test_sigkill_mid_run_then_rerun_gives_the_same_bytes(tmp_path, monkeypatch):
    site = _site(tmp_path / "site", 1200, paras=40)
    ref = _ingest("html", [site], tmp_path / "ref", shard_size=50)
    out = tmp_path / "o"
    work = executor.work_dir(out)
    cmd = [sys.executable, "-m", "vloom", "ingest", "html", str(site), "--out", str(out)]
    cmd += ["--workers", "2", "--shard-size", "50", "--quiet"]
    proc = subprocess.Popen(cmd, cwd=REPO, start_new_session=True, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if len(list(work.glob("part-*.done"))) >= 2:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and its workers, mid-run
    proc.wait()
    assert not (out / "ledger.json").exists()  # nothing that looks finished
    done = sorted(int(p.name[5:11]) for p in work.glob("part-*.done"))
    n_parts = len(executor.split("html", [site]))
    assert 2 <= len(done) < n_parts

    ran: list[int] = []
    real = executor.local_map

    def recording(fn, jobs, workers, desc, quiet):
        ran.extend(job[4] for job in jobs)
        real(fn, jobs, workers, desc, quiet)

    monkeypatch.setattr(executor, "local_map", recording)
    again = _ingest("html", [site], out, shard_size=50, workers=2)
    assert not set(ran) & set(done)  # finished files are not ingested again
    assert sorted(ran + done) == list(range(n_parts))
    assert again == ref  # same shards, same ledger: nothing counted twice


def test_changed_input_is_not_taken_for_the_finished_part(tmp_path):
    site = _site(tmp_path / "site", 6)
    out = tmp_path / "o"
    parts = executor.split("html", [site])
    opts = IngestOptions(out_dir=out.resolve())
    # a finished part of an earlier (killed) run over other page contents
    executor.run_parts("html", [site], out.resolve(), opts, 1, executor.local_map, True)
    (site / "a" / "p0001.html").write_text(page("Changed", "<p>other words now</p>"))
    assert len(parts) == len(executor.split("html", [site]))
    fresh = _ingest("html", [site], tmp_path / "fresh")
    assert _ingest("html", [site], out, workers=2) == fresh


@pytest.mark.slow
def test_ray_executor_gives_the_local_bytes(tmp_path):
    pytest.importorskip("ray")
    site = _site(tmp_path / "site", 40)
    local = _ingest("html", [site], tmp_path / "o1", workers=2)
    ray_out = _ingest("html", [site], tmp_path / "o2", workers=2, executor="ray")
    assert ray_out == local


def test_data_sources_ingest_with_the_curate_executor_settings(tmp_path, monkeypatch):
    from vloom.config import CurateConfig, DataConfig
    from vloom.sources.stage import SOURCES_DIR, ingest_sources

    site = _site(tmp_path / "site", 30)
    data = DataConfig(sources=[{"name": "web", "kind": "html", "paths": [str(site)]}], shard_size=7)
    seen: list[int] = []
    real = executor.local_map

    def recording(fn, jobs, workers, desc, quiet):
        seen.append(workers)
        real(fn, jobs, workers, desc, quiet)

    monkeypatch.setattr(executor, "local_map", recording)
    ingest_sources(data, tmp_path / "r1", quiet=True)
    ingest_sources(data, tmp_path / "r2", quiet=True, executor=CurateConfig(workers=2))
    assert seen == [2]  # one-process by default; the curate section's workers when given
    one, two = (_bytes(tmp_path / r / SOURCES_DIR / "web") for r in ("r1", "r2"))
    assert one == two


def test_hf_inputs_as_parts_keep_their_ids(tmp_path):
    inputs = []
    for i, d in enumerate(("x/train", "y/train", "z")):
        (tmp_path / d).mkdir(parents=True)
        n = 3 + i
        table = {
            "image": [png(10 * i + k) for k in range(n)],
            "caption": [f"c{k}" for k in range(n)],
        }
        pq.write_table(pa.table(table), tmp_path / d / "data.parquet")
        inputs.append(tmp_path / d)
    assert len(executor.split("hf", inputs)) == 3
    one = _ingest("hf", inputs, tmp_path / "o1")
    assert _ingest("hf", inputs, tmp_path / "o2", workers=2) == one
    from vloom.doc import read_documents

    ids = [d.id for d in read_documents(tmp_path / "o1")]
    assert ids[0].startswith("train/") and ids[-1].startswith("z/") and ids[-1].endswith("/4")
    assert sum(i.startswith("train~2/") for i in ids) == 4


LILY = Path("/usr/share/doc/lilypond/html/Documentation/ly-examples")


@pytest.mark.skipif(not LILY.is_dir(), reason=f"{LILY} (Debian lilypond-doc PDFs) absent")
def test_pdf_workers_give_the_same_bytes_with_bad_and_outside_files(tmp_path):
    import shutil

    d = tmp_path / "pdfs"
    d.mkdir()
    for f in sorted(LILY.glob("*.preview.pdf"))[:3]:
        shutil.copy(f, d / f.name)
    (d / "broken.pdf").write_bytes(b"%PDF-1.4 not really")
    outside = tmp_path / "elsewhere.pdf"
    shutil.copy(sorted(LILY.glob("*.preview.pdf"))[0], outside)
    (d / "link.pdf").symlink_to(outside)  # walked: outside the input directory
    one = _ingest("pdf", [d], tmp_path / "o1", shard_size=2)
    assert _ingest("pdf", [d], tmp_path / "o2", shard_size=2, workers=2) == one
    led = Ledger.read(tmp_path / "o1")
    assert led.rejected["outside_root"] == 1 and led.rejected["pdf_corrupt"] == 1
    assert led.input == 5


def test_warc_ranges_give_the_same_bytes_with_damage_and_images_in_other_warcs(tmp_path):
    from ingestfix import site_records, write_warc

    from vloom.ingest.warc import range_starts, scan_warc

    site = _site(tmp_path / "site", 40)
    pages, images = site_records(site)
    d = tmp_path / "warcs"
    d.mkdir()
    write_warc(d / "a.warc.gz", pages[:30] + images, extras=True)
    write_warc(d / "b.warc.gz", pages[30:])  # its pages' images live in a.warc.gz
    data = bytearray((d / "a.warc.gz").read_bytes())
    at = data.index(b"\x1f\x8b\x08", len(data) // 3)  # a gzip member a third of the way in
    data[at + 40 : at + 64] = bytes(24)  # its deflate data broken: one record lost
    (d / "a.warc.gz").write_bytes(bytes(data))
    (d / "c.warc").write_bytes(b"not a warc at all\n")
    (tmp_path / "elsewhere.warc.gz").write_bytes((d / "b.warc.gz").read_bytes())
    (d / "link.warc.gz").symlink_to(tmp_path / "elsewhere.warc.gz")  # outside the directory

    def ingest(out: Path, workers: int) -> dict[str, bytes]:
        opts = IngestOptions(out_dir=out, extra={"warc_range_bytes": 2000})
        run_ingest("warc", [d], out, opts, True, 7, workers=workers).check()
        assert not executor.work_dir(out).exists()
        return _bytes(out)

    opts = IngestOptions(out_dir=tmp_path, extra={"warc_range_bytes": 2000})
    assert len(range_starts(scan_warc(d / "a.warc.gz", d, opts), 2000)) > 4  # ranges of a WARC
    assert len(executor.split("warc", [d])) == 4  # and one scan per WARC
    one = ingest(tmp_path / "o1", 1)
    assert ingest(tmp_path / "o2", 2) == one
    led = Ledger.read(tmp_path / "o1")
    assert led.rejected["warc_record_corrupt"] == 1 and led.rejected["outside_root"] == 1
    assert led.rejected["not_a_warc"] == 1 and led.kept >= len(pages) - 2
    assert led.extra["images"]["attached"] > 10


def test_warc_rerun_redoes_only_unfinished_ranges(tmp_path, monkeypatch):
    from ingestfix import site_records, write_warc

    site = _site(tmp_path / "site", 30)
    pages, images = site_records(site)
    d = tmp_path / "warcs"
    d.mkdir()
    write_warc(d / "a.warc.gz", images + pages[:20])
    write_warc(d / "b.warc.gz", pages[20:])
    extra = {"warc_range_bytes": 2000}
    ref = tmp_path / "ref"
    run_ingest("warc", [d], ref, IngestOptions(out_dir=ref, extra=extra), True, 7)
    out = (tmp_path / "o").resolve()
    # a run killed after its scans and all but its last range (the parts are left, not assembled)
    executor.run_parts(
        "warc", [d], out, IngestOptions(out_dir=out, extra=extra), 1, executor.local_map, True
    )
    work = executor.work_dir(out)
    done = sorted(work.glob("part-*.done"))
    assert len(done) > 3 and len(list(work.glob("scan-*.json"))) == 2
    done[-1].unlink()

    ran: list[tuple[str, list[int]]] = []
    real = executor.local_map

    def recording(fn, jobs, workers, desc, quiet):
        ran.append((fn.__name__, [job[4] for job in jobs]))
        real(fn, jobs, workers, desc, quiet)

    monkeypatch.setattr(executor, "local_map", recording)
    run_ingest("warc", [d], out, IngestOptions(out_dir=out, extra=extra), True, 7, workers=2)
    assert ran == [("_part_task", [len(done) - 1])]  # no scan, no finished range again
    assert _bytes(out) == _bytes(ref)


def test_warc_part_rereads_each_image_once_while_it_is_kept(tmp_path, monkeypatch):
    """A parallel part has no pass 1: its images are re-read by offset, the recent ones kept."""
    from ingestfix import site_records, write_warc

    from vloom.ingest import warc as warc_mod

    site = _site(tmp_path / "site", 12)  # every third page shows the same logo
    pages, images = site_records(site)
    write_warc(tmp_path / "a.warc.gz", pages + images)
    opts = IngestOptions(out_dir=tmp_path / "x")
    scan = warc_mod.scan_warc(tmp_path / "a.warc.gz", None, opts)
    index = {url: (0, off) for url, off in scan["images"]}
    store = warc_mod.WarcImageIndex([tmp_path / "a.warc.gz"], opts.max_image_bytes, index=index)
    reads: list[int] = []
    real = warc_mod.read_payload_at

    def counting(fh, offset, max_bytes, reader=None):
        reads.append(offset)
        return real(fh, offset, max_bytes, reader)

    monkeypatch.setattr(warc_mod, "read_payload_at", counting)
    first = {url: store.get(url) for url in index}
    again = {url: store.get(url) for url in index}
    store.close()
    assert all(isinstance(b, bytes) for b in first.values()) and again == first
    assert sorted(reads) == sorted(off for _, off in scan["images"])  # each read once
    # a run's scan writes the payloads out: a part takes them from there, inflating nothing
    reads.clear()
    blob = tmp_path / "a.images"
    scan = warc_mod.scan_warc(tmp_path / "a.warc.gz", None, opts, blob)
    store = warc_mod.WarcImageIndex([tmp_path / "a.warc.gz"], opts.max_image_bytes, index=index)
    store.blobs, store.in_blob = [blob], {(0, e[1]): (e[2], e[3]) for e in scan["images"]}
    assert {url: store.get(url) for url in index} == first and not reads
    store.close()


def test_warc_error_in_the_parts_stops_a_parallel_run(tmp_path):
    """An IngestError where the parts run (their thread, the pool) reaches the caller; no output."""
    from ingestfix import site_records, write_warc

    from vloom.ingest.base import IngestError

    pages, images = site_records(_site(tmp_path / "site", 6))
    d = tmp_path / "warcs"
    d.mkdir()
    write_warc(d / "a.warc.gz", pages + images)
    write_warc(d / "b.warc.gz", pages)
    out = tmp_path / "o"
    for inputs in ([d / "a.warc.gz"], [d]):  # one WARC scanned in the driver, two in the pool
        opts = IngestOptions(out_dir=out, extra={"warc_reader": "nope"})
        with pytest.raises(IngestError, match="warc_reader='nope'"):
            run_ingest("warc", inputs, out, opts, True, 7, workers=2)
        assert not out.exists()
