"""PDF ingest: an image's caption block leaves the page text for the image's `caption` field (as
HTML ingest keeps it), and pack puts it back right after the image."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pymupdf
import pytest
from PIL import Image

from vloom.doc import Document
from vloom.ingest.base import IngestOptions
from vloom.ingest.pdf import ingest_pdf
from vloom.ingest.pdf_captions import is_labelled
from vloom.ledger import Ledger
from vloom.pack.captions import with_captions

BODY = "Body text of the page, in the font the whole page uses for its paragraphs."


def _png(w: int, h: int, seed: int) -> bytes:
    arr = (np.random.RandomState(seed).rand(h, w, 3) * 255).astype("uint8")
    buf = io.BytesIO()
    Image.fromarray(arr, "RGB").save(buf, "PNG")
    return buf.getvalue()


def _run(path: Path) -> tuple[Document, Ledger]:
    ledger = Ledger()
    (doc,) = ingest_pdf([path], ledger, IngestOptions(out_dir=path.parent / "out"))
    ledger.kept = 1
    ledger.check()
    return doc, ledger


def _centred(page: pymupdf.Page, text: str, x0: float, x1: float, y: float, size: float) -> None:
    w = pymupdf.get_text_length(text, fontsize=size)
    page.insert_text(((x0 + x1 - w) / 2, y), text, fontsize=size)


def _body(page: pymupdf.Page, y: float) -> None:
    page.insert_text((72, y), BODY, fontsize=11)


def test_pdf_figure_caption_below_moves_to_the_image(tmp_path):
    pdf = pymupdf.open()
    page = pdf.new_page()  # 595 x 842
    _body(page, 80)
    page.insert_image(pymupdf.Rect(72, 100, 272, 250), stream=_png(100, 75, 1))
    page.insert_text((72, 266), "Figure 1: A field of coloured noise.", fontsize=10)
    page.insert_text((72, 300), "The paragraph after the figure.", fontsize=11)
    pdf.save(tmp_path / "fig.pdf")
    doc, ledger = _run(tmp_path / "fig.pdf")
    assert [k for k, _ in doc.items()] == ["text", "image", "text"]
    assert doc.texts[0] == BODY and doc.texts[2] == "The paragraph after the figure."
    assert "Figure 1" not in doc.text  # moved, not duplicated
    assert doc.metadata["images"][0]["caption"] == "Figure 1: A field of coloured noise."
    assert ledger.extra["pdf"]["captions"] == 1
    # pack puts it back right after its image
    assert with_captions(doc.texts, doc.metadata) == [
        BODY,
        None,
        "Figure 1: A field of coloured noise.",
        "The paragraph after the figure.",
    ]


def test_pdf_unrelated_text_far_below_is_no_caption(tmp_path):
    pdf = pymupdf.open()
    page = pdf.new_page()
    page.insert_image(pymupdf.Rect(72, 100, 272, 250), stream=_png(100, 75, 2))
    page.insert_text((72, 420), "Figure 2 is discussed in the next chapter.", fontsize=11)
    _centred(page, "Far Below", 72, 272, 460, 10)
    pdf.save(tmp_path / "far.pdf")
    doc, ledger = _run(tmp_path / "far.pdf")
    assert doc.metadata["images"][0]["caption"] == ""
    assert doc.texts[1] == "Figure 2 is discussed in the next chapter.\n\nFar Below"
    assert ledger.extra["pdf"]["captions"] == 0


def test_pdf_table_caption_above_its_image(tmp_path):
    pdf = pymupdf.open()
    page = pdf.new_page()
    _body(page, 80)
    page.insert_text((72, 112), "Table 3. Pages per second by source and language.", fontsize=10)
    page.insert_image(pymupdf.Rect(72, 120, 472, 220), stream=_png(200, 50, 3))  # a table scan
    page.insert_text((72, 250), "Below the table, prose goes on across the page width here.")
    pdf.save(tmp_path / "table.pdf")
    doc, _ = _run(tmp_path / "table.pdf")
    cap = doc.metadata["images"][0]["caption"]
    assert cap == "Table 3. Pages per second by source and language."
    assert "Table 3" not in doc.text and doc.texts[0] == BODY
    assert doc.texts[2].startswith("Below the table")


def test_pdf_short_centred_caption_and_what_is_not_one(tmp_path):
    pdf = pymupdf.open()
    page = pdf.new_page()
    _body(page, 60)
    # a centred credit right under an engraving: a caption without a label
    page.insert_image(pymupdf.Rect(172, 80, 372, 200), stream=_png(100, 60, 4))
    _centred(page, "Henle Urtext (2000)", 172, 372, 216, 10)
    # a left-aligned instruction under a screenshot, a heading under an image, a lower-case
    # sentence going on: text, not captions
    page.insert_image(pymupdf.Rect(172, 260, 372, 380), stream=_png(100, 60, 5))
    page.insert_text((72, 396), "Click OK.", fontsize=10)
    page.insert_image(pymupdf.Rect(172, 430, 372, 550), stream=_png(100, 60, 6))
    _centred(page, "Results", 172, 372, 570, 16)
    page.insert_image(pymupdf.Rect(172, 600, 372, 720), stream=_png(100, 60, 7))
    _centred(page, "and so on", 172, 372, 736, 10)
    pdf.save(tmp_path / "centred.pdf")
    doc, _ = _run(tmp_path / "centred.pdf")
    assert [m["caption"] for m in doc.metadata["images"]] == ["Henle Urtext (2000)", "", "", ""]
    assert "Henle" not in doc.text
    for kept in ("Click OK.", "Results", "and so on"):
        assert kept in doc.text


def test_pdf_caption_of_an_image_not_kept_stays_in_the_text(tmp_path):
    pdf = pymupdf.open()
    page = pdf.new_page()
    _body(page, 60)
    page.insert_image(pymupdf.Rect(72, 80, 88, 96), stream=_png(16, 16, 8))  # too small
    page.insert_text((72, 110), "Figure 4: An icon.", fontsize=10)
    pdf.save(tmp_path / "icon.pdf")
    doc, _ = _run(tmp_path / "icon.pdf")
    assert doc.n_images == 0 and "Figure 4: An icon." in doc.text


def test_pdf_plot_labels_between_image_and_caption(tmp_path):
    """Axis ticks drawn against a plot stay text; the labelled caption beyond them is found."""
    pdf = pymupdf.open()
    page = pdf.new_page()
    _body(page, 60)
    page.insert_image(pymupdf.Rect(100, 80, 400, 280), stream=_png(150, 100, 9))
    page.insert_text((100, 286), "0    0.5    1    1.5    2", fontsize=7)  # reaches into the box
    page.insert_text((245, 297), "x", fontsize=8)  # against the ticks
    page.insert_text((100, 318), "Figure 15.7: Inclusion of text.", fontsize=11)
    pdf.save(tmp_path / "plot.pdf")
    doc, _ = _run(tmp_path / "plot.pdf")
    assert doc.metadata["images"][0]["caption"] == "Figure 15.7: Inclusion of text."
    assert "0.5" in doc.text and "Figure 15.7" not in doc.text


@pytest.mark.parametrize(
    "text",
    [
        "Figure 1: x",
        "Fig. 2.3 A plot",
        "FIGURE 7.",
        "Table IV. Results",
        "Abbildung 3: Aufbau",
        "Abb. 4",
        "Tabelle 2.1",
        "Figura 5 - Mapa",
        "Tableau 1 : Résumé",
        "Tabla 3",
        "Рис. 2. Схема",
        "图 3 结构",
        "Image 12",
        "Illustration 2",
    ],
)
def test_caption_labels_in_several_languages(text):
    assert is_labelled(text)


@pytest.mark.parametrize(
    "text", ["Table of contents", "Figure out what to do", "Figures", "Image source: x", "Tab 3"]
)
def test_words_without_a_number_are_no_label(text):
    assert not is_labelled(text)


LILYPOND_ESSAY = Path("/usr/share/doc/lilypond/html/Documentation/essay.pdf")


def test_pdf_real_captions_on_the_lilypond_essay(tmp_path):
    """The essay's engravings carry their edition credits centred below them (Debian's
    lilypond-doc-pdf)."""
    if not LILYPOND_ESSAY.is_file():
        pytest.skip("lilypond-doc-pdf not installed")
    doc, ledger = _run(LILYPOND_ESSAY)
    caps = [m["caption"] for m in doc.metadata["images"] if m["caption"]]
    assert {"Henle (2000)", "(Image source: Ted Ross, The Art of Music Engraving)"} <= set(caps)
    assert ledger.extra["pdf"]["captions"] == len(caps)
    for cap in caps:
        assert cap not in doc.text


OCTAVE_MANUAL = Path("/usr/share/doc/octave/octave.pdf")


def test_pdf_real_labelled_caption_under_a_plot(tmp_path):
    """Octave's manual (Debian's octave-doc): the raster plot of Figure 15.7 has its axis ticks
    drawn against it and its labelled caption beyond them."""
    if not OCTAVE_MANUAL.is_file():
        pytest.skip("octave-doc not installed")
    doc, _ = _run(OCTAVE_MANUAL)
    caps = {m["page"]: m["caption"] for m in doc.metadata["images"] if m["caption"]}
    assert caps[426].startswith("Figure 15.7: Example of inclusion of text")
    assert "Figure 15.7: Example" not in doc.text
