"""Language identification: lingua by default, a user's fastText model as the other backend."""

import random
from collections import Counter

import pytest
from shapes import clean_docs, prose

from vloom.config import NoiseConfig, StepConfig
from vloom.curate import CurateError, build_step, run_steps
from vloom.curate.filters.language import LanguageFilter
from vloom.doc import Document
from vloom.synth.noise import foreign_text, inject_noise

PNG_1x1 = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108020000009077"
    "53de0000000c4944415408d763f8cfc000000301010018dd8db00000000049454e44ae426082"
)
EN = (
    "The museum opened a new wing last spring, and visitors have crowded its halls ever "
    "since. Its curators chose paintings from four centuries."
)
FR = (
    "Le musée a ouvert une nouvelle aile au printemps dernier, et les visiteurs se pressent "
    "dans ses salles depuis. Ses conservateurs ont choisi des tableaux de quatre siècles."
)
SMALL = ["en", "fr", "de", "es"]  # a small detector keeps the tests fast


def lang_step(**kw) -> LanguageFilter:
    kw.setdefault("languages", SMALL)
    return LanguageFilter(**kw)


def test_english_kept_with_language_and_score():
    d = Document.from_items("d", [EN], language="xx")
    assert lang_step().filter(d) == (True, "")
    assert d.language == "en"
    assert d.metadata["language_score"] >= 0.65


def test_french_dropped_by_default_and_kept_when_asked():
    d = Document.from_items("d", [FR])
    assert lang_step().filter(d) == (False, "wrong_language")
    assert d.language == "fr"  # labelled even when dropped
    assert lang_step(keep=["fr", "en"]).filter(Document.from_items("d", [FR])) == (True, "")
    assert lang_step(keep=None).filter(Document.from_items("d", [FR])) == (True, "")


def test_min_score_is_a_threshold():
    mixed = "Le musée est ouvert. The museum is open. Das Museum ist offen."
    d = Document.from_items("d", [mixed])
    assert lang_step(keep=None, min_score=0.0).filter(d) == (True, "")
    score = d.metadata["language_score"]
    assert score < 0.99
    assert lang_step(keep=None, min_score=score + 0.001).filter(d) == (False, "low_language_score")


def test_label_only_never_drops():
    d = Document.from_items("d", [FR])
    assert lang_step(label_only=True).filter(d) == (True, "")
    assert d.language == "fr"


def test_short_text_policy_and_image_only_docs():
    short = Document.from_items("d", ["Hello there."])
    assert lang_step().filter(short) == (False, "too_short_for_lid")
    assert lang_step(on_short="keep").filter(short) == (True, "")
    assert lang_step(min_chars=5).filter(short)[1] in ("", "low_language_score")
    img_only = Document.from_items("d", [PNG_1x1, PNG_1x1], language="en")
    assert lang_step().filter(img_only) == (True, "")
    assert "language_score" not in img_only.metadata
    # multimodal: only the text items are read
    mm = Document.from_items("d", [PNG_1x1, FR, PNG_1x1])
    assert lang_step().filter(mm) == (False, "wrong_language")


def test_long_text_is_truncated_for_speed():
    # English first, French far beyond max_chars: only the English part is scored
    d = Document.from_items("d", [EN * 4, FR * 40])
    assert lang_step(max_chars=400).filter(d) == (True, "")
    assert lang_step(max_chars=100000).filter(Document.from_items("d", [EN, FR * 40]))[0] is False


@pytest.mark.parametrize(
    "params, words",
    [
        ({"keep": 5}, ["'keep'"]),
        ({"min_score": "high"}, ["'min_score'"]),
        ({"on_short": "maybe"}, ["'on_short'"]),
        ({"languages": ["en", "zz"]}, ["zz"]),
        ({"languages": []}, ["empty"]),
        ({"max_chars": 0}, ["max_chars"]),
        ({"languages": ["en", "de"], "keep": ["fr"]}, ["fr", "not among"]),
    ],
)
def test_bad_parameters_give_one_line_errors(params, words):
    with pytest.raises(CurateError) as e:
        build_step(StepConfig.model_validate({"name": "language", **params}))
    msg = str(e.value)
    assert "\n" not in msg and "'language'" in msg
    for w in words:
        assert w in msg


def test_foreign_language_defects_are_dropped_on_the_noisy_corpus():
    clean = clean_docs(150, seed=3)
    noisy = inject_noise(clean, NoiseConfig(foreign_language=0.2), random.Random(2))
    step = build_step(StepConfig.model_validate({"name": "language", "low_accuracy": True}))
    kept, led = run_steps(noisy, [step])
    led.check()
    ids = {d.id for d in kept}
    outcome = Counter((d.metadata.get("defect", "clean"), d.id in ids) for d in noisy)
    assert outcome[("foreign_language", True)] == 0
    assert outcome[("foreign_language", False)] == round(0.2 * len(clean))
    assert outcome[("clean", False)] == 0
    assert led.dropped["language"]["wrong_language"] == round(0.2 * len(clean))
    assert all(d.language == "en" for d in kept if d.metadata.get("language_score"))


# ---------------- a user-supplied fastText model ----------------


@pytest.fixture(scope="module")
def tiny_lid(tmp_path_factory) -> str:
    """A fastText LID model with labels en/fr/de/es, trained here on generated sentences."""
    import fasttext

    rng = random.Random(0)
    root = tmp_path_factory.mktemp("lid")
    lines = []
    for _ in range(300):
        lines.append("__label__en " + prose(rng, 2))
        for lang in ("fr", "de", "es"):
            lines.append(f"__label__{lang} " + foreign_text(rng, lang))
    rng.shuffle(lines)
    (root / "train.txt").write_text("\n".join(lines) + "\n")
    model = fasttext.train_supervised(
        str(root / "train.txt"),
        epoch=20,
        lr=0.5,
        dim=16,
        minn=2,
        maxn=4,
        thread=1,
        seed=0,
        verbose=0,
    )
    path = root / "lid.bin"
    model.save_model(str(path))
    return str(path)


def test_fasttext_backend(tiny_lid):
    rng = random.Random(9)
    step = LanguageFilter(fasttext_model=tiny_lid)
    en = Document.from_items("d", [prose(rng, 3)])
    assert step.filter(en) == (True, "")
    assert en.language == "en"
    de = Document.from_items("d", [foreign_text(rng, "de")])
    assert step.filter(de) == (False, "wrong_language")
    assert de.language == "de" and de.metadata["language_score"] > 0.65
    # languages outside lingua's list are fine with a user's model
    assert LanguageFilter(fasttext_model=tiny_lid, keep=["de"]).filter(de) == (True, "")


def test_fasttext_model_that_is_not_one(tmp_path):
    bad = tmp_path / "lid.bin"
    bad.write_bytes(b"this is not a fastText model\n" * 50)
    for path in (bad, tmp_path / "missing.bin"):
        cfg = StepConfig.model_validate({"name": "language", "fasttext_model": str(path)})
        with pytest.raises(CurateError) as e:
            build_step(cfg)
        assert "\n" not in str(e.value) and str(path) in str(e.value)


def test_synthetic_world_spam_and_foreign_defects_go_to_the_right_steps(tmp_path):
    from tinyexp import tiny_config

    from vloom.doc import read_documents
    from vloom.synth import generate

    cfg = tiny_config()
    generate(cfg.synth, tmp_path / "world", cfg.seed)
    docs = list(read_documents(tmp_path / "world" / "train"))
    defect = {d.id: d.metadata.get("defect", "clean") for d in docs}
    names = ("language", "c4_quality", "fineweb_quality")
    params = {"language": {"languages": SMALL}}  # the full default list loads for ~20 s
    steps = [build_step(StepConfig.model_validate({"name": n, **params.get(n, {})})) for n in names]
    by_step = {}
    for step in steps:  # each step alone on the whole world: who catches what
        kept, _ = run_steps(docs, [step])
        ids = {d.id for d in kept}
        by_step[step.name] = Counter(defect[i] for i in defect if i not in ids)
    n_foreign = sum(v == "foreign_language" for v in defect.values())
    n_spam = sum(v == "spam" for v in defect.values())
    assert n_foreign > 0 and n_spam > 0
    assert by_step["language"] == Counter({"foreign_language": n_foreign})
    assert by_step["c4_quality"] == Counter({"spam": n_spam})
    assert by_step["fineweb_quality"]["spam"] == n_spam
    assert by_step["fineweb_quality"]["clean"] <= 0.02 * len(docs)
