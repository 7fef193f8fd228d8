"""One test per Gopher drop reason, on small literal texts (datatrove style)."""

import pytest

from vloom.curate.filters.gopher_quality import GopherQuality
from vloom.doc import Document

# 64 words, plenty of stop words, ordinary word lengths: passes every rule
GOOD = (
    "The red circle sits to the left of the blue square, and the green triangle is above them. "
    "Each shape has a solid colour and a clear edge, which makes the picture easy to describe. "
    "Children learn the names of colours by pointing at shapes like these with their teachers. "
    "There is nothing else in the picture, so the shapes stand out against the plain white page."
)
PNG_1x1 = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108020000009077"
    "53de0000000c4944415408d763f8cfc000000301010018dd8db00000000049454e44ae426082"
)


def verdict(text: str, images: int = 0, **kw) -> tuple[bool, str]:
    items = [text] + [PNG_1x1] * images if text else [PNG_1x1] * images
    return GopherQuality(**kw).filter(Document.from_items("d", items))


def test_good_text_is_kept():
    assert verdict(GOOD) == (True, "")


def test_short_doc():
    assert verdict("The red circle is next to the blue square.") == (False, "gopher_short_doc")


def test_long_doc():
    assert verdict(GOOD, max_doc_words=20) == (False, "gopher_long_doc")


def test_below_avg_word_length():
    assert verdict(" ".join(["a to be of it"] * 13)) == (False, "gopher_below_avg_threshold")


def test_above_avg_word_length():
    text = " ".join(["the extraordinarily incomprehensibly multicoloured parallelograms"] * 13)
    assert verdict(text) == (False, "gopher_above_avg_threshold")


def test_too_many_hashes():
    assert verdict(GOOD + " #shapes" * 10) == (False, "gopher_too_many_hashes")


def test_too_many_ellipsis():
    assert verdict(GOOD + " and so on..." * 10) == (False, "gopher_too_many_ellipsis")


def test_too_many_bullets():
    text = "\n".join(f"• the {w} shape is drawn with a thin line" for w in ["red", "blue"] * 5)
    assert verdict(text) == (False, "gopher_too_many_bullets")


def test_too_many_end_ellipsis():
    line = "The red circle sits to the left of the blue square and then it moves away..."
    text = "\n".join([line, line, GOOD])
    assert verdict(text) == (False, "gopher_too_many_end_ellipsis")


def test_below_alpha_threshold():
    text = GOOD + " " + " ".join(str(1000 + i) for i in range(60))
    assert verdict(text) == (False, "gopher_below_alpha_threshold")


def test_not_enough_stop_words():
    text = " ".join(["red circle blue square green triangle yellow star purple cone"] * 7)
    assert verdict(text) == (False, "gopher_enough_stop_words")


def test_rules_can_be_switched_off():
    text = " ".join(["red circle blue square green triangle yellow star purple cone"] * 7)
    assert verdict(text, min_stop_words=None) == (True, "")
    assert verdict("The red circle is next to the blue square.", min_doc_words=5) == (True, "")


@pytest.mark.parametrize(
    "skip, expected", [(True, (True, "")), (False, (False, "gopher_short_doc"))]
)
def test_short_caption_with_image(skip, expected):
    caption = "A small red circle to the left of the green triangle."
    assert verdict(caption, images=1, skip_if_images=skip) == expected


def test_caption_with_image_still_judged_on_other_rules():
    spam = "#cheap #shapes #deal #sale buy now"
    assert verdict(spam, images=1) == (False, "gopher_too_many_hashes")


def test_image_only_document_passes():
    assert verdict("", images=2) == (True, "")
