"""Self-correction (SCoRe's evaluation): answer, then answer again after being asked to check.

Attempt 1 is vqa_open's prompt (`Question: q Answer:`); attempt 2 shows the model its own first
answer, the instruction `SECOND_ATTEMPT`, and the question again, so the second answer comes in
the same sentence form the first did. Both attempts are greedy. The RL stage (vloom.rl) builds
its second-attempt rollouts with `second_attempt_prompt`, so training and evaluation agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from vloom.evaluate.generation import greedy_generate
from vloom.evaluate.metrics import exact_match, normalize_answer
from vloom.evaluate.records import EXAMPLES, open_records
from vloom.evaluate.tasks import EvalContext, register
from vloom.evaluate.tasks.data import image_prompt
from vloom.evaluate.tasks.vqa_open import STOP, accepted, open_prompt, read_open_rows
from vloom.sequence import encode_text

# Made only of words the world's text uses (each a whole token of the demo's small BPE
# tokenizer): an instruction in unseen words would be noise to a model trained on the world.
SECOND_ATTEMPT = "Looking at the picture, is the answer right?"


def second_attempt_prompt(first_prompt: str, first_answer: str) -> str:
    """The text after the image for attempt 2: attempt 1's prompt and answer, the instruction,
    and attempt 1's prompt again (`Question: q Answer:`), which the model answers anew.

    The first answer was cut at a stop string (vqa_open stops at "."), so the full stop that
    closed it is put back; an empty first answer stays empty."""
    first_prompt, answer = first_prompt.strip(), first_answer.strip()
    if answer and answer[-1] not in ".?!":
        answer += "."
    first = f"{first_prompt} {answer}" if answer else first_prompt
    return f"{first} {SECOND_ATTEMPT} {first_prompt}"


def flip_metrics(t1: Sequence[bool], t2: Sequence[bool], suffix: str = "") -> dict[str, float]:
    """SCoRe's figures over examples answered twice: accuracy at each attempt, their difference,
    and the shares of all examples that went wrong -> right and right -> wrong (so
    delta = wrong_to_right - right_to_wrong)."""
    if len(t1) != len(t2):
        raise ValueError(f"{len(t1)} first attempts but {len(t2)} second attempts")
    n = max(len(t1), 1)
    a1, a2 = sum(map(bool, t1)) / n, sum(map(bool, t2)) / n
    w2r = sum(not a and bool(b) for a, b in zip(t1, t2, strict=True)) / n
    r2w = sum(bool(a) and not b for a, b in zip(t1, t2, strict=True)) / n
    return {
        f"accuracy_t1{suffix}": a1,
        f"accuracy_t2{suffix}": a2,
        f"delta{suffix}": a2 - a1,
        f"wrong_to_right{suffix}": w2r,
        f"right_to_wrong{suffix}": r2w,
    }


def self_correct_metrics(
    t1: Sequence[bool], t2: Sequence[bool], qtypes: Sequence[str | None], changed: Sequence[bool]
) -> dict[str, Any]:
    """All examples' flip metrics, then each question type's (`accuracy_t1_colour`, ...).
    `accuracy` is the second attempt's: the answer the model settles on."""
    out: dict[str, Any] = flip_metrics(t1, t2)
    out["accuracy"] = out["accuracy_t2"]
    out["changed"] = sum(map(bool, changed)) / max(len(changed), 1)
    for qt in sorted({q for q in qtypes if q}):
        idx = [i for i, q in enumerate(qtypes) if q == qt]
        out.update(flip_metrics([t1[i] for i in idx], [t2[i] for i in idx], f"_{qt}"))
    out["n"] = len(t1)
    return out


def metrics_from_records(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """`self_correct_metrics` recomputed from the task's per-example records (the report's
    source for intervals); records without both attempts scored are left out."""
    recs = [r for r in records if _is01(r.get("correct_t1")) and _is01(r.get("correct_t2"))]
    return self_correct_metrics(
        [bool(r["correct_t1"]) for r in recs],
        [bool(r["correct_t2"]) for r in recs],
        [r.get("qtype") for r in recs],
        [bool(r.get("changed")) for r in recs],
    )


def _is01(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v in (0, 1)


@register("self_correct", modality="vision-language", scoring="generation")
def self_correct(ctx: EvalContext, max_new_tokens: int = 16) -> dict[str, Any]:
    """Two greedy attempts at each held-out open question (vqa_open.parquet): the first from
    vqa_open's prompt, the second from `second_attempt_prompt`, both after the same image."""
    rows = read_open_rows(ctx)  # a row with no answer is refused there, naming file and row
    m, tok = ctx.model, ctx.tokenizer
    path = ctx.data_dir / "vqa_open.parquet"
    heads, images, texts = [], [], []
    for i, r in enumerate(rows):
        slots, pixels = image_prompt(m, r["image"], f"{path}: row {i} ({r.get('id')})")
        heads.append(m.layout.prefix + slots)
        images.append(pixels)
        texts.append(open_prompt(r["question"]))

    def attempt(prompt_texts: list[str]) -> list[str]:
        prompts = [h + encode_text(tok, t) for h, t in zip(heads, prompt_texts, strict=True)]
        return greedy_generate(
            m, tok, prompts, images, ctx.device, max_new_tokens, STOP, ctx.batch_size
        )

    first = attempt(texts)
    second = attempt([second_attempt_prompt(t, a) for t, a in zip(texts, first, strict=True)])
    ok1 = [exact_match(p, accepted(r)) for p, r in zip(first, rows, strict=True)]
    ok2 = [exact_match(p, accepted(r)) for p, r in zip(second, rows, strict=True)]
    changed = [
        normalize_answer(a) != normalize_answer(b) for a, b in zip(first, second, strict=True)
    ]
    out = self_correct_metrics(ok1, ok2, [r["qtype"] for r in rows], changed)
    if ctx.records:
        recs = open_records(rows, second, ok2, path)
        for rec, p1, c1, ch in zip(recs, first, ok1, changed, strict=True):
            # `prediction` and `correct` are the second attempt's, as the answer that counts
            rec.update(prediction_t1=p1, correct_t1=int(c1), correct_t2=rec["correct"])
            rec["changed"] = int(ch)
        out[EXAMPLES] = recs
    return out
