"""Gopher quality: each rule trips on one text and passes on its neighbour; datatrove parity."""

import pytest

from vloom.curate.filters.gopher_quality import GopherQuality
from vloom.curate.filters.text_stats import words
from vloom.doc import Document

# 67 words, plenty of stop words, ordinary word lengths: passes every rule
GOOD = (
    "The red circle sits to the left of the blue square, and the green triangle is above them. "
    "Each shape has a solid colour and a clear edge, which makes the picture easy to describe. "
    "Children learn the names of colours by pointing at shapes like these with their teachers. "
    "There is nothing else in the picture, so the shapes stand out against the plain white page."
)
# no stop word at all, 70 words
NO_STOP = " ".join(["red circle blue square green triangle yellow star purple cone"] * 7)
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
    # 50 words pass; punctuation tokens do not count as words
    fifty = " ".join(["the red circle and the blue square"] * 7) + " the."
    assert len(words(fifty)) == 51  # the full stop is a token, not a word
    assert verdict(fifty) == (True, "")
    assert verdict(fifty.removesuffix(" the.") + ".") == (False, "gopher_short_doc")


def test_long_doc():
    assert verdict(GOOD, max_doc_words=20) == (False, "gopher_long_doc")
    assert verdict(GOOD, max_doc_words=67) == (True, "")


def test_below_avg_word_length():
    assert verdict(" ".join(["a to be of it"] * 13)) == (False, "gopher_below_avg_threshold")
    assert verdict(" ".join(["the cat and the dog"] * 13)) == (True, "")  # mean exactly 3 passes


def test_above_avg_word_length():
    text = " ".join(["the and extraordinarily incomprehensibly multicoloured parallelograms"] * 13)
    assert verdict(text) == (False, "gopher_above_avg_threshold")
    assert verdict(text, max_avg_word_length=20) == (True, "")


def test_too_many_hashes():
    assert verdict(GOOD + " #shapes" * 20) == (False, "gopher_too_many_hashes")
    # 8 hashes in 100 tokens (punctuation counted, as datatrove does): kept
    assert verdict(GOOD + " #shapes" * 8) == (True, "")


def test_too_many_ellipsis():
    # the ratio is per token, punctuation included: 20 / (74 + 40 + 3) > 0.1, 6 / 89 is not
    assert verdict(GOOD + " so..." * 20 + " the end.") == (False, "gopher_too_many_ellipsis")
    assert verdict(GOOD + " so..." * 6 + " the end.") == (True, "")


def test_too_many_bullets():
    lines = [f"• the {w} shape is drawn with a thin line" for w in ["red", "blue"] * 5]
    assert verdict("\n".join(lines)) == (False, "gopher_too_many_bullets")
    assert verdict("\n".join(x.replace("•", "-") for x in lines)) == (
        False,
        "gopher_too_many_bullets",
    )
    # "*" is not one of datatrove's bullets; it is when configured
    starred = "\n".join(x.replace("•", "*") for x in lines)
    assert verdict(starred) == (True, "")
    assert verdict(starred, bullets=["*"]) == (False, "gopher_too_many_bullets")


def test_too_many_end_ellipsis():
    line = "The red circle sits to the left of the blue square and then it moves away..."
    assert verdict("\n".join([line, line, GOOD])) == (False, "gopher_too_many_end_ellipsis")
    assert verdict("\n".join([line, GOOD, GOOD, GOOD])) == (True, "")  # 1 line in 4


def test_below_alpha_threshold():
    text = GOOD + " " + " ".join(str(1000 + i) for i in range(60))
    assert verdict(text) == (False, "gopher_below_alpha_threshold")


def test_alpha_share_counts_punctuation_tokens():
    # GOOD + 14 numbers: 83% of the words are alphabetic, but the punctuation tokens
    # (GOOD's 7 marks, the brackets and full stops) count too: 67 / 123 are
    text = GOOD + " " + " ".join(f"({i})." for i in range(14))
    assert verdict(text) == (False, "gopher_below_alpha_threshold")
    assert verdict(GOOD + " " + " ".join(f"({i})." for i in range(2))) == (True, "")


def test_not_enough_stop_words():
    assert verdict(NO_STOP) == (False, "gopher_enough_stop_words")
    assert verdict(NO_STOP + " the and") == (True, "")


def test_stop_words_are_distinct():
    # "the" a hundred times is one stop word, not a hundred
    assert verdict(NO_STOP + " the" * 100) == (False, "gopher_enough_stop_words")
    assert verdict(NO_STOP + " the" * 100 + " with") == (True, "")


def test_stop_words_match_case_as_configured():
    # datatrove's rule is case-sensitive: "The" and "AND" are not stop words
    assert verdict(NO_STOP + " The AND") == (False, "gopher_enough_stop_words")
    assert verdict(NO_STOP + " The AND", stop_words_ignore_case=True) == (True, "")
    assert verdict(NO_STOP + " red cone", stop_words=["red", "cone"]) == (True, "")


@pytest.mark.parametrize("key", ["stop_words", "bullets"])
def test_word_lists_must_be_lists(key):
    with pytest.raises(ValueError, match=key):
        GopherQuality(**{key: "the"})


def test_rules_can_be_switched_off():
    assert verdict(NO_STOP, min_stop_words=None) == (True, "")
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


def test_punctuation_only_text_is_short():
    assert verdict("... !!! ---- ((( )))") == (False, "gopher_short_doc")


# texts where a naive tokenizer and spaCy's rules part ways
TRICKY = {
    "contractions": (
        "don't can't you're we'll I'm it's",
        "do n't ca n't you 're we 'll I 'm it 's",
    ),
    "bare contractions": ("dont id Wed cannot", "do nt i d We d can not"),
    "sections": ("See B.3.1. and 12.1.2.", "See B.3.1 . and 12.1.2 ."),
    "abbreviations": ("e.g. i.e. U.S. Mr. etc.", "e.g. i.e. U.S. Mr. etc ."),
    "hyphens, paths": ("well-known /usr/bin x/y a:b", "well - known /usr / bin x / y a : b"),
    "urls": ("www.debian.org, https://a.org/x.", "www.debian.org , https://a.org/x ."),
    "units, money": ("5km 100% $20 90°.", "5 km 100 % $ 20 90 ° ."),
    "brackets": ("(see below). “quoted”", "( see below ) . “ quoted ”"),
    "emoticons": ("nice :) ok):", "nice :) ok ):"),
    "ellipsis": ("wait... what…", "wait ... what …"),
}


@pytest.mark.parametrize("name", sorted(TRICKY))
def test_words_split_like_spacy(name):
    text, expected = TRICKY[name]
    assert words(text) == expected.split()


@pytest.mark.parametrize("name", sorted(TRICKY))
def test_words_equal_spacy_when_installed(name):
    spacy = pytest.importorskip(
        "spacy", reason="spaCy is a benchmark peer: pip install 'vloom[bench]'"
    )
    text = TRICKY[name][0]
    assert words(text) == [t.text for t in spacy.blank("en")(text)]


def _parity_texts() -> list[str]:
    section = "12.1.2. Configuring the (optional) service: see /etc/x.conf, /usr/bin/y.\n"
    return [
        GOOD,
        NO_STOP,
        NO_STOP + " The AND",
        NO_STOP + " the" * 100,
        GOOD + " " + " ".join(f"({i})." for i in range(14)),
        GOOD + " " + " ".join(f"({i})." for i in range(4)),
        section * 12,
        GOOD + " #shapes" * 8,
        GOOD + " and so on... then" * 7,
        "\n".join(["- the red shape is drawn with a thin line and the blue one"] * 10),
        "\n".join(["* the red shape is drawn with a thin line and the blue one"] * 10),
        "\n".join(["The circle moves to the left and then it moves away..."] * 3 + [GOOD]),
        "I don't think we'll see the U.S. data, e.g. 5km or 100% of it... " * 6,
        'APT::Periodic::Update "1"; the value of it, with apt.conf.d/50unattended-upgrades ' * 8,
        " ".join(["a to be of the"] * 13),
        "... !!! ---- ((( )))" + " word" * 49,
    ]


def test_agrees_with_datatrove_on_tricky_texts():
    pytest.importorskip(
        "datatrove", reason="datatrove is a benchmark peer: pip install 'vloom[bench]'"
    )
    pytest.importorskip("spacy", reason="spaCy is a benchmark peer: pip install 'vloom[bench]'")
    from datatrove.data import Document as DTDocument
    from datatrove.pipeline.filters import GopherQualityFilter

    dt = GopherQualityFilter()
    for i, text in enumerate(_parity_texts()):
        ours = verdict(text, skip_if_images=False)
        v = dt.filter(DTDocument(text=text, id=str(i)))
        theirs = (True, "") if v is True else (False, v[1])
        assert ours == theirs, (i, text[:60])
