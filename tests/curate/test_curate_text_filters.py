"""Gopher repetition, C4 and FineWeb rules: one document per drop reason, on literal texts."""

import itertools
import random
from collections import Counter

import pytest
from shapes import clean_docs

from vloom.config import NoiseConfig, StepConfig
from vloom.curate import CurateError, build_step, run_steps
from vloom.curate.filters.c4_quality import C4Quality
from vloom.curate.filters.fineweb_quality import FineWebQuality
from vloom.curate.filters.gopher_repetition import GopherRepetition, NGrams, SmallNGrams
from vloom.doc import Document
from vloom.synth.noise import inject_noise

PNG_1x1 = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108020000009077"
    "53de0000000c4944415408d763f8cfc000000301010018dd8db00000000049454e44ae426082"
)

# ordinary prose: eight different sentences on three lines; passes every rule of all three
GOOD = (
    "The museum opened a new wing last spring, and visitors have crowded its halls ever since.\n"
    "Its curators chose paintings from four centuries, hanging older works beside modern ones. "
    "A guide explained why the lighting is kept dim: bright lamps fade pigments over decades. "
    "Children seemed most taken with a huge canvas showing horses crossing a frozen river.\n"
    "Outside, a small garden offers benches where tired feet can rest between galleries. "
    "The café serves soup and bread at lunchtime, though queues grow long on weekends. "
    "Tickets cost less for students, and entry is free on the first Sunday of each month. "
    "Most people we asked said they would return soon to see the sculpture rooms upstairs."
)
SENTENCES = GOOD.replace("\n", " ").split(". ")


def doc(*items, **kw) -> Document:
    return Document.from_items("d", list(items), **kw)


def judge(step, *items) -> tuple[bool, str]:
    return step.filter(doc(*items))


# ---------------- Gopher repetition ----------------


def test_good_text_passes_all_three():
    for step in (GopherRepetition(), C4Quality(), FineWebQuality()):
        assert judge(step, GOOD) == (True, ""), step.name


@pytest.mark.parametrize(
    "text, reason",
    [
        # half the paragraphs repeat
        ("\n\n".join(SENTENCES[i] for i in [0, 1, 0, 0]), "gopher_dup_para_frac"),
        # one long paragraph repeats: 1 of 4 paragraphs, but most of the characters
        ("\n\n".join([GOOD.replace("\n", " "), "Hello there.", "Bye now.", GOOD.replace("\n", " ")]),
         "gopher_dup_para_char_frac"),
        ("\n".join(SENTENCES[i] for i in [0, 1, 0, 0]), "gopher_dup_line_frac"),
        ("\n".join([GOOD.replace("\n", " "), "Hello there.", "Bye now.", GOOD.replace("\n", " ")]),
         "gopher_dup_line_char_frac"),
        # "red circle" again and again, each time followed by another word
        (" ".join(f"red circle {w}." for w in SENTENCES[0].split()), "gopher_top_2_gram"),
        # a twelve-word sentence said three times inside otherwise fresh prose
        (GOOD.replace("\n", " ") + " " + " ".join([SENTENCES[5]] * 3), "gopher_duplicated_5_n_grams"),
    ],
)  # fmt: skip
def test_gopher_repetition_reasons(text, reason):
    assert judge(GopherRepetition(), text) == (False, reason)


def test_top_3_and_4_grams_trip_their_own_rules():
    # a three-word phrase repeated among distinct fillers; the 2-gram share (0.36) is
    # under a loosened 2-gram limit, the 3-gram share (0.57) over the published one
    fill = [f"w{i:03d}x" for i in range(60)]
    text = " ".join(f"{a} {b} alpha beta gamma" for a, b in zip(fill[::2], fill[1::2], strict=True))
    assert judge(GopherRepetition(), text) == (False, "gopher_top_2_gram")
    step = GopherRepetition(top_n_grams={2: 0.4, 3: 0.18, 4: 0.16})
    assert judge(step, text) == (False, "gopher_top_3_gram")
    step = GopherRepetition(top_n_grams={4: 0.16})
    text4 = " ".join(f"{a} alpha beta gamma delta" for a in fill)
    assert judge(step, text4) == (False, "gopher_top_4_gram")


def test_gopher_repetition_thresholds_are_parameters():
    text = GOOD.replace("\n", " ") + " " + " ".join([SENTENCES[5]] * 3)
    assert judge(GopherRepetition(dup_n_grams={5: 0.5, 10: 0.5}), text) == (True, "")
    # a 10-gram rule alone catches the same repeat when its threshold is low enough
    assert judge(GopherRepetition(dup_n_grams={10: 0.05}), text) == (
        False,
        "gopher_duplicated_10_n_grams",
    )
    rep = "\n".join(SENTENCES[i] for i in [0, 1, 0, 0])
    assert judge(GopherRepetition(dup_line_frac=0.6, dup_line_char_frac=None,
                                  dup_n_grams={}, top_n_grams={}), rep) == (True, "")  # fmt: skip


def test_gopher_repetition_multimodal_judges_text_items_only():
    img = PNG_1x1
    assert judge(GopherRepetition(), img, img) == (True, "")
    assert judge(GopherRepetition(), "") == (False, "gopher_empty")
    # the same caption under four different images is a repeated paragraph
    cap = "A red circle left of a blue square."
    assert judge(GopherRepetition(), img, cap, img, cap, img, cap) == (
        False,
        "gopher_dup_para_frac",
    )
    assert judge(GopherRepetition(), img, GOOD, img) == (True, "")


def _ref_top(toks: list[str], n: int) -> int:
    # the plain definition (datatrove's find_top_duplicate), on word tuples
    grams = [tuple(toks[i : i + n]) for i in range(len(toks) - n + 1)]
    if not grams:
        return 0
    gram, count = Counter(grams).most_common(1)[0]
    return len(" ".join(gram)) * count


def _ref_dup(toks: list[str], n: int) -> int:
    # the plain definition (datatrove's find_all_duplicate), on word tuples
    seen, chars, i = set(), 0, 0
    while i < len(toks) - n + 1:
        gram = tuple(toks[i : i + n])
        if gram in seen:
            chars += sum(map(len, gram))
            i += n
        else:
            seen.add(gram)
            i += 1
    return chars


@pytest.mark.parametrize("seed", range(40))
@pytest.mark.parametrize("impl", [SmallNGrams, NGrams])
def test_ngram_counts_match_the_plain_definition(seed, impl):
    rng = random.Random(seed)
    vocab = [rng.choice("abcdefgh") * rng.randint(1, 4) for _ in range(rng.randint(1, 12))]
    toks = [rng.choice(vocab) for _ in range(rng.randint(0, 300))]
    grams = impl(toks)
    for n in (2, 3, 4, 1, 5, 6, 7, 8, 9, 10, 3):  # levels out of order rebuild correctly
        assert grams.top(n) == _ref_top(toks, n), (n, toks)
        assert grams.dup(n) == _ref_dup(toks, n), (n, toks)


# ---------------- C4 ----------------


def test_c4_removes_bad_lines_and_counts_them():
    step = C4Quality(max_word_length=40)
    text = "\n".join(
        [
            "Home | About | Contact",  # no terminal punctuation
            GOOD.splitlines()[0] + "[1]",  # citation mark goes, the line stays
            "Yes sir.",  # two words
            "Please enable JavaScript to view the comments.",
            GOOD.splitlines()[1],
            "This site uses cookies to improve your experience.",
            "A " + "x" * 50 + " word is too long here.",
            "Read more...",  # ellipsis is not an ending
            GOOD.splitlines()[2],
        ]
    )
    d = doc(text)
    assert step.filter(d) == (True, "")
    assert d.texts == [GOOD]
    assert step.stats()["lines_total"] == 9
    assert step.stats()["lines_kept"] == 3
    for rule in ("no_terminal_punct", "too_few_words", "javascript", "policy", "too_long_word"):
        assert step.stats()[f"lines_removed_{rule}"] >= 1, rule
    assert step.stats()["lines_removed_no_terminal_punct"] == 2
    assert step.stats()["docs_edited"] == 1


@pytest.mark.parametrize(
    "extra, reason",
    [
        ("Lorem ipsum dolor sit amet, consectetur adipiscing elit.", "c4_lorem_ipsum"),
        ("Call it with f(x) { return 1; } for all cases.", "c4_curly_bracket"),
        ("What the fuck is this exhibition about anyway?", "c4_bad_words"),
    ],
)
def test_c4_page_rules(extra, reason):
    assert judge(C4Quality(), GOOD + "\n" + extra) == (False, reason)


def test_c4_page_rules_see_only_surviving_lines():
    # as in C4/datatrove: a curly bracket in a line already removed drops nothing
    d = doc(GOOD + "\nconfig { a = 1 }")
    assert C4Quality().filter(d) == (True, "")
    assert d.texts == [GOOD]


def test_c4_too_few_sentences_and_threshold():
    short = "The museum opened a new wing. Visitors came. It was busy."
    assert judge(C4Quality(), short) == (False, "c4_too_few_sentences")
    assert judge(C4Quality(min_num_sentences=3), short) == (True, "")
    assert judge(C4Quality(min_num_sentences=-1), "no punctuation here") == (False, "c4_empty")


def test_c4_rules_can_be_switched_off():
    assert judge(C4Quality(filter_curly_bracket=False), GOOD + "\nUse f(x) { x } often.") == (
        True,
        "",
    )
    d = doc(GOOD + "\nHome | About")
    assert C4Quality(filter_no_terminal_punct=False, min_words_per_line=-1).filter(d) == (True, "")
    assert d.texts[0].endswith("Home | About")
    assert judge(C4Quality(bad_words=False), GOOD + "\nWhat the fuck is this?") == (True, "")


def test_c4_bad_words_from_user_file(tmp_path):
    path = tmp_path / "words.txt"
    path.write_text("# my list\nsculpture rooms\n\n")
    assert judge(C4Quality(bad_words_path=str(path)), GOOD) == (False, "c4_bad_words")
    # whole words only: "sculptures" does not match "sculpture"
    path.write_text("sculpt\n")
    assert judge(C4Quality(bad_words_path=str(path)), GOOD) == (True, "")


@pytest.mark.parametrize("content", [b"", b"# only a comment\n", b"\xff\xfe\x00bad", None])
def test_c4_bad_words_file_errors(tmp_path, content):
    path = tmp_path / "words.txt"
    if content is not None:  # None: the file is missing
        path.write_bytes(content)
    cfg = StepConfig.model_validate({"name": "c4_quality", "bad_words_path": str(path)})
    with pytest.raises(CurateError, match=r"c4_quality.*words\.txt"):
        build_step(cfg)


def test_c4_multimodal_edits_text_in_place_keeping_images():
    a, b = PNG_1x1, PNG_1x1 + b"\x00"
    d = doc("Shop now", a, GOOD + "\nClick here", b, "Next page")
    assert C4Quality().filter(d) == (True, "")
    assert d.texts == [None, GOOD, None]
    assert d.images == [a, None, b]
    d.validate()
    # all text goes, images stay: kept as an image-only document
    d = doc(a, "Photo by Ann", b)
    assert C4Quality().filter(d) == (True, "")
    assert d.texts == [None, None] and d.n_images == 2
    d = doc(a, b)  # image-only: nothing to judge, nothing to edit
    assert C4Quality().filter(d) == (True, "") and d.images == [a, b]
    # without the exemption the caption page is judged like a web page
    assert judge(C4Quality(skip_if_images=False), a, "Photo by Ann") == (
        False,
        "c4_too_few_sentences",
    )


# ---------------- FineWeb ----------------


def test_fineweb_line_punct_ratio():
    lines = [f"Section {i} of the long handbook about gardening tools" for i in range(10)]
    assert judge(FineWebQuality(), "\n".join(lines)) == (False, "fineweb_line_punct_ratio")
    # exempting documents where no line ends in punctuation lets it through to later rules
    assert judge(FineWebQuality(line_punct_exclude_zero=True), "\n".join(lines)) == (True, "")


def test_fineweb_short_line_ratio():
    lines = [f"Item number {i} is here." for i in range(10)] + [GOOD.replace("\n", " ")]
    assert judge(FineWebQuality(), "\n".join(lines)) == (False, "fineweb_short_line_ratio")
    assert judge(FineWebQuality(short_line_thr=0.95), "\n".join(lines)) == (True, "")


def test_fineweb_char_dup_ratio():
    line = "Subscribe to our newsletter for weekly updates on new exhibitions."
    text = GOOD + "\n" + line + "\n" + line + "\n" + line
    assert judge(FineWebQuality(), text) == (False, "fineweb_char_dup_ratio")
    assert judge(FineWebQuality(char_duplicates_ratio=0.2), text) == (True, "")


def test_fineweb_list_ratio():
    # twenty distinct two-word lines, each longer than 30 characters: 19 newlines, 60 tokens
    words = ["Internationalisation", "Responsibilities", "Misunderstandings", "Characterisation",
             "Incomprehensible"]  # fmt: skip
    lines = [f"{a} {b}." for a, b in itertools.permutations(words, 2)]
    assert judge(FineWebQuality(), "\n".join(lines)) == (False, "fineweb_list_ratio")
    assert judge(FineWebQuality(new_line_ratio=0.5), "\n".join(lines)) == (True, "")


def test_fineweb_multimodal():
    assert judge(FineWebQuality(), PNG_1x1) == (True, "")
    assert judge(FineWebQuality(), "   \n ") == (False, "fineweb_empty")
    # blank lines joining text items around images do not count as list newlines
    cap = "The painting shows horses crossing a frozen river at dawn."
    assert judge(FineWebQuality(), cap, PNG_1x1, cap.replace("dawn", "dusk"), PNG_1x1) == (True, "")


# ---------------- config errors and the noisy corpus ----------------


@pytest.mark.parametrize(
    "name, params, param",
    [
        ("gopher_repetition", {"dup_line_frac": "lots"}, "dup_line_frac"),
        ("gopher_repetition", {"top_n_grams": [2, 3]}, "top_n_grams"),
        ("c4_quality", {"min_words_per_line": 2.5}, "min_words_per_line"),
        ("c4_quality", {"filter_javascript": "maybe"}, "filter_javascript"),
        ("fineweb_quality", {"short_line_length": "thirty"}, "short_line_length"),
        ("fineweb_quality", {"line_punct": 0.1}, "line_punct"),
        ("fineweb_quality", {"stop_chars": ""}, "stop_chars"),
        ("gopher_repetition", {"dup_n_grams": {0: 0.1}}, "dup_n_grams"),
    ],
)
def test_wrong_parameter_gives_one_line_error(name, params, param):
    with pytest.raises(CurateError) as e:
        build_step(StepConfig.model_validate({"name": name, **params}))
    msg = str(e.value)
    assert "\n" not in msg and name in msg and param in msg


def test_yaml_style_parameters_are_accepted():
    step = build_step(
        StepConfig.model_validate(
            {"name": "gopher_repetition", "top_n_grams": {"2": 0.5}, "dup_n_grams": {}}
        )
    )
    assert step.top_n_grams == {2: 0.5} and step.dup_n_grams == {}


def test_spam_is_caught_by_c4_and_fineweb_on_the_noisy_corpus():
    clean = clean_docs(200, seed=5)
    noisy = inject_noise(clean, NoiseConfig(spam=0.15), random.Random(1))
    before = {d.id: [im for im in d.images if im is not None] for d in noisy}
    steps = [build_step(StepConfig(name=n)) for n in ("c4_quality", "fineweb_quality")]
    kept, led = run_steps(noisy, steps)
    led.check()
    kept_ids = {d.id for d in kept}
    defect = {d.id: d.metadata.get("defect", "clean") for d in noisy}
    outcome = Counter((defect[d.id], d.id in kept_ids) for d in noisy)
    assert outcome[("spam", True)] == 0
    # a clean document may repeat a caption under two images: FineWeb's duplicate-line rule
    assert outcome[("clean", True)] >= 0.97 * len(clean)
    assert sum(led.dropped["c4_quality"].values()) == round(0.15 * len(clean))
    c4 = led.extra["step_stats"]["c4_quality"]  # removed lines land in the ledger
    assert c4["lines_removed_no_terminal_punct"] > 0 and c4["lines_total"] > c4["lines_kept"]
    # every kept image survived the line edits, in place
    for d in kept:
        assert [im for im in d.images if im is not None] == before[d.id]


def test_curate_run_writes_line_and_mask_counts_to_the_ledger(tmp_path):
    from vloom.config import CurateConfig
    from vloom.curate import run_curate
    from vloom.doc import read_documents, write_documents
    from vloom.ledger import Ledger

    pages = [
        doc(GOOD + f"\nShare this page\nWrite to editor{i}@museum.example.org about it.")
        for i in range(6)
    ]
    for i, d in enumerate(pages):
        d.id = f"p{i}"
    write_documents(tmp_path / "in", pages, shard_size=3)  # two shards, summed in the ledger
    cfg = CurateConfig(steps=[StepConfig(name="c4_quality"), StepConfig(name="pii")], workers=1)
    run_curate(tmp_path / "in", tmp_path / "out", cfg, quiet=True)
    led = Ledger.read(tmp_path / "out")
    assert led.kept == 6
    stats = led.extra["step_stats"]
    assert stats["c4_quality"]["lines_removed_no_terminal_punct"] == 6
    assert stats["c4_quality"]["docs_edited"] == 6
    assert stats["pii"] == {"emails": 6, "ips": 0, "docs_masked": 6}
    out = sorted(read_documents(tmp_path / "out"), key=lambda d: d.id)
    assert out[0].texts == [GOOD + "\nWrite to <EMAIL_ADDRESS> about it."]
