"""The pairs source on webdataset tars and Parquet tables written here, bad members included."""

from __future__ import annotations

import functools
import io
import json
import os
import struct
import tarfile
import threading
import zlib
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from vloom.doc import Document
from vloom.ingest.base import IngestError, IngestOptions
from vloom.ingest.pairs import ingest_pairs
from vloom.ledger import Ledger


def _img(fmt: str, seed: int, size: tuple[int, int] = (24, 16)) -> bytes:
    arr = (np.random.RandomState(seed).rand(size[1], size[0], 3) * 255).astype("uint8")
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, fmt)
    return buf.getvalue()


def _bomb_png(side: int = 30_000) -> bytes:
    """A valid PNG header claiming side x side pixels: Pillow refuses it at open."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _tar(path: Path, members: list[tuple[str, bytes] | tarfile.TarInfo], mode: str = "w") -> Path:
    with tarfile.open(path, mode) as tf:
        for m in members:
            if isinstance(m, tarfile.TarInfo):
                tf.addfile(m)
                continue
            name, data = m
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def _run(inputs: list[Path], tmp_path: Path, **kw) -> tuple[list[Document], Ledger]:
    ledger = Ledger()
    extra = kw.pop("extra", {})
    opts = IngestOptions(out_dir=tmp_path / "out", extra=extra, **kw)
    docs = list(ingest_pairs(inputs, ledger, opts))
    ledger.kept = len(docs)
    ledger.check()
    return docs, ledger


JPG, PNG, WEBP = _img("JPEG", 1), _img("PNG", 2), _img("WEBP", 3)


def test_pairs_webdataset_samples_and_bad_members(tmp_path):
    link = tarfile.TarInfo("k.jpg")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    shard = _tar(
        tmp_path / "shard-000.tar",
        [
            ("000/a.jpg", JPG),
            ("000/a.txt", b"A red kite over the hills."),
            ("b.png", PNG),
            (
                "b.json",
                json.dumps({"caption": "A blue door.", "url": "http://x/b.png", "w": 24}).encode(),
            ),
            ("c.webp", WEBP),
            ("c.json", json.dumps({"caption": "from json", "language": "de"}).encode()),
            ("c.txt", b"The txt member wins."),
            ("d.jpg", JPG),  # no caption
            ("e.txt", b"A caption without an image."),
            ("f.jpg", b"<html>this is not a jpeg</html>"),
            ("f.txt", b"claims to be an image"),
            ("g.png", _bomb_png()),
            ("g.txt", b"decompression bomb"),
            ("h.jpg", JPG),
            ("h.txt", b"\xff\xfe not utf-8 \xc3"),
            ("i.jpg", JPG),
            ("i.json", b"{not json"),
            ("j.jpg", JPG),
            ("j.txt", b"   \n "),
            ("../evil.jpg", JPG),
            ("../evil.txt", b"climbs out"),
            ("/tmp/abs.jpg", JPG),
            ("/tmp/abs.txt", b"absolute"),
            link,
            ("k.txt", b"a link"),
            ("l.jpg", JPG),
            ("l.txt", b"Last good pair."),
        ],
    )
    before = sorted(p.name for p in tmp_path.parent.iterdir())
    docs, ledger = _run([shard], tmp_path)
    assert [d.id for d in docs] == [
        "shard-000.tar:000/a",
        "shard-000.tar:b",
        "shard-000.tar:c",
        "shard-000.tar:l",
    ]
    assert [d.texts[1] for d in docs] == [
        "A red kite over the hills.",
        "A blue door.",
        "The txt member wins.",
        "Last good pair.",
    ]
    assert [d.images[0] for d in docs] == [JPG, PNG, WEBP, JPG]
    assert all(d.texts[0] is None and d.images[1] is None for d in docs)
    b, c = docs[1], docs[2]
    assert b.url == "http://x/b.png" and b.metadata["w"] == 24 and "caption" not in b.metadata
    assert b.metadata["image_format"] == "png" and (b.metadata["width"], b.metadata["height"]) == (
        24,
        16,
    )
    assert c.language == "de" and c.metadata["shard"] == "shard-000.tar"
    assert ledger.input == 14
    assert dict(ledger.rejected) == {
        "missing_caption": 1,
        "missing_image": 1,
        "not_an_image": 1,
        "decompression_bomb": 1,
        "caption_not_utf8": 1,
        "bad_json": 1,
        "empty_caption": 1,
        "unsafe_path": 3,
    }
    # streamed, never extracted: nothing appeared next to or above the shard
    assert sorted(p.name for p in tmp_path.parent.iterdir()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shard-000.tar"]
    assert ledger.extra["images"]["rejected"] == {"not_an_image": 1, "decompression_bomb": 1}


def test_pairs_corrupt_tars_counted_and_run_goes_on(tmp_path):
    good = [(f"s{i}.jpg", _img("JPEG", i)) for i in range(6)]
    members = [
        m for i, (n, d) in enumerate(good) for m in ((n, d), (f"s{i}.txt", f"pair {i}".encode()))
    ]
    whole = _tar(tmp_path / "whole.tar", members).read_bytes()
    (tmp_path / "a_truncated.tar").write_bytes(whole[: len(whole) // 2])
    # cut exactly after s2.jpg, between two members: tarfile alone would call this complete
    with tarfile.open(tmp_path / "whole.tar") as tf:
        s2 = tf.getmember("s2.jpg")
    cut = s2.offset_data + (s2.size + 511) // 512 * 512
    (tmp_path / "a_cut_at_member.tar").write_bytes(whole[:cut])
    (tmp_path / "b_junk.tar").write_bytes(b"this is not a tar archive " * 40)
    _tar(tmp_path / "c_good.tar.gz", members[:4], mode="w:gz")
    (tmp_path / "whole.tar").unlink()
    docs, ledger = _run([tmp_path], tmp_path)
    from_truncated = [d for d in docs if d.id.startswith("a_truncated.tar")]
    assert 1 <= len(from_truncated) < 6  # the complete samples before the break are kept
    assert [d.texts[1] for d in docs if d.id.startswith("a_cut")] == ["pair 0", "pair 1"]
    assert [d.texts[1] for d in docs if d.id.startswith("c_good")] == ["pair 0", "pair 1"]
    assert dict(ledger.rejected) == {"tar_corrupt": 3}


def _table(path: Path, cols: dict[str, list]) -> Path:
    pq.write_table(pa.table(cols), path)
    return path


def test_pairs_parquet_img2dataset_style(tmp_path):
    table = _table(
        tmp_path / "part-0.parquet",
        {
            "key": ["000", "001", "002", "003", "004"],
            "jpg": [JPG, PNG, None, b"GIF89a but not really", JPG],
            "txt": ["A kite.", "A door.", "Fetch failed here.", "Not an image.", None],
            "url": ["http://example.invalid/a.jpg", None, "http://127.0.0.1:9/c.jpg", None, None],
            "similarity": [0.31, 0.29, 0.30, 0.2, 0.1],
            "status": ["success"] * 5,
        },
    )
    docs, ledger = _run([table], tmp_path)
    assert [d.id for d in docs] == ["part-0.parquet:000", "part-0.parquet:001"]
    a = docs[0]
    assert (
        a.images[0] == JPG and a.texts[1] == "A kite." and a.url == "http://example.invalid/a.jpg"
    )
    assert a.metadata["similarity"] == 0.31 and a.metadata["status"] == "success"
    assert "jpg" not in a.metadata and "txt" not in a.metadata
    # the URL-only row is not downloaded unless fetching was asked for
    assert dict(ledger.rejected) == {
        "remote_not_fetched": 1,
        "undecodable_image": 1,
        "missing_caption": 1,
    }


def test_pairs_parquet_paths_structs_and_named_columns(tmp_path):
    root = tmp_path / "data"
    (root / "imgs").mkdir(parents=True)
    (root / "imgs" / "a.png").write_bytes(PNG)
    (tmp_path / "outside.jpg").write_bytes(JPG)  # readable, but not where the table points
    (root / "imgs" / "sneaky.jpg").symlink_to(tmp_path / "outside.jpg")
    table = _table(
        root / "t.parquet",
        {
            "picture": [
                {"bytes": None, "path": "imgs/a.png"},
                {"bytes": WEBP, "path": "ignored.webp"},
                {"bytes": None, "path": "../outside.jpg"},
                {"bytes": None, "path": str(tmp_path / "outside.jpg")},
                {"bytes": None, "path": "imgs/sneaky.jpg"},
                {"bytes": None, "path": "imgs/missing.png"},
                {"bytes": None, "path": "imgs/./../imgs/a.png"},
            ],
            "alt_text": [
                "relative path",
                "struct bytes",
                "climbs",
                "absolute",
                "link",
                "gone",
                "dots",
            ],
        },
    )
    extra = {"caption_column": "ALT_TEXT", "image_column": "picture"}
    docs, ledger = _run([table], tmp_path, extra=extra)
    assert [(d.texts[1], d.images[0]) for d in docs] == [
        ("relative path", PNG),
        ("struct bytes", WEBP),
        ("dots", PNG),
    ]
    assert dict(ledger.rejected) == {"unsafe_path": 3, "image_not_found": 1}


def test_pairs_parquet_without_needed_columns_is_a_clear_error(tmp_path):
    table = _table(tmp_path / "meta.parquet", {"key": ["0"], "status": ["failed"]})
    with pytest.raises(IngestError) as e:
        _run([table], tmp_path)
    msg = str(e.value)
    assert "meta.parquet" in msg and "columns found: key, status" in msg and "\n" not in msg
    table = _table(tmp_path / "nocap.parquet", {"jpg": [JPG], "status": ["ok"]})
    with pytest.raises(IngestError, match=r"nocap.parquet: no caption column.*found: jpg, status"):
        _run([table], tmp_path)


def test_pairs_corrupt_parquet_and_bad_inputs(tmp_path):
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 definitely not parquet PAR1")
    _table(tmp_path / "ok.parquet", {"image": [PNG], "caption": ["fine"]})
    docs, ledger = _run([tmp_path], tmp_path)
    assert [d.texts[1] for d in docs] == ["fine"]
    assert dict(ledger.rejected) == {"parquet_corrupt": 1}
    (tmp_path / "notes.csv").write_text("a,b\n")
    with pytest.raises(IngestError, match="notes.csv: not a webdataset tar"):
        _run([tmp_path / "notes.csv"], tmp_path)
    with pytest.raises(IngestError, match="nope.tar: no such file"):
        _run([tmp_path / "nope.tar"], tmp_path)


def test_pairs_directory_skips_img2dataset_metadata_tables(tmp_path):
    _tar(tmp_path / "00000.tar", [("0.jpg", JPG), ("0.txt", b"pair in the tar")])
    _table(tmp_path / "00000.parquet", {"key": ["0"], "status": ["success"], "url": ["http://x"]})
    docs, ledger = _run([tmp_path], tmp_path)
    assert [d.texts[1] for d in docs] == ["pair in the tar"] and ledger.input == 1


class _LoggedHandler(SimpleHTTPRequestHandler):
    requests: list[str] = []

    def log_message(self, *args) -> None:  # the request log, kept instead of printed
        self.requests.append(self.path)


@pytest.fixture()
def image_server(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "a.jpg").write_bytes(JPG)
    (site / "fake.jpg").write_bytes(b"<html>not an image</html>")
    _LoggedHandler.requests = []
    handler = functools.partial(_LoggedHandler, directory=str(site))
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def test_pairs_parquet_urls_fetched_when_asked(tmp_path, image_server):
    table = _table(
        tmp_path / "urls.parquet",
        {
            "url": [
                f"{image_server}/a.jpg",
                f"{image_server}/fake.jpg",
                f"{image_server}/none.jpg",
            ],
            "caption": ["fetched", "not an image", "missing"],
        },
    )
    docs, ledger = _run(
        [table], tmp_path, fetch=True, fetch_timeout=5.0, fetch_allow=["127.0.0.1/32"]
    )
    assert [(d.texts[1], d.images[0], d.url) for d in docs] == [
        ("fetched", JPG, f"{image_server}/a.jpg")
    ]
    assert dict(ledger.rejected) == {"not_an_image": 1, "fetch_http_404": 1}
    assert ledger.extra["images"]["by_origin"]["remote"] == {"references": 3, "attached": 1}


def test_pairs_cli_writes_only_inside_out_and_reports_bad_tables(tmp_path, capsys):
    from vloom.cli import main
    from vloom.doc import read_documents

    src = tmp_path / "src"
    src.mkdir()
    _tar(
        src / "shard.tar",
        [
            ("0.jpg", JPG),
            ("0.txt", b"kept pair"),
            ("../../escape.jpg", JPG),
            ("../../escape.txt", b"x"),
        ],
    )
    out = tmp_path / "out"
    assert main(["ingest", "pairs", str(src / "shard.tar"), "--out", str(out), "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["input"], summary["kept"], summary["rejected"]) == (2, 1, {"unsafe_path": 1})
    assert [d.texts[1] for d in read_documents(out)] == ["kept pair"]
    assert not list(tmp_path.parent.glob("escape*")) and not list(tmp_path.glob("escape*"))
    assert sorted(p.name for p in out.iterdir()) == ["ledger.json", "shard-00000.parquet"]
    _table(src / "meta.parquet", {"key": ["0"], "status": ["failed"]})
    assert main(["ingest", "pairs", str(src / "meta.parquet"), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        len(err.splitlines()) == 1 and "meta.parquet" in err and "columns found: key, status" in err
    )


def test_pairs_fetch_refuses_internal_urls_unless_allowed(tmp_path, image_server, capsys):
    """URLs from the data naming the local host are refused unsent; --fetch-allow opens them."""
    from vloom.cli import main
    from vloom.doc import read_documents

    port = image_server.rsplit(":", 1)[1]
    hosts = ["127.0.0.1", "localhost", "2130706433", "127.1", "0x7f.1", "[::1]", "[::ffff:7f00:1]"]
    src = tmp_path / "src"
    src.mkdir()
    _table(
        src / "urls.parquet",
        {"url": [f"http://{h}:{port}/a.jpg" for h in hosts], "caption": hosts},
    )
    out = tmp_path / "out"
    argv = ["ingest", "pairs", str(src), "--out", str(out), "--fetch", "--quiet"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["kept"] == 0 and summary["rejected"] == {"fetch_blocked_address": len(hosts)}
    assert _LoggedHandler.requests == []  # nothing reached the server
    assert main([*argv, "--fetch-allow", "127.0.0.1/32"]) == 0
    summary = json.loads(capsys.readouterr().out)
    # every spelling of 127.0.0.1 (the IPv4-mapped one too); [::1] is another address: refused
    assert summary["kept"] == 6 and summary["rejected"] == {"fetch_blocked_address": 1}
    assert all(d.images[0] == JPG for d in read_documents(out))


def test_pairs_fifo_image_path_is_counted_not_waited_on(tmp_path):
    root = tmp_path / "data"
    (root / "imgs").mkdir(parents=True)
    (root / "imgs" / "a.png").write_bytes(PNG)
    os.mkfifo(root / "imgs" / "pipe.jpg")  # nobody ever writes to it: a read would block forever
    (root / "imgs" / "dir.jpg").mkdir()
    os.mkfifo(root / "pipe.parquet")  # a shard that is a FIFO: skipped by the directory walk
    table = _table(
        root / "t.parquet",
        {
            "image_path": ["imgs/pipe.jpg", "imgs/dir.jpg", "imgs/a.png"],
            "caption": ["fifo", "a directory", "fine"],
        },
    )
    result: list = []
    worker = threading.Thread(target=lambda: result.append(_run([root], tmp_path)), daemon=True)
    worker.start()
    worker.join(timeout=60)
    assert not worker.is_alive(), "the run blocked on a FIFO"
    docs, ledger = result[0]
    assert [d.texts[1] for d in docs] == ["fine"]
    assert dict(ledger.rejected) == {"not_a_regular_file": 2}
    with pytest.raises(IngestError, match="pipe.parquet: not a regular file"):
        _run([root / "pipe.parquet"], tmp_path)
    assert table.exists()


_ZERO_ROWS = 4
_ZERO_BYTES = 64 << 20


def _rss_growth_reading(table: Path, max_image_bytes: int) -> dict:
    """Ingest `table` in a fresh interpreter; its peak RSS growth (MB) and the ledger."""
    code = f"""
import json, resource, sys
from pathlib import Path
from vloom.ingest.base import IngestOptions
from vloom.ingest.pairs import ingest_pairs
from vloom.ledger import Ledger
import pyarrow.parquet, PIL.Image  # imports are not what is measured
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
led = Ledger()
opts = IngestOptions(out_dir=Path("unused"), max_image_bytes={max_image_bytes})
kept = len(list(ingest_pairs([Path({str(table)!r})], led, opts)))
growth = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
print(json.dumps({{"mb": growth, "kept": kept, "input": led.input, "rejected": led.rejected}}))
"""
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("dictionary", [True, False])
def test_pairs_parquet_compression_bomb_is_refused_unread(tmp_path, dictionary):
    """4 rows of 64 MB zeros, zstd: a few KB on disk. Before: +843 MB RSS while reading."""
    zeros = b"\0" * _ZERO_BYTES
    bomb = tmp_path / "bomb.parquet"
    pq.write_table(
        pa.table({"image": [zeros] * _ZERO_ROWS, "caption": ["zeros"] * _ZERO_ROWS}),
        bomb,
        compression="zstd",
        use_dictionary=dictionary,
        write_statistics=False,  # statistics over 64 MB values take seconds to write
    )
    ok = tmp_path / "ok.parquet"
    pq.write_table(
        pa.table({"image": [zeros[:1000]] * 2 + [PNG], "caption": ["a", "b", "png"]}),
        ok,
        compression="zstd",
    )
    del zeros
    assert bomb.stat().st_size < 64 * 1024
    got = _rss_growth_reading(bomb, 20 << 20)
    assert got["input"] == _ZERO_ROWS and got["rejected"] == {"compression_bomb": _ZERO_ROWS}
    # a quarter of ONE row: none of the 4 x 64 MB was ever decoded
    assert got["mb"] < _ZERO_BYTES / 4 / 2**20, got
    got = _rss_growth_reading(ok, 20 << 20)  # small zero runs are not bombs: they are decoded
    assert (got["kept"], got["rejected"]) == (1, {"not_an_image": 2})


def test_pairs_parquet_over_cap_images_rejected_before_materialising(tmp_path):
    """Images over the cap (not bombs: random bytes) are counted from their Arrow lengths."""
    rng = np.random.RandomState(0)
    big = [rng.bytes(300_000) for _ in range(3)]
    table = _table(
        tmp_path / "t.parquet",
        {
            "image": [big[0], PNG, big[1], JPG, big[2]],
            "caption": ["big", "png", "big", "jpg", "big"],
        },
    )
    docs, ledger = _run([table], tmp_path, max_image_bytes=200_000)
    assert [d.texts[1] for d in docs] == ["png", "jpg"]
    assert dict(ledger.rejected) == {"image_too_large": 3} and ledger.input == 5
    assert ledger.extra["images"]["rejected"] == {"image_too_large": 3}


def _pax_bomb(path: Path, n_digits: int) -> Path:
    """A PAX extended header whose body is `n_digits` digits (CVE-2024-6232), then a sample."""
    head = tarfile.TarInfo("././@PaxHeader")
    head.type, head.size = tarfile.XHDTYPE, n_digits
    body = b"1" * n_digits
    path.write_bytes(head.tobuf(tarfile.USTAR_FORMAT) + body + b"\0" * (-n_digits % 512))
    sample = io.BytesIO()
    with tarfile.open(fileobj=sample, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        for name, data in (("0.jpg", JPG), ("0.txt", b"after the bad header")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    with open(path, "ab") as f:
        f.write(sample.getvalue())
    return path


_PAIRS = 18  # an ordinary PAX tar about as large as the 80 KB bad one


def test_pairs_tar_pax_header_bomb_is_refused_quickly(tmp_path):
    import time

    n = 80_000
    bad = _pax_bomb(tmp_path / "a_bad.tar", n)
    # an ordinary shard of the same size: many pairs, each with a PAX header of its own
    members = []
    for i in range(_PAIRS):
        members += [(f"s{i:03d}_{'é' * 30}.jpg", JPG), (f"s{i:03d}_{'é' * 30}.txt", b"ok")]
    good = tmp_path / "b_good.tar"
    with tarfile.open(good, "w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    assert 0.5 < good.stat().st_size / bad.stat().st_size < 2

    def timed(path: Path) -> tuple[float, list[Document], Ledger]:
        t0 = time.perf_counter()
        docs, ledger = _run([path], tmp_path)
        return time.perf_counter() - t0, docs, ledger

    t_good, docs, ledger = timed(good)
    assert len(docs) == _PAIRS and not ledger.rejected  # real PAX headers pass the guard
    t_bad, docs, ledger = timed(bad)
    assert docs == [] and dict(ledger.rejected) == {"tar_unsafe_header": 1}
    # before: 14.6 s against milliseconds (quadratic regex); now no slower than a real shard
    assert t_bad < 5 * t_good + 0.5, (t_bad, t_good)
    # the run goes on past the bad shard
    docs, ledger = _run([tmp_path], tmp_path)
    assert len(docs) == _PAIRS and dict(ledger.rejected) == {"tar_unsafe_header": 1}


@pytest.mark.parametrize(
    "kind,size",
    [(tarfile.XHDTYPE, 3 << 20), (tarfile.XGLTYPE, 3 << 20), (tarfile.GNUTYPE_LONGNAME, 3 << 20)],
)
def test_pairs_tar_oversized_extended_headers(tmp_path, kind, size):
    """A gzip shard of a few KB declaring a multi-MB extended header: refused, not read."""
    import gzip

    head = tarfile.TarInfo("././@LongLink")
    head.type, head.size = kind, size
    body = b"a" * size
    raw = head.tobuf(tarfile.USTAR_FORMAT) + body + b"\0" * (-size % 512) + b"\0" * 1024
    shard = tmp_path / "x.tar.gz"
    shard.write_bytes(gzip.compress(raw))
    docs, ledger = _run([shard], tmp_path)
    assert docs == [] and dict(ledger.rejected) == {"tar_unsafe_header": 1}


def test_pairs_gnu_long_names_still_read(tmp_path):
    long = "d/" + "x" * 150
    shard = tmp_path / "gnu.tar"
    with tarfile.open(shard, "w", format=tarfile.GNU_FORMAT) as tf:
        for name, data in ((f"{long}.jpg", JPG), (f"{long}.txt", b"long name")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    docs, ledger = _run([shard], tmp_path)
    assert [d.texts[1] for d in docs] == ["long name"] and not ledger.rejected


@pytest.mark.parametrize("page_version", ["1.0", "2.0"])
def test_pairs_parquet_large_honest_pages_are_read(tmp_path, page_version):
    """A dictionary page far over the cap (pyarrow's default for distinct images) that does not
    inflate is no bomb: every row is read."""
    from vloom.ingest.pairs import PAGE_SLACK
    from vloom.ingest.parquet_pages import page_sizes

    n, cap = 150, 100_000
    pngs = [_img("PNG", i, (160, 160)) for i in range(n)]  # noise: ~77 KB each, incompressible
    table = tmp_path / "big.parquet"
    pq.write_table(
        pa.table({"image": pngs, "caption": [f"n{i}" for i in range(n)]}),
        table,
        compression="zstd",
        data_page_version=page_version,
    )
    chunk = pq.ParquetFile(table).metadata.row_group(0).column(0)
    with open(table, "rb") as f:
        pages = list(page_sizes(f, chunk.dictionary_page_offset, chunk.total_compressed_size))
    assert max(raw for raw, _ in pages) > cap + PAGE_SLACK  # the case this test is about
    docs, ledger = _run([table], tmp_path, max_image_bytes=cap)
    assert len(docs) == n and not ledger.rejected
    assert [d.images[0] for d in docs] == pngs
