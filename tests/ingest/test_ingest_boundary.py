"""The per-unit failure boundary: a unit that raises or stalls is a named rejection, the run
goes on and the ledger adds up, in every source this package owns (html, pairs, hf)."""

from __future__ import annotations

import gzip
import io
import tarfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from ingestfix import make_site, png

from vloom.doc import read_documents
from vloom.ingest.base import IngestOptions
from vloom.ingest.run import run_ingest
from vloom.ledger import Ledger

DEV_PAGES = Path("/work/shared/benchmarks/extraction-dev/pages")


def _run(kind: str, inputs: list[Path], out: Path, **kw) -> Ledger:
    opts = IngestOptions(out_dir=out, **kw)
    led = run_ingest(kind, inputs, out, opts, quiet=True)
    led.check()
    assert Ledger.read(out).to_dict() == led.to_dict()
    return led


def _tar(path: Path, n: int) -> Path:
    with tarfile.open(path, "w") as tf:
        for i in range(n):
            for ext, data in ((".png", png(i)), (".txt", f"caption {i}".encode())):
                info = tarfile.TarInfo(f"s{i:03d}{ext}")
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    return path


def _parquet(path: Path, n: int, image_col: str = "jpg", text_col: str = "txt") -> Path:
    table = pa.table(
        {image_col: [png(i) for i in range(n)], text_col: [f"caption {i}" for i in range(n)]}
    )
    pq.write_table(table, path)
    return path


def test_html_page_that_raises_or_stalls_is_rejected(tmp_path, hostile, capsys):
    make_site(tmp_path / "site")
    hostile("guide.html")
    hostile("leaf.htm", "stall")
    t0 = time.monotonic()
    led = _run("html", [tmp_path / "site"], tmp_path / "o", unit_timeout=0.5)
    assert time.monotonic() - t0 < 20  # the stalled page was cut at its budget, not waited out
    assert led.input == 3 and led.kept == 1
    assert dict(led.rejected) == {"page_error:KeyError": 1, "page_timeout": 1}
    assert [d.metadata["path"] for d in read_documents(tmp_path / "o")] == ["index.html"]
    assert capsys.readouterr().err == ""  # quiet: no stderr lines


def test_html_boundary_names_the_file_on_stderr(tmp_path, hostile, capsys):
    make_site(tmp_path / "site")
    hostile("index.html")
    opts = IngestOptions(out_dir=tmp_path / "o")
    led = run_ingest("html", [tmp_path / "site"], tmp_path / "o", opts, quiet=False)
    err = capsys.readouterr().err
    assert "index.html: page_error:KeyError" in err and led.rejected["page_error:KeyError"] == 1


@pytest.mark.skipif(not DEV_PAGES.is_dir(), reason=f"{DEV_PAGES} (real web pages) absent")
def test_real_pages_that_crashed_the_walk_no_longer_stop_the_run(tmp_path):
    # 0024 and 0171 made `vloom ingest html` die with a TypeError in the DOM walk (issue 15)
    site = tmp_path / "dev"
    site.mkdir()
    for name in ("0000", "0024", "0171", "0200"):
        (site / f"{name}.html").write_bytes(
            gzip.decompress((DEV_PAGES / f"{name}.html.gz").read_bytes())
        )
    led = _run("html", [site], tmp_path / "o")
    assert led.input == 4
    assert led.kept + led.n_dropped + led.n_rejected == 4
    # each either made a document or is the named rejection; the other pages are kept
    assert set(led.rejected) <= {"page_error:TypeError"} and led.kept >= 2


def test_pairs_tar_sample_and_parquet_row_that_raise_or_stall(tmp_path, hostile):
    d = tmp_path / "in"
    d.mkdir()
    _tar(d / "a.tar", 4)
    _parquet(d / "b.parquet", 4)
    hostile("a.tar:s001")
    hostile("b.parquet row 2", "stall")
    led = _run("pairs", [d], tmp_path / "o", unit_timeout=0.5)
    assert led.input == 8 and led.kept == 6
    assert dict(led.rejected) == {"pair_error:KeyError": 1, "pair_timeout": 1}
    ids = [doc.id for doc in read_documents(tmp_path / "o")]
    assert ids == ["a.tar:s000", "a.tar:s002", "a.tar:s003"] + [
        f"b.parquet:{i:09d}" for i in (0, 1, 3)
    ]


def test_pairs_file_that_breaks_between_units_keeps_what_came_before(tmp_path, monkeypatch):
    d = tmp_path / "in"
    d.mkdir()
    _tar(d / "a.tar", 3)
    _tar(d / "b.tar", 2)
    from vloom.ingest import pairs

    real = pairs._unsafe_member

    def breaks(m):  # the tar reading itself (not a sample) fails on a.tar's third sample
        if m.name.startswith("s002"):
            raise RuntimeError("reader broke")
        return real(m)

    monkeypatch.setattr(pairs, "_unsafe_member", breaks)
    led = _run("pairs", [d], tmp_path / "o")
    assert led.input == 5 and led.kept == 4  # a.tar's first two, b.tar's two
    assert dict(led.rejected) == {"file_error:RuntimeError": 1}


def test_hf_row_that_raises_or_stalls_is_rejected(tmp_path, hostile):
    d = tmp_path / "ds"
    d.mkdir()
    _parquet(d / "train.parquet", 5, "image", "caption")
    hostile("train.parquet row 1")
    hostile("train.parquet row 3", "stall")
    led = _run("hf", [d], tmp_path / "o", unit_timeout=0.5)
    assert led.input == 5 and led.kept == 3
    assert dict(led.rejected) == {"row_error:KeyError": 1, "row_timeout": 1}
    rows = [doc.metadata["row"] for doc in read_documents(tmp_path / "o")]
    assert rows == [0, 2, 4]


def test_worker_stuck_outside_python_is_ended_and_the_page_rejected(tmp_path, monkeypatch):
    from test_ingest_workers import _site

    site = _site(tmp_path / "site", 8)
    monkeypatch.setenv("VLOOM_INGEST_TEST_HOOKS", "ingestfix:stuck_outside_python")
    opts = IngestOptions(out_dir=tmp_path / "o", unit_timeout=0.5)
    led = run_ingest("html", [site], tmp_path / "o", opts, quiet=True, workers=2)
    led.check()
    assert dict(led.rejected) == {"page_timeout": 1} and led.input == 12
    paths = {d.metadata["path"] for d in read_documents(tmp_path / "o")}
    assert "b/p0002.html" in paths and "a/p0003.html" not in paths and len(paths) == 10
