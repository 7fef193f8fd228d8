"""The pdf source on PDFs built here with PyMuPDF, and on a real PDF when one is installed."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import zlib
from pathlib import Path

import numpy as np
import pymupdf
import pytest
from PIL import Image

from vloom.doc import Document
from vloom.ingest.base import IngestOptions
from vloom.ingest.pdf import ingest_pdf, reading_order
from vloom.ledger import Ledger
from vloom.media import check_image, decode_image


def _png(w: int, h: int, seed: int, mode: str = "RGB") -> bytes:
    ch = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    arr = (np.random.RandomState(seed).rand(h, w, ch) * 255).astype("uint8")
    img = Image.fromarray(arr[..., 0] if ch == 1 else arr, mode)
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def _jpeg(w: int, h: int, seed: int, mode: str = "RGB") -> bytes:
    img = Image.open(io.BytesIO(_png(w, h, seed))).convert(mode)
    buf = io.BytesIO()
    img.save(buf, "JPEG")
    return buf.getvalue()


def _run(inputs: list[Path], **extra) -> tuple[list[Document], Ledger]:
    ledger = Ledger()
    opts = IngestOptions(out_dir=inputs[0].parent / "out", extra=extra)
    docs = list(ingest_pdf(inputs, ledger, opts))
    ledger.kept = len(docs)
    ledger.check()
    return docs, ledger


def _items(doc: Document) -> list[tuple[str, str | bytes]]:
    return list(doc.items())


def _interleaved_pdf(path: Path) -> None:
    pdf = pymupdf.open()
    pdf.set_metadata({"title": "A Field Guide", "author": "Tester"})
    page = pdf.new_page()  # 595 x 842
    page.insert_text((72, 72), "Chapter one heading", fontsize=16)
    page.insert_image(pymupdf.Rect(72, 100, 272, 250), stream=_png(100, 75, 1))
    page.insert_text((72, 290), "A paragraph between the two figures.", fontsize=11)
    page.insert_image(pymupdf.Rect(72, 320, 232, 440), stream=_png(80, 60, 2))
    page.insert_text((72, 800), "Text at the foot of page one.", fontsize=11)
    page = pdf.new_page()
    page.insert_text((72, 72), "Page two text.", fontsize=11)
    pdf.save(path)


def test_pdf_text_and_images_interleaved_in_reading_order(tmp_path):
    _interleaved_pdf(tmp_path / "guide.pdf")
    docs, ledger = _run([tmp_path / "guide.pdf"])
    assert len(docs) == 1 and ledger.input == 1
    doc = docs[0]
    kinds = [k for k, _ in _items(doc)]
    assert kinds == ["text", "image", "text", "image", "text"]
    assert doc.texts[0] == "Chapter one heading"
    assert doc.texts[2] == "A paragraph between the two figures."
    assert doc.texts[4] == "Text at the foot of page one.\n\nPage two text."
    sizes = [decode_image(im).size for im in doc.images if im is not None]
    assert sizes == [(100, 75), (80, 60)]
    meta = doc.metadata
    assert meta["title"] == "A Field Guide" and meta["author"] == "Tester"
    assert meta["page_count"] == 2 and meta["scanned_pages"] == []
    assert [m["page"] for m in meta["images"]] == [1, 1]
    assert meta["images"][0]["bbox"] == [72.0, 100.0, 272.0, 250.0]
    assert doc.source == "pdf" and doc.id.startswith("pdf-")
    assert ledger.extra["images"]["attached"] == 2
    # same bytes, same document
    again, _ = _run([tmp_path / "guide.pdf"])
    assert again[0].to_row() == doc.to_row()


def test_pdf_two_columns_read_column_by_column(tmp_path):
    pdf = pymupdf.open()
    page = pdf.new_page()
    page.insert_textbox(pymupdf.Rect(72, 60, 523, 90), "Title across both columns", fontsize=14)
    # paragraphs of wrapped lines; left and right columns share baselines, which MuPDF may
    # even put in one block
    words = " ".join(f"w{k}" for k in range(40))
    for i, y in enumerate((110, 200, 290)):
        page.insert_textbox(pymupdf.Rect(72, y, 282, y + 80), f"Left{i} {words}", fontsize=10)
        page.insert_textbox(pymupdf.Rect(313, y, 523, y + 80), f"Right{i} {words}", fontsize=10)
    page.insert_image(pymupdf.Rect(313, 380, 523, 520), stream=_png(90, 60, 3))
    page.insert_textbox(pymupdf.Rect(313, 530, 523, 600), "Right after figure.", fontsize=10)
    pdf.save(tmp_path / "cols.pdf")
    (doc,), _ = _run([tmp_path / "cols.pdf"])
    paragraphs = doc.texts[0].split("\n\n")
    assert [p.split()[0] for p in paragraphs] == [
        "Title",
        "Left0",
        "Left1",
        "Left2",
        "Right0",
        "Right1",
        "Right2",
    ]
    assert paragraphs[1] == f"Left0 {words}" and paragraphs[4] == f"Right0 {words}"  # reflowed
    assert doc.images[1] is not None and doc.texts[2] == "Right after figure."


def test_pdf_list_markers_stay_with_their_items(tmp_path):
    pdf = pymupdf.open()
    page = pdf.new_page()
    page.insert_text((72, 80), "Steps to follow:", fontsize=10)
    for i in range(3):
        page.insert_text((72, 100 + 14 * i), "*", fontsize=10)
        page.insert_text((86, 100 + 14 * i), f"bullet item {i}", fontsize=10)
    for i in range(3):
        page.insert_text((72, 160 + 14 * i), f"{i + 1}.", fontsize=10)
        page.insert_text((100, 160 + 14 * i), f"numbered item {i}", fontsize=10)
    pdf.save(tmp_path / "list.pdf")
    (doc,), _ = _run([tmp_path / "list.pdf"])
    assert doc.text.split("\n") == [
        "Steps to follow:",
        "",
        "* bullet item 0",
        "* bullet item 1",
        "* bullet item 2",
        "",
        "1. numbered item 0",
        "2. numbered item 1",
        "3. numbered item 2",
    ]


def test_pdf_wrapped_lines_reflowed_code_kept(tmp_path):
    pdf = pymupdf.open()
    page = pdf.new_page()
    page.insert_text((72, 80), "The structures man-\nagement is done\nby the library.", fontsize=10)
    page.insert_text((72, 200), "$ ls -l\ntotal 0\n-rw-r--r-- 1 a", fontsize=10, fontname="cour")
    page.insert_text((72, 800), "A sentence that the page break", fontsize=10)
    page = pdf.new_page()
    page.insert_text((72, 60), "cuts in two.", fontsize=10)
    page.insert_text((72, 100), "A new paragraph.", fontsize=10)
    pdf.save(tmp_path / "wrap.pdf")
    (doc,), _ = _run([tmp_path / "wrap.pdf"])
    assert doc.text.split("\n\n") == [
        "The structures management is done by the library.",
        "$ ls -l\ntotal 0\n-rw-r--r-- 1 a",
        "A sentence that the page break cuts in two.",
        "A new paragraph.",
    ]


def test_pdf_running_headers_and_page_numbers_removed(tmp_path):
    pdf = pymupdf.open()
    for n in range(1, 5):
        page = pdf.new_page()  # 842 pt high: the margins are the top and bottom 67 pt
        page.insert_text((72, 40), "Field Guide \u2014 Chapter 1", fontsize=9)
        page.insert_text((72, 200), f"Body text of page {n}.", fontsize=11)
        page.insert_text((290, 810), f"Page {n} of 4", fontsize=9)
    page.insert_text((72, 815), "A footnote only on the last page.", fontsize=9)
    pdf.save(tmp_path / "book.pdf")
    (doc,), ledger = _run([tmp_path / "book.pdf"])
    assert doc.text.split("\n\n") == [
        "Body text of page 1.",
        "Body text of page 2.",
        "Body text of page 3.",
        "Body text of page 4.",
        "A footnote only on the last page.",
    ]
    assert doc.metadata["running_lines_removed"] == 8
    assert ledger.extra["pdf"]["running_lines_removed"] == 8
    (kept,), _ = _run([tmp_path / "book.pdf"], strip_running_headers=False)
    assert kept.text.count("Chapter 1") == 4 and "Page 3 of 4" in kept.text


def test_reading_order_xy_cut():
    # a full-width header, two columns of two boxes each, a full-width footer
    boxes = [
        (300, 100, 500, 150),  # right top
        (0, 0, 500, 40),  # header
        (0, 100, 240, 150),  # left top
        (0, 170, 240, 220),  # left bottom
        (300, 170, 500, 220),  # right bottom
        (0, 300, 500, 330),  # footer
    ]
    assert reading_order(boxes) == [1, 2, 3, 0, 4, 5]
    # overlapping boxes have no band to cut at: top-to-bottom, left-to-right
    assert reading_order([(0, 10, 100, 100), (50, 0, 150, 50)]) == [1, 0]
    assert reading_order([]) == []
    # many stacked lines: no recursion-depth failure, plain top-down order
    stacked = [(0, 20 * i, 100, 20 * i + 10) for i in range(3000)][::-1]
    assert reading_order(stacked)[:3] == [2999, 2998, 2997]


def test_pdf_unusual_images_are_converted_for_pillow(tmp_path):
    pdf = pymupdf.open()
    page = pdf.new_page()
    page.insert_text((72, 60), "Images in unusual encodings follow.", fontsize=11)
    page.insert_image(pymupdf.Rect(72, 80, 172, 180), stream=_jpeg(64, 48, 4, "CMYK"))
    page.insert_image(pymupdf.Rect(72, 200, 172, 300), stream=_png(50, 50, 5, "RGBA"))
    page.insert_image(pymupdf.Rect(72, 320, 172, 420), stream=_png(40, 40, 6, "L"))
    jpx = io.BytesIO()
    Image.open(io.BytesIO(_png(36, 44, 7))).save(jpx, "JPEG2000")  # stored as JPX in the PDF
    page.insert_image(pymupdf.Rect(72, 440, 172, 540), stream=jpx.getvalue())
    pdf.save(tmp_path / "odd.pdf")
    (doc,), ledger = _run([tmp_path / "odd.pdf"])
    images = [im for im in doc.images if im is not None]
    assert len(images) == 4
    formats = [check_image(im) for im in images]  # each decodes with Pillow
    assert [(w, h) for _, w, h in formats] == [(64, 48), (50, 50), (40, 40), (36, 44)]
    assert [f for f, _, _ in formats] == ["jpeg", "png", "png", "png"]
    assert Image.open(io.BytesIO(images[1])).mode == "RGBA"  # the soft mask kept as alpha
    assert ledger.extra["images"]["attached"] == 4


def _image_xobject(pdf: pymupdf.Document, head: str, stream: bytes) -> int:
    """An image XObject with the stream stored as given (already Flate-encoded)."""
    xref = pdf.get_new_xref()
    pdf.update_object(xref, "<<>>")
    pdf.update_stream(xref, stream, compress=False)  # this drops /Filter and /DecodeParms
    pdf.update_object(
        xref, f"<</Type/XObject/Subtype/Image{head}/Filter/FlateDecode/Length {len(stream)}>>"
    )
    return xref


def test_pdf_flate_images_taken_from_their_stored_stream(tmp_path):
    """Flate images become PNGs from their stored data, with the pixels MuPDF decodes: a 1-bit
    indexed image without predictor (rows given PNG filter bytes), gray and RGB streams with a
    PNG predictor (the stream is the PNG's image data as it stands)."""
    rng = np.random.RandomState(11)
    bits = np.packbits(rng.rand(40, 50) > 0.5, axis=1)
    gray = (rng.rand(36, 45) * 255).astype("uint8")
    rgb = (rng.rand(33, 41, 3) * 255).astype("uint8")

    def predicted(arr: np.ndarray) -> bytes:  # rows each led by PNG filter byte 0 (None)
        rows = arr.reshape(arr.shape[0], -1)
        return zlib.compress(np.hstack([np.zeros((rows.shape[0], 1), "uint8"), rows]).tobytes())

    pdf = pymupdf.open()
    page = pdf.new_page()
    page.insert_text((72, 60), "Four stored images follow.", fontsize=11)
    xrefs = [
        _image_xobject(
            pdf,
            "/Width 50/Height 40/BitsPerComponent 1"
            "/ColorSpace[/Indexed/DeviceRGB 1<FF8000 0020FF>]",
            zlib.compress(bits.tobytes()),
        ),
        _image_xobject(
            pdf,
            "/Width 45/Height 36/BitsPerComponent 8/ColorSpace/DeviceGray"
            "/DecodeParms<</Predictor 15/Columns 45>>",
            predicted(gray),
        ),
        _image_xobject(
            pdf,
            "/Width 41/Height 33/BitsPerComponent 8/ColorSpace/DeviceRGB"
            "/DecodeParms<</Predictor 15/Columns 41/Colors 3>>",
            predicted(rgb),
        ),
        _image_xobject(  # samples past the palette's end: MuPDF reads them as its last colour
            pdf,
            "/Width 48/Height 40/BitsPerComponent 8"
            "/ColorSpace[/Indexed/DeviceRGB 2 <FF0000 00FF00 0000FF>]",
            zlib.compress((np.arange(48 * 40) % 256).astype("uint8").tobytes()),
        ),
    ]
    for i, xref in enumerate(xrefs):
        page.insert_image(pymupdf.Rect(72, 80 + 120 * i, 172, 180 + 120 * i), xref=xref)
    pdf.save(tmp_path / "stored.pdf")
    (doc,), ledger = _run([tmp_path / "stored.pdf"])
    images = [im for im in doc.images if im is not None]
    assert ledger.extra["images"]["attached"] == 4
    with pymupdf.open(tmp_path / "stored.pdf") as saved:
        for data, xref in zip(images, xrefs, strict=True):
            pix = pymupdf.Pixmap(saved, xref)  # MuPDF's decoding of the image
            mupdf = np.frombuffer(pix.samples, "uint8").reshape(pix.height, pix.width, pix.n)
            got = np.asarray(Image.open(io.BytesIO(data)).convert("RGB" if pix.n == 3 else "L"))
            assert np.array_equal(got.reshape(mupdf.shape), mupdf)
    assert predicted(gray) in images[1] and predicted(rgb) in images[2]  # the IDAT as stored
    assert Image.open(io.BytesIO(images[3])).mode == "P"
    # the stored depth and palette are kept: 1 bit a pixel, two colours
    img = Image.open(io.BytesIO(images[0]))
    assert img.mode == "P" and img.getpalette()[:6] == [255, 128, 0, 0, 32, 255]
    assert np.array_equal(np.asarray(img) == 0, np.unpackbits(bits, axis=1)[:, :50] == 0)


def test_pdf_flate_stream_only_mupdf_repairs_is_decoded_by_mupdf(tmp_path):
    """A stream cut short, one without its zlib header and an indexed image whose palette is
    short make no PNG of their stored data: MuPDF decodes them, as it always did."""
    gray = (np.random.RandomState(13).rand(40, 50) * 255).astype("uint8")
    full = zlib.compress(gray.tobytes())
    co = zlib.compressobj(wbits=-15)
    headless = co.compress(gray.tobytes()) + co.flush()
    dims = "/Width 50/Height 40/BitsPerComponent 8"
    pdf = pymupdf.open()
    page = pdf.new_page()
    page.insert_text((72, 60), "Damaged image streams follow.", fontsize=11)
    streams = [
        (dims + "/ColorSpace/DeviceGray", full[: len(full) // 2]),
        (dims + "/ColorSpace/DeviceGray", headless),
        (dims + "/ColorSpace[/Indexed/DeviceRGB 255 <0A0B0C>]", full),
    ]
    for i, (head, stream) in enumerate(streams):
        xref = _image_xobject(pdf, head, stream)
        page.insert_image(pymupdf.Rect(72, 80 + 130 * i, 172, 200 + 130 * i), xref=xref)
    pdf.save(tmp_path / "damaged.pdf")
    (doc,), ledger = _run([tmp_path / "damaged.pdf"])
    images = [im for im in doc.images if im is not None]
    assert ledger.extra["images"]["attached"] == 3
    assert [check_image(im)[1:] for im in images] == [(50, 40)] * 3


def test_pdf_soft_masked_image_keeps_its_samples_and_mask(tmp_path):
    """An image with a soft mask becomes RGBA with the stored colours and the mask as alpha,
    exactly (not premultiplied: a nearly transparent pixel keeps its colour)."""
    rng = np.random.RandomState(12)
    rgb = (rng.rand(36, 40, 3) * 255).astype("uint8")
    alpha = (rng.rand(36, 40) * 255).astype("uint8")
    alpha[:, :5] = 1  # nearly transparent: premultiplying would lose these colours
    pdf = pymupdf.open()
    page = pdf.new_page()
    page.insert_text((72, 60), "A figure with a transparent background.", fontsize=11)
    mask = _image_xobject(
        pdf, "/Width 40/Height 36/BitsPerComponent 8/ColorSpace/DeviceGray", zlib.compress(alpha)
    )
    xref = _image_xobject(
        pdf,
        f"/Width 40/Height 36/BitsPerComponent 8/ColorSpace/DeviceRGB/SMask {mask} 0 R",
        zlib.compress(rgb.tobytes()),
    )
    page.insert_image(pymupdf.Rect(72, 80, 172, 180), xref=xref)
    pdf.save(tmp_path / "masked.pdf")
    (doc,), _ = _run([tmp_path / "masked.pdf"])
    (data,) = [im for im in doc.images if im is not None]
    got = np.asarray(Image.open(io.BytesIO(data)))
    assert got.shape == (36, 40, 4)
    assert np.array_equal(got[..., :3], rgb) and np.array_equal(got[..., 3], alpha)


def test_pdf_tiny_and_repeated_images_skipped_and_counted(tmp_path):
    pdf = pymupdf.open()
    page = pdf.new_page()
    page.insert_text((72, 60), "A bullet icon and a real figure.", fontsize=11)
    page.insert_image(pymupdf.Rect(72, 80, 80, 88), stream=_png(8, 8, 7))  # bullet
    page.insert_image(pymupdf.Rect(72, 100, 572, 102), stream=_png(500, 64, 8))  # drawn as a rule
    page.insert_image(pymupdf.Rect(72, 120, 272, 270), stream=_png(120, 90, 9))
    page = pdf.new_page()
    page.insert_text((72, 60), "The same figure again on page two.", fontsize=11)
    page.insert_image(pymupdf.Rect(72, 120, 272, 270), stream=_png(120, 90, 9))
    pdf.save(tmp_path / "tiny.pdf")
    (doc,), ledger = _run([tmp_path / "tiny.pdf"])
    assert doc.n_images == 1
    assert doc.metadata["images_skipped"] == {"too_small": 2, "repeated": 1}
    assert ledger.extra["pdf"]["images_skipped"] == {"too_small": 2, "repeated": 1}
    (doc,), _ = _run([tmp_path / "tiny.pdf"], min_image_side=1)
    assert doc.n_images == 3


def _scan_page(pdf: pymupdf.Document, seed: int) -> None:
    page = pdf.new_page()
    page.insert_image(page.rect, stream=_jpeg(300, 420, seed))


def test_pdf_scanned_pages_counted_and_scan_only_pdf_dropped(tmp_path):
    mixed = pymupdf.open()
    mixed.new_page().insert_text((72, 72), "Born digital page.", fontsize=11)
    _scan_page(mixed, 10)
    mixed.save(tmp_path / "mixed.pdf")
    scan = pymupdf.open()
    _scan_page(scan, 11)
    _scan_page(scan, 12)
    scan.save(tmp_path / "scan.pdf")
    docs, ledger = _run([tmp_path])
    assert len(docs) == 1
    doc = docs[0]
    assert doc.metadata["scanned_pages"] == [2]
    assert doc.n_images == 0 and doc.text == "Born digital page."
    assert dict(ledger.dropped["pdf"]) == {"scanned_no_text": 1}
    assert ledger.extra["pdf"]["scanned_pages"] == 3


def test_pdf_ocr_layer_kept_and_its_page_scan_not(tmp_path):
    pdf = pymupdf.open()
    page = pdf.new_page()
    page.insert_image(page.rect, stream=_jpeg(300, 420, 13))
    page.insert_text((72, 100), "Invisible OCR text of the scan.", fontsize=11, render_mode=3)
    page = pdf.new_page()
    page.insert_text((72, 60), "A born-digital page with a figure.", fontsize=11)
    page.insert_image(pymupdf.Rect(72, 80, 272, 230), stream=_png(100, 75, 14))
    pdf.save(tmp_path / "ocr.pdf")
    (doc,), _ = _run([tmp_path / "ocr.pdf"])
    assert doc.texts[0] == "Invisible OCR text of the scan.\n\nA born-digital page with a figure."
    assert doc.n_images == 1 and doc.metadata["images"][0]["page"] == 2
    assert doc.metadata["images_skipped"] == {"behind_text": 1}
    assert doc.metadata["scanned_pages"] == []


def _add_bomb(pdf: pymupdf.Document, page: pymupdf.Page, side: int = 10_000) -> None:
    """Draw a side x side gray image whose Flate stream is tiny (zeros) on `page`."""
    co = zlib.compressobj(1)
    row = bytes(side)
    data = b"".join(co.compress(row) for _ in range(side)) + co.flush()
    xref = pdf.get_new_xref()
    pdf.update_object(
        xref,
        f"<< /Type /XObject /Subtype /Image /Width {side} /Height {side} "
        "/ColorSpace /DeviceGray /BitsPerComponent 8 >>",
    )
    pdf.update_stream(xref, data, compress=False)
    pdf.xref_set_key(xref, "Filter", "/FlateDecode")
    kind, res = pdf.xref_get_key(page.xref, "Resources")
    holder = int(res.split()[0]) if kind == "xref" else page.xref
    prefix = "" if kind == "xref" else "Resources/"
    refs = " ".join(f"/{x[7]} {x[0]} 0 R" for x in page.get_images(full=True))  # keep the others
    pdf.xref_set_key(holder, prefix + "XObject", f"<< {refs} /ImBomb {xref} 0 R >>")
    cx = page.get_contents()[0]
    pdf.update_stream(cx, pdf.xref_stream(cx) + b"\nq 300 0 0 300 72 400 cm /ImBomb Do Q\n")


def test_pdf_decompression_bomb_image_not_decoded(tmp_path):
    pdf = pymupdf.open()
    page = pdf.new_page()
    page.insert_text((72, 60), "Text beside a bomb.", fontsize=11)
    page.insert_image(pymupdf.Rect(72, 80, 272, 230), stream=_png(100, 75, 15))
    _add_bomb(pdf, page)
    page = pdf.new_page()
    page.insert_text((72, 60), "A safe page.", fontsize=11)
    page.insert_image(pymupdf.Rect(72, 80, 272, 230), stream=_png(100, 75, 16))
    pdf.save(tmp_path / "bomb.pdf")
    assert max(x[2] for x in pymupdf.open(tmp_path / "bomb.pdf")[0].get_images(full=True)) == 10_000
    (doc,), ledger = _run([tmp_path / "bomb.pdf"])
    assert doc.text == "Text beside a bomb.\n\nA safe page."
    assert doc.n_images == 1 and doc.metadata["images"][0]["page"] == 2
    assert doc.metadata["images_skipped"] == {"page_with_bomb": 1}
    assert ledger.extra["images"]["rejected"] == {"decompression_bomb": 1}


def test_pdf_bad_files_rejected_and_run_goes_on(tmp_path):
    _interleaved_pdf(tmp_path / "a_good.pdf")
    secret = pymupdf.open()
    secret.new_page().insert_text((72, 72), "secret", fontsize=11)
    secret.save(
        tmp_path / "b_locked.pdf",
        encryption=pymupdf.PDF_ENCRYPT_AES_256,
        user_pw="user",
        owner_pw="owner",
    )
    # owner password only: readable without a password, so it is ingested
    perms = pymupdf.open()
    perms.new_page().insert_text((72, 72), "Printing is not allowed.", fontsize=11)
    perms.save(tmp_path / "c_perms.pdf", encryption=pymupdf.PDF_ENCRYPT_AES_256, owner_pw="o")
    (tmp_path / "d_garbage.pdf").write_bytes(b"%PDF-1.7\n" + bytes(range(256)) * 8)
    (tmp_path / "e_empty.pdf").write_bytes(b"")
    blank = pymupdf.open()
    blank.new_page()
    blank.save(tmp_path / "f_blank.pdf")
    (tmp_path / "notes.txt").write_text("not a pdf, not looked at")
    docs, ledger = _run([tmp_path])
    assert [d.metadata["title"] for d in docs] == ["A Field Guide", "c_perms"]
    assert ledger.input == 6
    assert dict(ledger.rejected) == {"pdf_encrypted": 1, "pdf_corrupt": 2}
    assert dict(ledger.dropped["pdf"]) == {"no_content": 1}


def test_pdf_missing_input_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="nope.pdf: no such file"):
        _run([tmp_path / "nope.pdf"])


def test_pdf_directory_without_pdfs_is_an_error_not_an_empty_run(tmp_path, capsys):
    # Debian's /usr/share/doc/debian-reference-en holds docs -> ../../debian-reference: the
    # walk does not follow it, and the run ended 0 with an empty ledger (html said why)
    from vloom.cli import main

    (tmp_path / "manuals").mkdir()
    _interleaved_pdf(tmp_path / "manuals" / "guide.pdf")
    pkg = tmp_path / "doc" / "manual-en"
    pkg.mkdir(parents=True)
    (pkg / "docs").symlink_to("../../manuals")
    (pkg / "copyright").write_text("GPL\n")
    for workers in ("1", "2"):
        out = tmp_path / f"out{workers}"
        args = ["ingest", "pdf", str(pkg), "--out", str(out), "--quiet", "--workers", workers]
        assert main(args) == 2
        err = capsys.readouterr().err
        assert "no .pdf / .pdf.gz files found" in err and "docs: symlinks to directories" in err, (
            err
        )
        assert not out.exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="empty: no .pdf / .pdf.gz files found$"):
        _run([empty])
    html = tmp_path / "out-html"
    assert main(["ingest", "html", str(pkg), "--out", str(html), "--quiet"]) == 2
    assert "docs: symlinks to directories are not followed" in capsys.readouterr().err


def test_pdf_language_from_catalog(tmp_path):
    pdf = pymupdf.open()
    pdf.new_page().insert_text((72, 72), "Bonjour tout le monde.", fontsize=11)
    pdf.xref_set_key(pdf.pdf_catalog(), "Lang", "(fr-FR)")
    pdf.save(tmp_path / "fr.pdf")
    (doc,), _ = _run([tmp_path / "fr.pdf"])
    assert doc.language == "fr"


def test_pdf_language_private_use_tag_is_no_language(tmp_path):
    # Apache FOP writes /Lang (x-unknown) when a document names none (Erlang/OTP's 38 manuals):
    # it was stored as language "x"
    for name, lang, want in [("fop", "x-unknown", ""), ("und", "und", ""), ("br", "pt_BR", "pt")]:
        pdf = pymupdf.open()
        pdf.new_page().insert_text((72, 72), "Some words on a page.", fontsize=11)
        pdf.xref_set_key(pdf.pdf_catalog(), "Lang", f"({lang})")
        pdf.save(tmp_path / f"{name}.pdf")
        (doc,), _ = _run([tmp_path / f"{name}.pdf"])
        assert doc.language == want, lang


@pytest.mark.parametrize(
    "tag,want",
    [
        ("en-US", "en"),
        ("EN", "en"),
        ("zh-Hans-CN", "zh"),
        ("gsw", "gsw"),
        ("x-unknown", ""),
        ("i-klingon", ""),
        ("und", ""),
        ("zxx", ""),
        ("", ""),
        ("english", ""),
        ("é", ""),
    ],
)
def test_primary_language(tag, want):
    from vloom.ingest.base import primary_language

    assert primary_language(tag) == want


# Real PDFs a Debian system may hold (the handbook when its package ships one; otherwise manuals
# that common packages install).
_REAL_PDFS = [
    *sorted(Path("/usr/share/doc/debian-handbook").rglob("*.pdf")),
    Path("/usr/share/doc/shared-mime-info/shared-mime-info-spec.pdf"),
    Path("/usr/share/doc/libtasn1-doc/libtasn1.pdf"),
]


def test_pdf_real_manual(tmp_path):
    real = next((p for p in _REAL_PDFS if p.is_file()), None)
    if real is None:
        pytest.skip("no real PDF installed (debian-handbook PDF, shared-mime-info, libtasn1-doc)")
    ledger = Ledger()
    docs = list(ingest_pdf([real], ledger, IngestOptions(out_dir=tmp_path)))
    assert len(docs) == 1
    doc = docs[0]
    doc.validate()
    assert doc.metadata["page_count"] == pymupdf.open(real).page_count
    assert len(doc.text) > 1000 * doc.metadata["page_count"] // 4
    for im in doc.images:
        if im is not None:
            check_image(im)


LILYPOND_ESSAY = Path("/usr/share/doc/lilypond/html/Documentation/essay.pdf")


def test_pdf_real_images_have_mupdfs_pixels(tmp_path):
    """On a real PDF of Flate images (1-bit indexed engraving scans without predictor, gray and
    RGB with PNG predictors, a JPEG; Debian's lilypond-doc-pdf), every kept image decodes to the
    pixels of one of the PDF's images as MuPDF's extract_image gives them (the benchmark's plain
    loop)."""
    if not LILYPOND_ESSAY.is_file():
        pytest.skip("lilypond-doc-pdf not installed")

    def pixels(data: bytes) -> bytes:
        img = Image.open(io.BytesIO(data))
        return hashlib.sha1(img.convert("RGB").tobytes() + repr(img.size).encode()).digest()

    (doc,), ledger = _run([LILYPOND_ESSAY])
    kept = [im for im in doc.images if im is not None]
    assert len(kept) == ledger.extra["images"]["attached"] >= 10
    with pymupdf.open(LILYPOND_ESSAY) as pdf:
        xrefs = {x[0] for page in pdf for x in page.get_images(full=True)}
        mupdf = {pixels(pdf.extract_image(x)["image"]) for x in xrefs}
    assert {pixels(im) for im in kept} <= mupdf


def test_pdf_cli_writes_shards_and_ledger(tmp_path, capsys):
    from vloom.cli import main
    from vloom.doc import read_documents

    src = tmp_path / "pdfs"
    src.mkdir()
    _interleaved_pdf(src / "guide.pdf")
    (src / "broken.pdf").write_bytes(b"%PDF-1.4 nothing else")
    out = tmp_path / "out"
    assert main(["ingest", "pdf", str(src), "--out", str(out), "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["input"], summary["kept"], summary["rejected"]) == (2, 1, {"pdf_corrupt": 1})
    (doc,) = read_documents(out)
    direct, _ = _run([src / "guide.pdf"])
    assert doc.to_row() == direct[0].to_row()  # what the shard holds is what the source made
    assert Ledger.read(out).to_dict()["pdf"]["pages"] == 2


def _repeated_image_pdf(path: Path, pages: int) -> None:
    """`pages` pages that each draw one noisy 0.5 MB image, stored once (one xref)."""
    pdf = pymupdf.open()
    xref = 0
    photo = _png(400, 400, 20)
    for i in range(pages):
        page = pdf.new_page()
        page.insert_text((72, 520), f"Body text of page {i}, under its photo.", fontsize=11)
        xref = page.insert_image(pymupdf.Rect(72, 80, 472, 480), stream=photo, xref=xref)
    pdf.save(path)


_PEAK_RSS = """
import json, resource, sys
from pathlib import Path
from vloom.ingest.base import IngestOptions
from vloom.ingest.pdf import ingest_pdf
from vloom.ledger import Ledger
r0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
led = Ledger()
docs = list(ingest_pdf([Path(sys.argv[1])], led, IngestOptions(out_dir=Path(sys.argv[1]).parent)))
r1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"growth_kb": r1 - r0, "images": docs[0].n_images, "pdf": led.extra["pdf"]}))
"""


def test_pdf_memory_does_not_grow_with_pages_of_a_repeated_image(tmp_path):
    """One image drawn on every page is extracted once: peak memory is the same for N and 4N
    pages (before: 64 MB at 100 pages, 280 MB at 400)."""
    import subprocess
    import sys

    runs = {}
    for n in (30, 120):
        _repeated_image_pdf(tmp_path / f"rep{n}.pdf", n)
        out = subprocess.run(
            [sys.executable, "-c", _PEAK_RSS, str(tmp_path / f"rep{n}.pdf")],
            capture_output=True,
            text=True,
            check=True,
        )
        runs[n] = json.loads(out.stdout.strip().splitlines()[-1])
    for n, r in runs.items():
        assert r["images"] == 1 and r["pdf"]["images_skipped"] == {"repeated": n - 1}
    small, big = runs[30]["growth_kb"], runs[120]["growth_kb"]
    assert big < 1.3 * small + 15_000, runs  # linear growth: ~4x (0.5 MB a page)


def test_pdf_page_and_image_byte_caps_are_counted(tmp_path):
    pdf = pymupdf.open()
    for i in range(5):
        page = pdf.new_page()
        page.insert_text((72, 300), f"Body text of page {i} here.", fontsize=11)
        page.insert_image(pymupdf.Rect(72, 320, 272, 470), stream=_png(100, 75, 30 + i))
    pdf.save(tmp_path / "five.pdf")
    (doc,), ledger = _run([tmp_path / "five.pdf"], max_pages=3)
    assert doc.text.count("Body text") == 3 and doc.n_images == 3
    assert doc.metadata["limited"] == ["pdf_pages_capped"] and doc.metadata["page_count"] == 5
    assert ledger.extra["pdf"]["limited"] == {"pdf_pages_capped": 1}
    assert ledger.extra["pdf"]["pages_not_read"] == 2
    one = len(_run([tmp_path / "five.pdf"])[0][0].images[1])
    (doc,), ledger = _run([tmp_path / "five.pdf"], max_pdf_image_bytes=int(2.5 * one))
    assert doc.n_images == 2 and doc.text.count("Body text") == 5
    assert doc.metadata["images_skipped"] == {"image_bytes_capped": 3}
    assert ledger.extra["pdf"]["limited"] == {"pdf_image_bytes_capped": 1}


def test_pdf_broken_page_counted_and_other_pages_kept(tmp_path):
    pdf = pymupdf.open()
    for i in range(4):
        pdf.new_page().insert_text((72, 300), f"Body text of page {i} here.", fontsize=11)
    pdf.update_stream(pdf[1].get_contents()[0], bytes(range(256)) * 20)  # garbage content
    pdf.xref_set_key(pdf[2].xref, "Contents", "999 0 R")  # a content stream that is not there
    pdf.save(tmp_path / "broken.pdf")
    (doc,), ledger = _run([tmp_path / "broken.pdf"])
    assert doc.text == "Body text of page 0 here.\n\nBody text of page 3 here."
    assert doc.metadata["page_errors"] == 2 and doc.metadata["broken_pages"] == [2, 3]
    stats = ledger.extra["pdf"]
    assert stats["page_errors"] == 2
    assert stats["page_error_reasons"] == {"content_stream_error": 2}
    assert ledger.input == 1 and ledger.kept == 1


def test_pdf_symlink_out_of_the_input_dir_and_fifo_rejected(tmp_path):
    import os

    src, outside = tmp_path / "pdfs", tmp_path / "elsewhere"
    src.mkdir()
    outside.mkdir()
    _interleaved_pdf(src / "a_guide.pdf")
    _interleaved_pdf(outside / "secret.pdf")
    (src / "b_link.pdf").symlink_to(outside / "secret.pdf")
    os.mkfifo(src / "c_pipe.pdf")  # opening it for reading would block forever
    docs, ledger = _run([src])
    assert len(docs) == 1 and ledger.input == 3
    assert dict(ledger.rejected) == {"outside_root": 1, "unreadable": 1}


def test_pdf_inline_images_taken_from_the_page_and_kept_once(tmp_path):
    """An inline image (BI ... ID ... EI, no xref) comes from MuPDF's page dictionary; the same
    bytes inline on later pages are "repeated"."""
    arr = (np.random.RandomState(3).rand(40, 40, 3) * 255).astype("uint8")
    inline = b"\nq 200 0 0 200 72 100 cm BI /W 40 /H 40 /CS /RGB /BPC 8 ID " + arr.tobytes()
    pdf = pymupdf.open()
    for i in range(3):
        page = pdf.new_page()
        page.insert_text((72, 400), f"Text of page {i} under an inline image.", fontsize=11)
        cx = page.get_contents()[0]
        pdf.update_stream(cx, pdf.xref_stream(cx) + inline + b" EI Q\n")
    pdf.save(tmp_path / "inline.pdf")
    (doc,), ledger = _run([tmp_path / "inline.pdf"])
    assert [k for k, _ in _items(doc)] == ["text", "image", "text"]  # drawn below page 1's text
    assert np.array_equal(np.asarray(decode_image(doc.images[1]).convert("RGB")), arr)
    assert doc.metadata["images_skipped"] == {"repeated": 2}


def test_pdf_caps_are_cli_options(tmp_path, capsys):
    from vloom.cli import main

    src = tmp_path / "pdfs"
    src.mkdir()
    _interleaved_pdf(src / "guide.pdf")
    out = tmp_path / "out"
    argv = ["ingest", "pdf", str(src), "--out", str(out), "--quiet", "--option", "max_pages=1"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["kept"] == 1 and summary["pdf"]["limited"] == {"pdf_pages_capped": 1}
    assert summary["pdf"]["pages"] == 1 and summary["pdf"]["pages_not_read"] == 1


def _pages_pdf(path: Path, n: int) -> None:
    pdf = pymupdf.open()
    for i in range(n):
        page = pdf.new_page()
        page.insert_text((72, 300), f"Body text of page {i} here.", fontsize=11)
        page.insert_image(pymupdf.Rect(72, 320, 272, 470), stream=_png(100, 75, 60 + i))
    pdf.save(path)


def test_pdf_page_that_raises_or_stalls_is_left_out_and_the_pdf_kept(tmp_path, hostile):
    import time

    _pages_pdf(tmp_path / "a.pdf", 5)
    hostile("a.pdf#page=2", unit="page", nth=1)  # raises while its text is read
    hostile("a.pdf#page=4", unit="page", nth=2)  # raises while it is placed (its image taken)
    hostile("a.pdf#page=5", "stall", unit="page", nth=1)
    ledger = Ledger()
    opts = IngestOptions(out_dir=tmp_path / "out", unit_timeout=0.5)
    t0 = time.monotonic()
    (doc,) = list(ingest_pdf([tmp_path / "a.pdf"], ledger, opts))
    assert time.monotonic() - t0 < 20  # the stalled page was cut at its budget
    assert doc.text == "Body text of page 0 here.\n\nBody text of page 2 here."
    assert doc.n_images == 2  # pages 1 and 3; page 4's image was rolled back with its text
    assert [m["page"] for m in doc.metadata["images"]] == [1, 3]
    assert doc.metadata["broken_pages"] == [2, 4, 5]
    stats = ledger.extra["pdf"]
    assert stats["page_error_reasons"] == {"page_error:KeyError": 2, "page_timeout": 1}
    assert ledger.input == 1 and ledger.n_rejected == 0
    assert ledger.extra["images"]["attached"] == 2


def test_pdf_that_raises_outside_its_pages_is_rejected_and_the_next_is_read(tmp_path, hostile):
    from vloom.doc import read_documents
    from vloom.ingest.run import run_ingest

    for name in ("a", "b", "c"):
        _pages_pdf(tmp_path / f"{name}.pdf", 2)
    hostile("b.pdf", unit="file", nth=1)
    out = tmp_path / "out"
    led = run_ingest("pdf", [tmp_path / f"{n}.pdf" for n in "abc"], out, IngestOptions(out_dir=out))
    led.check()
    docs = list(read_documents(out))
    assert [Path(d.url).name for d in docs] == ["a.pdf", "c.pdf"]
    assert led.input == 3 and led.kept == 2 and dict(led.rejected) == {"file_error:KeyError": 1}


def test_pdf_running_lines_just_inside_the_page_are_removed(tmp_path):
    # Erlang/OTP's manuals (erlang-doc): the header line ends 83 pt down an 842 pt page and the
    # footer starts 74 pt up, both past the 8% margin bands, alternating sides like a book's.
    pdf = pymupdf.open()
    for n in range(1, 7):
        page = pdf.new_page()
        page.insert_text((57 if n % 2 else 330, 80), "1.1  EUnit - a Unit Testing", fontsize=9)
        paras = 1 if n == 6 else 3  # the last page: one paragraph, nothing to measure beside
        for i in range(paras):
            page.insert_text((57, 125 + 24 * i), f"Paragraph {i} of page {n}.", fontsize=10)
        page.insert_text((57, 700), f"The last paragraph of page {n}.", fontsize=10)
        foot = f"Ericsson AB, All Rights Reserved: EUnit | {n}"
        if n % 2 == 0:
            foot = f"{n} | Ericsson AB, All Rights Reserved: EUnit"
        page.insert_text((349 if n % 2 else 57, 778), foot, fontsize=9)
    # Kept: the FreedomBox manual's pages opening on a numbered heading ("7.9.2 Download", the
    # same line once its numbers are blanked) and closing on a loose list (every item as far
    # from the next as the last from the one before)
    for n in range(7, 11):
        page = pdf.new_page()
        page.insert_text((57, 95), f"7.{n}.2 Download", fontsize=14)
        page.insert_text((57, 150), f"Paragraph 0 of page {n}.", fontsize=10)
        for i, item in enumerate(("• Ethernet: 10/100, RJ45", "• WiFi: None", "• SATA: None")):
            page.insert_text((57, 700 + 26 * i), item, fontsize=9)
    pdf.save(tmp_path / "eunit.pdf")
    (doc,), _ = _run([tmp_path / "eunit.pdf"])
    text = doc.text
    assert "EUnit - a Unit Testing" not in text and "Ericsson AB" not in text
    assert doc.metadata["running_lines_removed"] == 12
    for n in range(1, 11):
        assert f"Paragraph 0 of page {n}." in text
    assert text.count("SATA: None") == 4 and text.count("Ethernet: 10/100") == 4
    assert all(f"7.{n}.2 Download" in text for n in range(7, 11))


def test_pdf_gzipped_reads_as_the_pdf_and_bad_gzip_is_counted(tmp_path):
    """Debian gzips its larger PDF manuals (guide.pdf.gz): a directory walk finds them and they
    read as the PDF itself; a stream that does not decompress is a counted rejection."""
    docs_dir = tmp_path / "doc"
    docs_dir.mkdir()
    _interleaved_pdf(docs_dir / "guide.pdf")
    data = (docs_dir / "guide.pdf").read_bytes()
    (docs_dir / "guide.pdf").rename(tmp_path / "guide.pdf")
    (docs_dir / "guide.pdf.gz").write_bytes(gzip.compress(data))
    (docs_dir / "broken.pdf.gz").write_bytes(gzip.compress(data)[: len(data) // 3])
    docs, ledger = _run([docs_dir])
    plain, _ = _run([tmp_path / "guide.pdf"])
    row, want = docs[0].to_row(), plain[0].to_row()
    assert row.pop("url").endswith("guide.pdf.gz") and want.pop("url").endswith("guide.pdf")
    assert len(docs) == 1 and row == want
    assert ledger.input == 2 and ledger.rejected == {"gzip_corrupt": 1}
