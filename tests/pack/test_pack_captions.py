"""An HTML figure's caption leaves the page text at ingest and comes back beside its image
in the packed token stream."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image
from tinyexp import tiny_config

from vloom.doc import Document, read_documents, write_shard
from vloom.ingest.base import IngestOptions
from vloom.ingest.run import run_ingest
from vloom.pack import PackedStream, run_pack
from vloom.pack.captions import with_captions
from vloom.sequence import IMAGE_ID, load_tokenizer

PROSE = (
    "The harbour of the old town was rebuilt after the storm of the winter. Fishing boats "
    "returned in spring and the market opened again on the quay beside the customs house. "
)


def png(seed: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (24, 16), (seed * 37 % 256, 90, 20)).save(buf, format="PNG")
    return buf.getvalue()


def _site(root: Path) -> None:
    root.mkdir()
    (root / "boat.png").write_bytes(png(1))
    body = (
        f"<article><h1>Harbour</h1><p>{PROSE * 3}</p>"
        '<figure><img src="boat.png" alt="a boat">'
        "<figcaption>Zebra boats moored at the quay.</figcaption></figure>"
        f"<p>{PROSE * 2}</p></article>"
    )
    html = f"<!doctype html><html lang=en><head><title>Harbour</title></head><body>{body}"
    (root / "index.html").write_text(html + "</body></html>")


def _image_stream_text(packed: Path) -> str:
    tok = load_tokenizer(packed / "tokenizer.json")
    s = PackedStream(packed, "image", 0)
    parts = []
    for i in range(len(s)):
        ids = s.row(i)[0].tolist()
        # an image block reads as one marker, so the text around it can be located
        out, prev = [], None
        for t in ids:
            if t == IMAGE_ID:
                if prev != IMAGE_ID:
                    out.append("<IMG>")
            else:
                out.append(tok.decode([t]))
            prev = t
        parts.append("".join(out))
    return " ".join(parts)


def test_an_html_caption_follows_its_image_in_the_packed_stream(tmp_path):
    _site(tmp_path / "site")
    out = tmp_path / "ingested"
    run_ingest("html", [tmp_path / "site"], out, IngestOptions(out_dir=out), quiet=True)
    (doc,) = list(read_documents(out))
    assert "Zebra" not in doc.text  # main content only: the caption is the image's field
    assert doc.metadata["images"][0]["caption"] == "Zebra boats moored at the quay."

    cfg = tiny_config(pack__vocab_size=300, pack__tokenizer_docs=20)
    run_pack(out, tmp_path / "packed", cfg, quiet=True)
    text = _image_stream_text(tmp_path / "packed")
    assert "<IMG>" in text
    after = text.split("<IMG>", 1)[1].lstrip()
    assert after.startswith("Zebra boats moored at the quay.")

    off = tiny_config(pack__vocab_size=300, pack__tokenizer_docs=20, pack__image_captions=False)
    run_pack(out, tmp_path / "packed_off", off, quiet=True)
    assert "Zebra" not in _image_stream_text(tmp_path / "packed_off")


def test_captions_pair_by_order_and_are_not_written_twice():
    meta = {"images": [{"caption": " A  cat. "}, {"caption": ""}, {"caption": "Fig. 3 A map."}]}
    texts = ["intro", None, "more", None, None, "Fig. 3 A map. It shows the coast."]
    assert with_captions(texts, meta) == [
        "intro",
        None,
        "A cat.",
        "more",
        None,
        None,
        "Fig. 3 A map. It shows the coast.",
    ]
    # counts that differ (a source that lists images otherwise): the document as it is
    assert with_captions(["a", None], meta) == ["a", None]
    assert with_captions(["a", None], {"images": "x"}) == ["a", None]
    assert with_captions(["a"], {}) == ["a"]


def test_documents_without_captions_pack_exactly_as_before(tmp_path):
    docs = [
        Document.from_items(f"d{i}", [png(i), PROSE, png(i + 9)], metadata={"images": [{}, {}]})
        for i in range(5)
    ]
    write_shard(tmp_path / "in" / "a.parquet", docs)
    on = tiny_config(pack__vocab_size=300, pack__tokenizer_docs=20)
    off = tiny_config(pack__vocab_size=300, pack__tokenizer_docs=20, pack__image_captions=False)
    run_pack(tmp_path / "in", tmp_path / "on", on, quiet=True)
    run_pack(tmp_path / "in", tmp_path / "off", off, quiet=True)
    a, b = PackedStream(tmp_path / "on", "image", 0), PackedStream(tmp_path / "off", "image", 0)
    assert len(a) == len(b) > 0
    assert all(np.array_equal(a.row(i)[0], b.row(i)[0]) for i in range(len(a)))
