"""Open-ended questions -> multiple choice (the AutoConverter idea behind VMCBench).

Wrong options come from the eval set's answer plug-in (a `Distractors`: `propose(row, k, rng)`
lists k or more candidates in order of preference, `also_right(row, option)` says whether a
candidate is a right answer the row does not list; an optional `prepare(rows, k)` is called
once with all rows first, so a plug-in that generates can batch) and from the answer space of
the same question type in the set. An option is kept only if it is not a right answer: not equal,
after normalisation, to any of the row's answers, nor vouched right by the plug-in. A question
that cannot get enough distinct wrong options is dropped and counted, never padded.

This module knows no particular set. The synthetic world's plug-in lives in
`vloom.synth.answers`; a set names its plug-in in its Parquet metadata (`DISTRACTORS_KEY`, a
registered name only, so a data file never names code to import), a user by registered name
or as `module:attr` (a plug-in object, or a bare `fn(row, k, rng)` that vouches for nothing).
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from vloom.evaluate.metrics import normalize_answer
from vloom.lazy import registered_or_plugin

Row = dict[str, Any]
Generator = Callable[[Row, int, random.Random], list[str]]


@runtime_checkable
class Distractors(Protocol):
    """An eval set's answer plug-in: where wrong options come from, and what else is right."""

    def propose(self, row: Row, k: int, rng: random.Random) -> list[str]: ...

    def also_right(self, row: Row, option: str) -> bool: ...


@dataclass(frozen=True)
class ProposalsOnly:
    """A bare generator function as a plug-in: it proposes, and vouches for no other answer."""

    fn: Generator

    def propose(self, row: Row, k: int, rng: random.Random) -> list[str]:
        return list(self.fn(row, k, rng))

    def also_right(self, row: Row, option: str) -> bool:
        return False


_REGISTRY: dict[str, Distractors] = {}


def register_distractors(name: str, plugin: Distractors) -> None:
    """Make `plugin` known by `name`, the name eval files may carry in their metadata."""
    if not isinstance(plugin, Distractors):
        raise TypeError(f"distractors {name!r}: needs propose(row, k, rng) and also_right(row, o)")
    _REGISTRY[name] = plugin


def registered_distractors(name: str) -> Distractors:
    """A registered plug-in by name (the only form a data file may ask for)."""
    if name not in _REGISTRY:
        known = ", ".join(sorted(_REGISTRY)) or "none"
        raise ValueError(f"unknown distractors {name!r}; registered: {known}")
    return _REGISTRY[name]


def load_distractors(spec: str) -> Distractors:
    """A registered name, or `package.module:attr` naming a plug-in or a generator function."""
    obj = registered_or_plugin(spec, _REGISTRY, "distractors")
    if isinstance(obj, Distractors) and not isinstance(obj, type):
        return obj
    if callable(obj):
        return ProposalsOnly(obj)
    raise ValueError(f"distractors {spec!r} is neither a plug-in nor callable")


def as_distractors(d: Distractors | Generator | str | None) -> Distractors | None:
    if d is None or (isinstance(d, Distractors) and not isinstance(d, type)):
        return d
    if isinstance(d, str):
        return load_distractors(d)
    if callable(d):
        return ProposalsOnly(d)
    raise TypeError(f"distractors: expected a plug-in, a function or a spec, not {d!r}")


def convert_open_to_mc(
    rows: list[Row],
    num_options: int = 4,
    distractors: Distractors | Generator | str | None = None,
    seed: int = 0,
) -> tuple[list[Row], dict[str, int]]:
    """MC rows (`options`, `answer` index, plus the row's fields) and {drop reason: count}.

    With no plug-in, wrong options come only from the set's own answers of the same type."""
    if num_options < 2:
        raise ValueError(f"num_options must be >= 2, got {num_options}")
    plugin = as_distractors(distractors)
    if hasattr(plugin, "prepare"):  # a plug-in that generates: all rows in batched calls
        plugin.prepare(rows, num_options - 1)  # type: ignore[union-attr]
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
        proposals = list(plugin.propose(r, k, rng)) if plugin else []
        same_type = list(space[r["qtype"]])
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
            if norm in seen or (plugin and plugin.also_right(r, cand)):
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
