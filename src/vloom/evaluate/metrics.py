"""Text metrics for generated answers: normalised exact match, CIDEr and BLEU.

CIDEr is pycocoevalcap's (pure Python); its Java PTB tokenizer is not used: `tokenize` does
the same job here (lowercase, words and numbers, punctuation dropped). BLEU is sacrebleu's.
"""

from __future__ import annotations

import re
import string

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD/VQA-style: lowercase, no punctuation, no articles, single spaces."""
    text = _ARTICLES.sub(" ", text.lower().translate(_PUNCT))
    return " ".join(text.split())


def exact_match(prediction: str, references: list[str]) -> bool:
    p = normalize_answer(prediction)
    return any(p == normalize_answer(r) for r in references)


def tokenize(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def caption_scores(predictions: list[str], references: list[list[str]]) -> dict[str, float]:
    """Corpus CIDEr (pycocoevalcap, x1) and BLEU-4 (sacrebleu, 0..100) of captions vs refs."""
    from pycocoevalcap.cider.cider import Cider
    from sacrebleu import corpus_bleu

    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} captions but {len(references)} reference lists")
    if not predictions:
        return {"cider": 0.0, "bleu": 0.0}
    if any(not refs for refs in references):
        raise ValueError("every caption needs at least one reference")
    gts = {i: [tokenize(r) for r in refs] for i, refs in enumerate(references)}
    res = {i: [tokenize(p)] for i, p in enumerate(predictions)}
    cider, _ = Cider().compute_score(gts, res)
    width = max(len(r) for r in references)
    # sacrebleu takes one stream per reference slot; None fills the slots a caption lacks.
    streams = [[refs[j] if j < len(refs) else None for refs in references] for j in range(width)]
    bleu = corpus_bleu(
        [res[i][0] for i in range(len(predictions))],
        [[tokenize(r) if r is not None else None for r in s] for s in streams],
    )
    return {"cider": float(cider), "bleu": float(bleu.score)}
