"""Model-written distractors for the open -> multiple-choice conversion (AutoConverter).

A `Distractors` plug-in for `vloom.evaluate.convert`: a generator proposes wrong options for
each question (with its image), a reviewer pass rejects the ones that are also right, and the
converter's own check (no option equal, after normalisation, to a listed answer; no
duplicates) runs on what is left. Two ways to propose:
- `sample` (a base model, e.g. a vloom checkpoint): the model answers the question
  `n_samples` times at `temperature`; each answer that is not a listed right answer is a
  candidate, most frequent first (what the model itself finds likely: hard distractors). A
  row with an answer `template` ("The red object is a {}.") has the option read out of the
  answer; an answer off the template is counted `off_template`.
- `json` (an instruction model): one request per question asks for `k` wrong options as
  `{"options": [...]}` (`Proposals`, the structured-output schema).
The reviewer (`reviewer`: another generator, or the same one with `reviewer: same`) is asked per
candidate whether it is also a right answer (`Verdict`); a yes rejects it (`review_right`) and
`also_right` then vouches for it, so the converter's answer-space fallback cannot offer it
either; a review that fails (`review:<reason>`) also keeps the candidate out of this plug-in's
proposals (a candidate nobody vouched wrong is not offered) but vouches nothing. Failed proposals are counted `propose:<reason>` and leave the row to the set's own
answer space (the converter's fallback). `counts` holds every count.

Generation is batched over all rows: `prepare(rows, k)` (the converter calls it when the
plug-in has it) proposes and reviews for every row at once; `propose` for a row nobody
prepared generates for that row alone. With `rounds` > 1, rows left short of k options after
review are proposed for again with new seeds (sampled proposals: temperature > 0), the loop
of AutoConverter's agents; what was judged before is not asked again.

Registered as `model` (`vqa_mc_converted:distractors=model`): its settings come from the YAML
file `$VLOOM_DISTRACTOR_MODEL` names (`generator: {...}`, optional `reviewer`, `cache_dir` and
the `ModelDistractors` fields), read on first use, since a task spec cannot carry a section.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
from collections import Counter
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from vloom.evaluate.convert import Row, register_distractors
from vloom.evaluate.metrics import normalize_answer
from vloom.generate.generator import Generator, Request, make_generator, schema_prompt

PROPOSE = (
    "Question: {question}\nRight answer: {answer}\nWrite {k} different answers to the question "
    "that are plausible but wrong: each must not be a right answer."
)
REVIEW = (
    "Question: {question}\nKnown right answer: {answer}\nCandidate answer: {option}\n"
    "Is the candidate also a right answer to the question?"
)
ENV = "VLOOM_DISTRACTOR_MODEL"


class Proposals(BaseModel):
    """Wrong options, as a generator writes them in `json` mode."""

    model_config = ConfigDict(extra="forbid")
    options: list[str] = Field(description="plausible but wrong answers, one per item")


class Verdict(BaseModel):
    """The reviewer's judgement of one candidate."""

    model_config = ConfigDict(extra="forbid")
    right: bool = Field(description="true if the candidate is also a right answer")


class Settings(BaseModel):
    """How a `ModelDistractors` proposes and reviews (the YAML `model` reads, less generators)."""

    model_config = ConfigDict(extra="forbid")
    mode: Literal["sample", "json"] = "sample"
    n_samples: int = Field(8, ge=1, description="sample mode: answers drawn per question")
    temperature: float = Field(1.0, ge=0)
    max_new_tokens: int = Field(24, ge=1)
    seed: int = 0
    with_image: bool = Field(True, description="send the row's image with the question")
    propose_prompt: str = PROPOSE
    review_prompt: str = REVIEW
    review: bool = Field(True, description="run the reviewer pass")
    rounds: int = Field(1, ge=1, description="propose again for rows still short of k options")


def row_key(row: Row) -> str:
    """A row's identity: its id, or a hash of its question, answers and image."""
    if row.get("id") is not None:
        return str(row["id"])
    h = hashlib.sha256(repr((row.get("question"), row.get("answers"))).encode())
    h.update(row.get("image") or b"")
    return h.hexdigest()


def read_option(row: Row, text: str) -> str | None:
    """The option an answer names: the slot of the row's `template`, or the bare answer."""
    text = text.strip()
    template = row.get("template")
    if template and "{}" in template:
        pre, post = template.split("{}", 1)
        m = re.fullmatch(re.escape(pre) + r"(.+?)" + re.escape(post.rstrip(".")) + r"\.?", text)
        return m.group(1).strip() if m else None
    return text.rstrip(".").strip() or None


class ModelDistractors:
    """The plug-in (module docstring); `counts` says what happened to every candidate."""

    def __init__(
        self,
        generator: Generator,
        reviewer: Generator | None = None,
        settings: Settings | dict[str, Any] | None = None,
    ) -> None:
        self.generator, self.reviewer = generator, reviewer
        self.s = settings if isinstance(settings, Settings) else Settings(**(settings or {}))
        self.counts: Counter[str] = Counter()
        self._proposed: dict[str, list[str]] = {}
        self._right: dict[str, set[str]] = {}  # judged right by the reviewer
        self._unjudged: dict[str, set[str]] = {}  # the reviewer failed on them

    # ---- the Distractors protocol ----

    def propose(self, row: Row, k: int, rng: random.Random) -> list[str]:
        if row_key(row) not in self._proposed:
            self.prepare([row], k)
        return list(self._proposed[row_key(row)])

    def also_right(self, row: Row, option: str) -> bool:
        return normalize_answer(option) in self._right.get(row_key(row), set())

    # ---- batched generation ----

    def prepare(self, rows: list[Row], k: int) -> None:
        """Propose and review options for every row not prepared yet, in batched calls; a row
        left with fewer than k after review is proposed for again (`rounds`, new seeds)."""
        todo = {row_key(r): r for r in rows if row_key(r) not in self._proposed}
        offered: dict[str, list[str]] = {key: [] for key in todo}
        for rnd in range(self.s.rounds):
            need = {key: r for key, r in todo.items() if len(offered[key]) < k}
            if not need:
                break
            self.counts["rounds"] += 1
            cands = self._candidates(list(need.values()), k, rnd)
            for key, opts in cands.items():  # a later round repeats nothing judged before
                seen = {normalize_answer(o) for o in offered[key]}
                seen |= self._right.get(key, set()) | self._unjudged.get(key, set())
                cands[key] = [o for o in opts if normalize_answer(o) not in seen]
            if self.s.review and self.reviewer is not None:
                self._review(need, cands)
            for key, opts in cands.items():
                offered[key] += opts
        for key, opts in offered.items():
            self._proposed[key] = opts
            self.counts["rows_without_proposals"] += not opts
            self.counts["offered"] += len(opts)

    def _images(self, row: Row) -> tuple[bytes, ...]:
        return (row["image"],) if self.s.with_image and row.get("image") else ()

    def propose_requests(self, row: Row, k: int, rnd: int = 0) -> list[Request]:
        """What the generator is asked for one row in round `rnd`: n_samples answers, or k
        options as JSON."""
        s = self.s
        if s.mode == "sample":
            return [
                Request(
                    prompt=row["question"],
                    images=self._images(row),
                    max_new_tokens=s.max_new_tokens,
                    temperature=s.temperature,
                    seed=s.seed + rnd * s.n_samples + j,
                    stop=("\n", "Question:"),
                )
                for j in range(s.n_samples)
            ]
        prompt = s.propose_prompt.format(
            question=row["question"], answer=" / ".join(row["answers"]), k=k
        )
        return [
            Request(
                prompt=prompt + "\n" + schema_prompt(Proposals),
                images=self._images(row),
                max_new_tokens=s.max_new_tokens,
                temperature=s.temperature,
                seed=s.seed + rnd,
                schema=Proposals,
            )
        ]

    def review_request(self, row: Row, option: str) -> Request:
        """What the reviewer is asked about one candidate (greedy, a `Verdict`)."""
        s = self.s
        prompt = s.review_prompt.format(
            question=row["question"], answer=" / ".join(row["answers"]), option=option
        )
        return Request(
            prompt=prompt + "\n" + schema_prompt(Verdict),
            images=self._images(row),
            max_new_tokens=s.max_new_tokens,
            temperature=0.0,
            seed=s.seed,
            schema=Verdict,
        )

    def _candidates(self, rows: list[Row], k: int, rnd: int = 0) -> dict[str, list[str]]:
        s = self.s
        per_row = s.n_samples if s.mode == "sample" else 1
        reqs = [q for r in rows for q in self.propose_requests(r, k, rnd)]
        gens = self.generator.generate(reqs)
        out: dict[str, list[str]] = {}
        for i, r in enumerate(rows):
            right = {normalize_answer(a) for a in r["answers"] if a}
            tally: Counter[str] = Counter()
            first: dict[str, str] = {}
            for g in gens[i * per_row : (i + 1) * per_row]:
                if not g.ok:
                    self.counts[f"propose:{g.error}"] += 1
                    continue
                texts = g.value.options if isinstance(g.value, Proposals) else [g.text or ""]
                for t in texts:
                    opt = read_option(r, t) if s.mode == "sample" else t.strip()
                    if not opt or not normalize_answer(opt):
                        self.counts["off_template" if s.mode == "sample" else "empty"] += 1
                        continue
                    norm = normalize_answer(opt)
                    if norm in right:
                        self.counts["proposed_right_answer"] += 1
                        continue
                    tally[norm] += 1
                    first.setdefault(norm, opt)
            # most often proposed first; ties in the order first seen
            order = sorted(tally, key=lambda n: -tally[n])
            self.counts["duplicate"] += sum(tally.values()) - len(tally)
            self.counts["candidates"] += len(tally)
            out[row_key(r)] = [first[n] for n in order]
        return out

    def _review(self, rows: dict[str, Row], cands: dict[str, list[str]]) -> None:
        """Ask the reviewer about every candidate; drop those it calls right or cannot judge."""
        asked = [(key, opt) for key, opts in cands.items() for opt in opts]
        reqs = [self.review_request(rows[key], opt) for key, opt in asked]
        assert self.reviewer is not None
        rejected: dict[str, set[str]] = {}
        for (key, opt), g in zip(asked, self.reviewer.generate(reqs), strict=True):
            if g.ok and isinstance(g.value, Verdict) and not g.value.right:
                self.counts["review_wrong"] += 1
                continue
            rejected.setdefault(key, set()).add(opt)
            if g.ok:  # judged right: no plug-in or answer space may offer it as wrong
                self.counts["review_right"] += 1
                self._right.setdefault(key, set()).add(normalize_answer(opt))
            else:  # not judged: this plug-in does not offer it, and vouches nothing
                self.counts[f"review:{g.error}"] += 1
                self._unjudged.setdefault(key, set()).add(normalize_answer(opt))
        for key, bad in rejected.items():
            cands[key] = [o for o in cands[key] if o not in bad]


def from_config(cfg: dict[str, Any]) -> ModelDistractors:
    """A plug-in from a config section: `generator`, optional `reviewer` (a generator section
    or `same`), `cache_dir`, and the `Settings` fields."""
    cfg = dict(cfg)
    if "generator" not in cfg:
        raise ValueError("model distractors: the config needs a 'generator' section")
    cache = cfg.pop("cache_dir", None)
    gen = make_generator(cfg.pop("generator"), cache)
    rev_spec = cfg.pop("reviewer", None)
    reviewer = gen if rev_spec == "same" else make_generator(rev_spec, cache) if rev_spec else None
    return ModelDistractors(gen, reviewer, Settings(**cfg))


class FromEnv:
    """The registered `model` plug-in: built on first use from the file `$VLOOM_DISTRACTOR_MODEL`
    names (a task spec string cannot carry a generator section)."""

    def __init__(self) -> None:
        self._impl: ModelDistractors | None = None

    @property
    def impl(self) -> ModelDistractors:
        if self._impl is None:
            from vloom.config import read_yaml

            path = os.environ.get(ENV)
            if not path:
                raise ValueError(
                    f"distractors 'model': set {ENV} to a YAML file with a 'generator' section"
                )
            self._impl = from_config(read_yaml(Path(path)))
        return self._impl

    def propose(self, row: Row, k: int, rng: random.Random) -> list[str]:
        return self.impl.propose(row, k, rng)

    def also_right(self, row: Row, option: str) -> bool:
        return self.impl.also_right(row, option)

    def prepare(self, rows: list[Row], k: int) -> None:
        self.impl.prepare(rows, k)


register_distractors("model", FromEnv())
