"""Open-ended questions -> multiple choice (the AutoConverter idea behind VMCBench).

Distractors come from a pluggable generator ("module:function", called as
`fn(row, k, rng) -> list[str]`, proposing k or more candidates in order of preference; the
ones that fail the checks below are skipped) and from the answer space of the same question type in the
set. An option is kept only if it is not a right answer: not equal, after normalisation, to
any of the row's answers, nor (for the synthetic world, when the row carries its scene)
true of the scene. A question that cannot get enough distinct wrong options is dropped and
counted, never padded.
"""

from __future__ import annotations

import importlib
import json
import random
import re
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any

from vloom.evaluate.metrics import normalize_answer
from vloom.synth.world import CELLS, COLOURS, COUNT_WORDS, SHAPES

Generator = Callable[[dict[str, Any], int, random.Random], list[str]]


def load_generator(spec: str) -> Generator:
    """`package.module:function` -> the function."""
    mod, sep, fn = spec.partition(":")
    if not sep or not mod or not fn:
        raise ValueError(f"distractor generator {spec!r}: expected 'module:function'")
    try:
        obj = getattr(importlib.import_module(mod), fn)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"distractor generator {spec!r} cannot be loaded: {e}") from None
    if not callable(obj):
        raise ValueError(f"distractor generator {spec!r} is not callable")
    return obj


def world_vocabulary(row: dict[str, Any], k: int, rng: random.Random) -> list[str]:
    """A generator: words of the synthetic world in the role the question asks about."""
    pools = {
        "colour": list(COLOURS),
        "shape": list(SHAPES),
        "position": list(CELLS),
        "count": list(COUNT_WORDS[1:5]),
    }
    pool = pools.get(row.get("qtype", ""), [])
    return rng.sample(pool, len(pool))  # all of them: some may be right answers, skipped later


def true_of_scene(row: dict[str, Any], option: str) -> bool:
    """Whether `option` also answers the question about the row's scene (synthetic world)."""
    if not row.get("scene"):
        return False
    objs = json.loads(row["scene"])
    q, qt = row.get("question", ""), row.get("qtype")
    if qt == "colour":
        return option in {o["colour"] for o in objs}
    if qt == "count":
        return option == COUNT_WORDS[len(objs)]
    m = re.search(r"the (\w+) object", q)
    hit = [o for o in objs if m and o["colour"] == m.group(1)]
    if qt == "shape":
        return any(o["shape"] == option for o in hit)
    if qt == "position":
        return any(o["cell"] == option for o in hit)
    return False


def convert_open_to_mc(
    rows: list[dict[str, Any]],
    num_options: int = 4,
    generator: str | Generator | None = None,
    seed: int = 0,
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """MC rows (`options`, `answer` index, plus the row's fields) and {drop reason: count}."""
    if num_options < 2:
        raise ValueError(f"num_options must be >= 2, got {num_options}")
    gen = load_generator(generator) if isinstance(generator, str) else generator
    space: dict[str, list[str]] = defaultdict(list)
    for r in rows:
        for a in r["answers"]:
            if a and a not in space[r["qtype"]]:
                space[r["qtype"]].append(a)
    rng = random.Random(f"convert-{seed}")
    out, dropped, from_gen = [], Counter(), 0
    for r in rows:
        right = {normalize_answer(a) for a in r["answers"] if a}
        answer = rng.choice(sorted(a for a in r["answers"] if a))
        k = num_options - 1
        proposals = list(gen(r, k, rng)) if gen else []
        same_type = [a for a in space[r["qtype"]]]
        rng.shuffle(same_type)
        chosen: list[str] = []
        seen = set(right)
        n_gen = 0
        for j, cand in enumerate(proposals + same_type):
            if len(chosen) == k:
                break
            if not isinstance(cand, str) or not cand.strip():
                continue
            norm = normalize_answer(cand)
            if norm in seen or true_of_scene(r, cand):
                continue
            seen.add(norm)
            chosen.append(cand)
            n_gen += j < len(proposals)
        if len(chosen) < k:
            dropped["too_few_distinct_distractors"] += 1
            continue
        from_gen += n_gen
        opts = chosen + [answer]
        rng.shuffle(opts)
        out.append({**r, "options": opts, "answer": opts.index(answer)})
    stats = dict(dropped)
    stats["distractors_from_generator"] = from_gen
    return out, stats


def open_mc_shift(open_res: dict[str, Any], mc_res: dict[str, Any]) -> dict[str, float]:
    """MC accuracy minus open accuracy, overall and per question type present in both."""
    out = {}
    for key, v in mc_res.items():
        if key.startswith("accuracy") and isinstance(open_res.get(key), (int, float)):
            out[key.replace("accuracy", "shift_from_open", 1)] = float(v) - float(open_res[key])
    return out
