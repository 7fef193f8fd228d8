import sys

import pytest
from captionextra import need_caption_metrics

from vloom.evaluate.metrics import caption_scores, exact_match, normalize_answer, tokenize
from vloom.evaluate.tasks import get_task


def test_normalisation_and_exact_match():
    assert normalize_answer("  The Red object is a CIRCLE. ") == "red object is circle"
    assert exact_match("the red object is a circle", ["The red object is a circle."])
    assert not exact_match("The red object is a square.", ["The red object is a circle."])
    assert exact_match("Red!", ["blue", "red"])


def test_caption_scores_match_the_libraries_and_rank_captions():
    need_caption_metrics()
    from pycocoevalcap.cider.cider import Cider
    from sacrebleu import corpus_bleu

    refs = [
        ["There is a red circle at the top left.", "A red circle is at the top left."],
        ["There are two objects: a blue square and a green triangle."],
    ]
    good = ["there is a red circle at the top left", "there are two objects a blue square"]
    bad = ["yellow diamond", "nothing"]
    s_good, s_bad = caption_scores(good, refs), caption_scores(bad, refs)
    assert s_good["cider"] > s_bad["cider"] >= 0 and s_good["bleu"] > s_bad["bleu"]
    # Direct computation with the libraries on the same tokenisation.
    gts = {i: [tokenize(r) for r in rs] for i, rs in enumerate(refs)}
    cider, _ = Cider().compute_score(gts, {i: [tokenize(g)] for i, g in enumerate(good)})
    assert s_good["cider"] == pytest.approx(cider)
    bleu = corpus_bleu(
        good, [[tokenize(refs[0][0]), tokenize(refs[1][0])], [tokenize(refs[0][1]), None]]
    )
    assert s_good["bleu"] == pytest.approx(bleu.score)
    assert caption_scores(["a b c d e"], [["a b c d e"]])["bleu"] == pytest.approx(100.0)


def test_caption_scores_bad_input():
    need_caption_metrics()
    with pytest.raises(ValueError, match="2 captions but 1 reference lists"):
        caption_scores(["a", "b"], [["a"]])
    with pytest.raises(ValueError, match="at least one reference"):
        caption_scores(["a"], [[]])


@pytest.mark.parametrize("missing", ["pycocoevalcap", "sacrebleu"])
def test_caption_gen_without_the_eval_extra_fails_before_generating(missing, rand_ctx, monkeypatch):
    # A None entry in sys.modules makes `import missing` fail as if it were not installed.
    monkeypatch.setitem(sys.modules, missing, None)
    generated = []
    monkeypatch.setattr(
        "vloom.evaluate.tasks.caption_gen.generate_captions",
        lambda *a: generated.append(1) or [],
    )
    with pytest.raises(ImportError, match=r"need \w+: pip install 'vloom\[eval\]'"):
        get_task("caption_gen")(rand_ctx)
    assert generated == []  # nothing was generated only to be thrown away
