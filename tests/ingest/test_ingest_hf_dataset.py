"""The hf source on datasets written here with `datasets` (save_to_disk, DatasetDict, Parquet)."""

from __future__ import annotations

import functools
import io
import json
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from ingestfix import bomb_png, jpeg, png
from PIL import Image

from vloom.cli import main
from vloom.doc import Document, read_documents
from vloom.ingest.base import IngestError, IngestOptions
from vloom.ingest.run import run_ingest
from vloom.ledger import Ledger

datasets = pytest.importorskip("datasets", reason="the hf tests build datasets with `datasets`")
datasets.disable_progress_bars()
IMG = datasets.Image()
STR = datasets.Value("string")


def _ingest(inp: Path, out: Path, **kw) -> tuple[dict[str, Document], Ledger]:
    extra = kw.pop("extra", {})
    opts = IngestOptions(out_dir=out, extra=extra, **kw)
    led = run_ingest("hf", [inp], out, opts, quiet=True)
    led.check()
    assert Ledger.read(out).to_dict() == led.to_dict()
    return {d.id: d for d in read_documents(out)}, led


def _export(dd, root: Path) -> Path:
    """The Hub's Parquet layout: data/{split}-00000-of-00001.parquet."""
    for split, ds in dd.items():
        ds.to_parquet(str(root / "data" / f"{split}-00000-of-00001.parquet"))
    return root


def _same(a: dict[str, Document], b: dict[str, Document]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert (a[k].texts, a[k].images, a[k].url, a[k].language, a[k].metadata) == (
            b[k].texts,
            b[k].images,
            b[k].url,
            b[k].language,
            b[k].metadata,
        )


# ---------------------------------------------------------------- OBELICS / MINT-1T documents


def _documents():
    feats = datasets.Features(
        {
            "id": STR,
            "texts": datasets.List(STR),
            "images": datasets.List(IMG),
            "url": STR,
            "language": STR,
            "metadata": STR,
            "general_metadata": STR,
        }
    )
    a, b, c = png(1), jpeg(2), png(3, 40, 30)
    gm = json.dumps({"url": "http://example.org/gm", "warc": "x.warc"})
    rows = [  # (texts, images, why)
        (["Intro.", None, "After the image.", None], [None, a, None, b], "kept"),
        ([None, "Caption below."], [c, None], "kept"),
        (["Only text, it is fine."], [None], "kept"),
        (["Text.", None], [None, b"not an image"], "kept, image left out"),
        (["a", "b"], [None], "misaligned_items"),
        (["a", None], [None, None], "neither_at_position"),
        (["   ", None], [None, b"garbage"], "empty_document"),
        (None, [a], "null_items"),
    ]
    cols = {k: [] for k in feats}
    for i, (texts, images, _) in enumerate(rows):
        cols["id"].append(f"doc{i}")
        cols["texts"].append(texts)
        cols["images"].append(None if images is None else [_img(x) for x in images])
        cols["url"].append(None if i == 1 else f"http://example.org/{i}")
        cols["language"].append("en")
        cols["metadata"].append(json.dumps([{"alt": "x"}]))
        cols["general_metadata"].append(gm)
    train = datasets.Dataset.from_dict(cols, features=feats)
    test = datasets.Dataset.from_dict({k: v[:2] for k, v in cols.items()}, features=feats)
    return datasets.DatasetDict({"train": train, "test": test}), (a, b, c)


def _img(x: bytes | None) -> dict | None:
    return None if x is None else {"bytes": x, "path": None}


def test_hf_documents_save_to_disk_dict_and_parquet_export_agree(tmp_path):
    dd, (a, b, c) = _documents()
    dd.save_to_disk(str(tmp_path / "disk" / "obelics"))
    _export(dd, tmp_path / "pq" / "obelics")
    docs, led = _ingest(tmp_path / "disk" / "obelics", tmp_path / "o1")
    pq_docs, pq_led = _ingest(tmp_path / "pq" / "obelics", tmp_path / "o2")
    _same(docs, pq_docs)
    assert pq_led.to_dict()["rejected"] == led.to_dict()["rejected"]

    assert led.input == 10 and led.kept == 6
    assert dict(led.rejected) == {
        "misaligned_items": 1,
        "neither_at_position": 1,
        "empty_document": 1,
        "null_items": 1,
    }
    images = led.extra["images"]
    assert images["attached"] == 6 and images["rejected"] == {"not_an_image": 2}

    d0 = docs["obelics/train/0"]
    assert d0.texts == ["Intro.", None, "After the image.", None]
    assert d0.images == [None, a, None, b] and d0.source == "hf"
    assert Image.open(io.BytesIO(d0.images[3])).size == (20, 20)  # the JPEG decodes
    assert d0.url == "http://example.org/0" and d0.language == "en"
    assert d0.metadata == {
        "id": "doc0",
        "metadata": [{"alt": "x"}],
        "general_metadata": {"url": "http://example.org/gm", "warc": "x.warc"},
        "layout": "documents",
        "split": "train",
        "row": 0,
    }
    assert docs["obelics/train/1"].url == "http://example.org/gm"  # from general_metadata
    assert docs["obelics/train/1"].images == [c, None]
    left_out = docs["obelics/train/3"]
    assert left_out.texts == ["Text."] and left_out.metadata["images_left_out"] == 1
    assert sorted(docs) == sorted(
        [f"obelics/train/{i}" for i in range(4)] + ["obelics/test/0", "obelics/test/1"]
    )


def test_hf_documents_from_single_dataset_and_single_file(tmp_path):
    dd, (a, _, _) = _documents()
    dd["test"].save_to_disk(str(tmp_path / "plain"))  # a Dataset: no splits
    dd["test"].to_parquet(str(tmp_path / "one.parquet"))
    docs, led = _ingest(tmp_path / "plain", tmp_path / "o1")
    assert sorted(docs) == ["plain/0", "plain/1"] and led.kept == 2
    assert docs["plain/0"].metadata["split"] is None
    arrow = next((tmp_path / "plain").glob("*.arrow"))
    one, _ = _ingest(arrow, tmp_path / "o2")
    assert [d.images for d in one.values()] == [d.images for d in docs.values()]
    flat, _ = _ingest(tmp_path / "one.parquet", tmp_path / "o3")
    assert sorted(flat) == ["one/0", "one/1"] and flat["one/0"].images[1] == a


def test_hf_documents_with_url_and_path_images(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "a.png").write_bytes(png(7))
    srv = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(site)))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    host = f"http://127.0.0.1:{srv.server_address[1]}"
    try:
        root = tmp_path / "mint"
        (root / "img").mkdir(parents=True)
        (root / "img" / "local.png").write_bytes(png(8))
        (tmp_path / "outside.png").write_bytes(png(9))
        images = [
            [None, f"{host}/a.png"],
            [None, f"{host}/missing.png"],
            [None, "img/local.png"],
            [None, "../outside.png"],
        ]
        ds = datasets.Dataset.from_dict(
            {"texts": [[f"t{i}", None] for i in range(4)], "images": images},
            features=datasets.Features({"texts": datasets.List(STR), "images": datasets.List(STR)}),
        )
        ds.save_to_disk(str(root))
        docs, led = _ingest(root, tmp_path / "o1")  # no --fetch: no network
        assert led.kept == 4 and [d.n_images for d in docs.values()] == [0, 0, 1, 0]
        assert led.extra["images"]["missing"] == {"remote_not_fetched": 2, "unsafe_path": 1}
        assert docs["mint/2"].images[1] == png(8)
        docs, led = _ingest(
            root, tmp_path / "o2", fetch=True, fetch_timeout=5.0, fetch_allow=["127.0.0.1/32"]
        )
        assert docs["mint/0"].images == [None, png(7)]
        assert led.extra["images"]["missing"] == {"fetch_http_404": 1, "unsafe_path": 1}
        assert led.extra["images"]["by_origin"]["remote"] == {"references": 2, "attached": 1}
    finally:
        srv.shutdown()
        srv.server_close()


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


# ---------------------------------------------------------------- image-text pairs


def test_hf_pairs_layout_rejects_are_named(tmp_path):
    good = [png(i) for i in range(3)]
    big = png(50, 300, 300)
    rows = [  # (image, caption)
        (good[0], "a red thing"),
        (good[1], "  padded caption  "),
        (None, "no image"),
        (good[2], None),
        (good[2], "   "),
        (b"not an image at all", "bytes that are no image"),
        (bomb_png(), "a decompression bomb"),
        (big, "too large for the cap"),
    ]
    feats = datasets.Features({"jpg": IMG, "txt": STR, "score": datasets.Value("float32")})
    ds = datasets.Dataset.from_dict(
        {
            "jpg": [_img(i) for i, _ in rows],
            "txt": [c for _, c in rows],
            "score": [0.5] * len(rows),
        },
        features=feats,
    )
    ds.save_to_disk(str(tmp_path / "pairs"))
    cap = len(big) - 1
    docs, led = _ingest(tmp_path / "pairs", tmp_path / "o", max_image_bytes=cap)
    assert [(d.images[0], d.texts[1]) for d in docs.values()] == [
        (good[0], "a red thing"),
        (good[1], "padded caption"),
    ]
    assert docs["pairs/0"].metadata == {"score": 0.5, "layout": "pairs", "split": None, "row": 0}
    assert dict(led.rejected) == {
        "missing_image": 1,
        "missing_caption": 1,
        "empty_caption": 1,
        "not_an_image": 1,
        "decompression_bomb": 1,
        "image_too_large": 1,
    }
    assert led.input == 8 and led.kept == 2


def test_hf_pairs_named_columns_and_forced_layout(tmp_path):
    feats = datasets.Features({"picture": IMG, "words": STR, "texts": datasets.List(STR)})
    ds = datasets.Dataset.from_dict(
        {"picture": [_img(png(1))], "words": ["named columns"], "texts": [["ignored"]]},
        features=feats,
    )
    ds.to_parquet(str(tmp_path / "named.parquet"))
    with pytest.raises(IngestError, match=r"named.parquet: columns fit no layout"):
        _ingest(tmp_path / "named.parquet", tmp_path / "o1")
    extra = {"image_column": "picture", "text_column": "words", "layout": "pairs"}
    docs, _ = _ingest(tmp_path / "named.parquet", tmp_path / "o2", extra=extra)
    (doc,) = docs.values()
    assert doc.texts == [None, "named columns"] and doc.metadata["texts"] == ["ignored"]


# ---------------------------------------------------------------- the_cauldron conversations


def _cauldron():
    turn = {"user": STR, "assistant": STR, "source": STR}
    feats = datasets.Features({"images": datasets.List(IMG), "texts": datasets.List(turn)})
    a, b = png(11), jpeg(12)
    rows = [
        ([a, b], [("What differs?", "The colours."), ("And the size?", "Same size.")]),
        ([a], [("Describe.", "Noise.")]),
        ([a], []),  # no_turns
        ([a], [("Question?", None)]),  # incomplete_turn
        ([None], [("Where is it?", "Gone.")]),  # missing_image
        ([b"\x89PNG\r\n\x1a\nbroken"], [("Broken?", "Yes.")]),  # undecodable_image
    ]
    ds = datasets.Dataset.from_dict(
        {
            "images": [[_img(x) for x in ims] for ims, _ in rows],
            "texts": [
                [{"user": u, "assistant": r, "source": "vqav2"} for u, r in turns]
                for _, turns in rows
            ],
        },
        features=feats,
    )
    return ds, (a, b)


def test_hf_conversation_layout_keeps_the_turns(tmp_path):
    ds, (a, b) = _cauldron()
    datasets.DatasetDict({"train": ds}).save_to_disk(str(tmp_path / "disk" / "cauldron"))
    _export({"train": ds}, tmp_path / "pq" / "cauldron")
    docs, led = _ingest(tmp_path / "disk" / "cauldron", tmp_path / "o1")
    pq_docs, _ = _ingest(tmp_path / "pq" / "cauldron", tmp_path / "o2")
    _same(docs, pq_docs)
    assert led.input == 6 and led.kept == 2
    assert dict(led.rejected) == {
        "no_turns": 1,
        "incomplete_turn": 1,
        "missing_image": 1,
        "undecodable_image": 1,
    }
    d = docs["cauldron/train/0"]
    assert d.images[:2] == [a, b] and d.texts[:2] == [None, None]  # images first
    assert d.texts[2:] == ["What differs?", "The colours.", "And the size?", "Same size."]
    convo = d.metadata["conversation"]
    assert [c["role"] for c in convo] == ["user", "assistant", "user", "assistant"]
    assert [c["text"] for c in convo] == d.texts[d.n_images :]  # aligned with the text items
    assert d.metadata["turn_sources"] == ["vqav2", "vqav2"]
    assert d.metadata["layout"] == "conversation"


# ---------------------------------------------------------------- bad inputs


def test_hf_whole_unusable_inputs_are_one_line_errors(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("x")
    with pytest.raises(IngestError, match=r"empty: no datasets save_to_disk directory"):
        _ingest(empty, tmp_path / "o")

    ds = datasets.Dataset.from_dict({"n": [1, 2]})
    ds.save_to_disk(str(tmp_path / "ints"))
    with pytest.raises(IngestError, match=r"data-00000-of-00001.arrow: columns fit no layout"):
        _ingest(tmp_path / "ints", tmp_path / "o")

    ds, _ = _cauldron()
    ds.save_to_disk(str(tmp_path / "cauldron"))
    with pytest.raises(IngestError, match=r"looked for texts list<string> \+ images"):
        _ingest(tmp_path / "cauldron", tmp_path / "o", extra={"layout": "documents"})
    with pytest.raises(IngestError, match=r"layout='obelics'"):
        _ingest(tmp_path / "cauldron", tmp_path / "o", extra={"layout": "obelics"})
    with pytest.raises(IngestError, match=r"no column 'caption' \(text_column\)"):
        _ingest(tmp_path / "cauldron", tmp_path / "o", extra={"text_column": "caption"})

    state = tmp_path / "cauldron" / "state.json"
    state.write_text(json.dumps({"_data_files": [{"filename": "gone.arrow"}]}))
    with pytest.raises(IngestError, match=r"state.json: lists gone.arrow, which is not a file"):
        _ingest(tmp_path / "cauldron", tmp_path / "o")
    state.write_text("{not json")
    with pytest.raises(IngestError, match=r"state.json: not readable JSON"):
        _ingest(tmp_path / "cauldron", tmp_path / "o")
    assert not (tmp_path / "o" / "ledger.json").exists()


def test_hf_corrupt_tables_are_counted_and_the_run_goes_on(tmp_path):
    dd, _ = _documents()
    root = _export(dd, tmp_path / "mixed")
    (root / "data" / "train-00001-of-00002.parquet").write_bytes(b"PAR1 this is not parquet")
    dd["test"].save_to_disk(str(root / "saved"))
    arrow = next((root / "saved").glob("*.arrow"))
    arrow.write_bytes(arrow.read_bytes()[:-200])  # cut inside the last batch
    docs, led = _ingest(root, tmp_path / "o")
    assert led.rejected["parquet_corrupt"] == 1 and led.rejected["arrow_corrupt"] == 1
    assert sorted(docs) == sorted(
        [f"mixed/train/{i}" for i in range(4)] + ["mixed/test/0", "mixed/test/1"]
    )


def test_hf_over_cap_images_and_compression_bombs(tmp_path):
    big, small = png(60, 200, 200), png(61)
    feats = datasets.Features({"texts": datasets.List(STR), "images": datasets.List(IMG)})
    ds = datasets.Dataset.from_dict(
        {
            "texts": [["Big one:", None, "Small one:", None]],
            "images": [[None, _img(big), None, _img(small)]],
        },
        features=feats,
    )
    ds.save_to_disk(str(tmp_path / "docs"))
    ds.save_to_disk(str(tmp_path / "again" / "docs"))  # same name: ids stay distinct
    opts = IngestOptions(out_dir=tmp_path / "o", max_image_bytes=len(big) - 1)
    led = run_ingest(
        "hf", [tmp_path / "docs", tmp_path / "again" / "docs"], tmp_path / "o", opts, quiet=True
    )
    docs = list(read_documents(tmp_path / "o"))
    assert [d.id for d in docs] == ["docs/0", "docs~2/0"]
    assert docs[0].texts == ["Big one:", "Small one:", None] and docs[0].images[2] == small
    assert led.extra["images"]["rejected"] == {"image_too_large": 2}

    # 16 MB of zeros per row, zstd: a few KB on disk, refused from the page headers unread
    zeros = b"\0" * (16 << 20)
    bomb = tmp_path / "bomb" / "train.parquet"
    bomb.parent.mkdir()
    pq.write_table(
        pa.table({"image": [zeros] * 3, "caption": ["zeros"] * 3}),
        bomb,
        compression="zstd",
        write_statistics=False,
    )
    del zeros
    assert bomb.stat().st_size < 64 * 1024
    docs, led = _ingest(bomb.parent, tmp_path / "o2", max_image_bytes=1 << 20)
    assert not docs and dict(led.rejected) == {"compression_bomb": 3}


def test_cli_ingest_hf_writes_shards_and_a_summary(tmp_path, capsys):
    dd, _ = _documents()
    dd.save_to_disk(str(tmp_path / "obelics"))
    out = tmp_path / "out"
    argv = ["ingest", "hf", str(tmp_path / "obelics"), "--out", str(out), "--quiet"]
    assert main([*argv, "--shard-size", "4"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["input"], summary["kept"], summary["source"]) == (10, 6, "hf")
    assert len(list(out.glob("shard-*.parquet"))) == 2
    assert [d.id for d in read_documents(out)][:2] == ["obelics/train/0", "obelics/train/1"]
    assert main([*argv, "--option", "layout=pairs"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "columns fit no layout" in err
