"""run_ingest and `vloom ingest`: shards, ledger, determinism, output-directory safety, CLI."""

from __future__ import annotations

import json

import pytest
from ingestfix import make_site, page

from vloom.cli import main
from vloom.doc import read_documents
from vloom.ingest.base import IngestError, IngestOptions
from vloom.ingest.run import run_ingest
from vloom.ledger import Ledger


def _pages(root, n: int) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (root / f"p{i:02d}.html").write_text(page(f"t{i}", f"<p>page number {i}</p>"))


def test_shards_ledger_and_determinism(tmp_path):
    _pages(tmp_path / "in", 7)
    (tmp_path / "in" / "empty.html").write_text(page("e", "<nav>only nav</nav>"))
    out1, out2 = tmp_path / "o1", tmp_path / "o2"
    led = run_ingest("html", [tmp_path / "in"], out1, quiet=True, shard_size=3)
    run_ingest("html", [tmp_path / "in"], out2, quiet=True, shard_size=3)
    shards = sorted(p.name for p in out1.glob("*.parquet"))
    assert shards == ["shard-00000.parquet", "shard-00001.parquet", "shard-00002.parquet"]
    for name in shards:  # same inputs, same bytes
        assert (out1 / name).read_bytes() == (out2 / name).read_bytes()
    docs = list(read_documents(out1))
    assert [d.texts for d in docs] == [[f"page number {i}"] for i in range(7)]
    assert len({d.id for d in docs}) == 7
    on_disk = Ledger.read(out1)
    on_disk.check()
    assert (on_disk.input, on_disk.kept, on_disk.to_dict()["dropped"]) == (
        8,
        7,
        {"html": {"no_content": 1}},
    )
    assert on_disk.extra["source"] == "html" and on_disk.extra["shards"] == shards
    assert led.to_dict() == on_disk.to_dict()


def test_rerun_with_fewer_documents_leaves_no_stale_shards(tmp_path):
    _pages(tmp_path / "in", 5)
    out = tmp_path / "out"
    run_ingest("html", [tmp_path / "in"], out, quiet=True, shard_size=2)
    assert len(list(out.glob("*.parquet"))) == 3
    (out / "notes.parquet").write_bytes(b"user file")  # not ours: left alone
    for p in list((tmp_path / "in").glob("p0[1-4].html")):
        p.unlink()
    run_ingest("html", [tmp_path / "in"], out, quiet=True, shard_size=2)
    assert sorted(p.name for p in out.glob("*.parquet")) == ["notes.parquet", "shard-00000.parquet"]


def test_bad_arguments_are_clear_errors(tmp_path):
    _pages(tmp_path / "in", 1)
    (tmp_path / "file").write_text("x")
    with pytest.raises(IngestError, match="not a directory"):
        run_ingest("html", [tmp_path / "in"], tmp_path / "file", quiet=True)
    with pytest.raises(IngestError, match="cannot also be an input"):
        run_ingest("html", [tmp_path / "in"], tmp_path / "in", quiet=True)
    with pytest.raises(IngestError, match="no such file"):
        run_ingest("html", [tmp_path / "nope"], tmp_path / "o", quiet=True)
    with pytest.raises(IngestError, match="unknown source kind"):
        run_ingest("gopher", [tmp_path / "in"], tmp_path / "o", quiet=True)
    (tmp_path / "nohtml").mkdir()
    (tmp_path / "nohtml" / "a.txt").write_text("x")
    with pytest.raises(IngestError, match="nohtml: no .html"):
        run_ingest("html", [tmp_path / "nohtml"], tmp_path / "o", quiet=True)
    with pytest.raises(IngestError, match="nohtml: no .warc"):
        run_ingest("warc", [tmp_path / "nohtml"], tmp_path / "o", quiet=True)
    assert not (tmp_path / "o" / "ledger.json").exists()
    with pytest.raises(IngestError, match="shard-size"):
        run_ingest("html", [tmp_path / "in"], tmp_path / "o", quiet=True, shard_size=0)


def test_cli_prints_one_json_line(tmp_path, capsys):
    make_site(tmp_path / "site")
    out = tmp_path / "out"
    rc = main(
        [
            "ingest",
            "html",
            str(tmp_path / "site"),
            "--out",
            str(out),
            "--quiet",
            "--shard-size",
            "2",
        ]
    )
    assert rc == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    summary = json.loads(lines[0])
    assert summary["input"] == 3 and summary["kept"] == 3 and summary["images"]["attached"] == 5
    assert len(list(out.glob("shard-*.parquet"))) == 2

    rc = main(["ingest", "html", str(tmp_path / "missing"), "--out", str(out), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.count("\n") == 0 and "missing: no such file" in err


def test_options_reach_the_source(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "short.html").write_text(page("s", "<p>tiny</p>"))
    (tmp_path / "in" / "long.html").write_text(page("l", "<p>" + "long text " * 20 + "</p>"))
    opts = IngestOptions(out_dir=tmp_path / "o", min_text_chars=50, language="xx")
    led = run_ingest("html", [tmp_path / "in"], tmp_path / "o", opts, quiet=True)
    docs = list(read_documents(tmp_path / "o"))
    assert [d.metadata["title"] for d in docs] == ["l"] and docs[0].language == "xx"
    assert led.to_dict()["dropped"] == {"html": {"no_content": 1}}


def test_cli_source_options_reach_the_pairs_source(tmp_path, capsys):
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 10, 10)).save(buf, "PNG")
    pq.write_table(
        pa.table({"picture": [buf.getvalue()], "alt_text": ["a red rectangle"]}),
        tmp_path / "pairs.parquet",
    )
    out = tmp_path / "out"
    base = ["ingest", "pairs", str(tmp_path / "pairs.parquet"), "--out", str(out), "--quiet"]
    assert main(base) == 2  # the default column names are not there: a one-line error
    assert "alt_text" in capsys.readouterr().err
    opts = ["--option", "caption_column=alt_text", "--option", "image_column=picture"]
    assert main(base + opts) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["kept"] == 1
    (doc,) = read_documents(out)
    assert doc.texts[1] == "a red rectangle" or "a red rectangle" in doc.texts
    assert main(base + ["--option", "captionn=x"]) == 2
    err = capsys.readouterr().err
    assert "unknown ingest option" in err and "caption_column" in err


def _snapshot(out) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


def test_reingest_interrupted_keeps_the_previous_output_whole(tmp_path, monkeypatch):
    from vloom.ingest import base

    _pages(tmp_path / "old", 6)
    _pages(tmp_path / "new", 9)
    out = tmp_path / "out"
    run_ingest("html", [tmp_path / "old"], out, quiet=True, shard_size=2)
    before = _snapshot(out)
    monkeypatch.setitem(base.SOURCES, "html-cut", "ingestfix:interrupted_html")
    with pytest.raises(KeyboardInterrupt):  # after the first shard of the new run
        run_ingest("html-cut", [tmp_path / "new"], out, quiet=True, shard_size=2)
    assert _snapshot(out) == before  # the first run's shards and ledger, nothing of the second
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new", "old", "out"]  # no leftovers


def test_reingest_killed_keeps_the_previous_output_whole(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    _pages(tmp_path / "old", 6)
    _pages(tmp_path / "new", 3000)
    out = tmp_path / "out"
    run_ingest("html", [tmp_path / "old"], out, quiet=True, shard_size=2)
    before = _snapshot(out)
    cmd = [sys.executable, "-m", "vloom.cli", "ingest", "html", str(tmp_path / "new")]
    start = time.time_ns()
    proc = subprocess.Popen(cmd + ["--out", str(out), "--quiet", "--shard-size", "1"])
    deadline = time.monotonic() + 120

    def second_shard_written() -> bool:  # wherever the run writes it (staging dir or --out)
        found = [*tmp_path.glob(".tmp-out-*/shard-00001.parquet"), out / "shard-00001.parquet"]
        return any(p.exists() and p.stat().st_mtime_ns > start for p in found)

    try:  # SIGKILL once the new run has written its second shard
        while not second_shard_written():
            assert proc.poll() is None and time.monotonic() < deadline, "run ended before the kill"
            time.sleep(0.02)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert _snapshot(out) == before  # never a mix of new shards under the old ledger
    run_ingest("html", [tmp_path / "new"], out, quiet=True, shard_size=1000)  # a rerun cleans up
    assert Ledger.read(out).kept == 3000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new", "old", "out"]


def test_out_overlapping_an_input_is_refused_and_nothing_written(tmp_path):
    _pages(tmp_path / "in", 2)
    with pytest.raises(IngestError, match="lies inside the input"):
        run_ingest("html", [tmp_path / "in"], tmp_path / "in" / "out", quiet=True)
    assert not (tmp_path / "in" / "out").exists()
    _pages(tmp_path / "o" / "pages", 2)
    with pytest.raises(IngestError, match="inside the output directory"):
        run_ingest("html", [tmp_path / "o" / "pages"], tmp_path / "o", quiet=True)
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["pages"]
