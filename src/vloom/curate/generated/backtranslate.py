"""Instruction back-and-forth translation: for each document, the instruction it answers,
then the document rewritten into the response; the pairs curated, then trained on with SFT.

Per document (the run of its paragraphs with the most text within `max_chars`, else its
first cut at a word; its first image, if any, goes with both prompts and opens the user
turn):
1. `instruction_prompt` ({document}) -> the instruction: the first line, cut after its first
   "?" (a model may go on answering it); fewer than `min_words` words is `instruction_invalid`.
2. `response_prompt` ({document}, {instruction}) -> the response (first line); empty is
   `response_invalid`.
Curation drops a pair a generation failed for (`instruction_<reason>` / `response_<reason>`:
invalid_json, refused, timeout, context_overflow, ...), an invalid one, and, for documents
with the world's truth (the scenes the shown text describes in full, else
`common.doc_scenes`), one whose response states a fact that is not true of any of them (`response_contradicts_world`); a response that states
no world fact is kept and counted (`no_facts`).

The output document is the conversation: [image?] instruction, response, with
`metadata.conversation` = [{role: user, text}, {role: assistant, text}], which `vloom
sft-data` reads as a `documents` source; `write_openai_jsonl` writes the same pairs as
OpenAI-messages JSONL (a `chat` source; images as data URLs).

Scoring (`step_stats.backtranslate`): every pair's response facts against the document's
scenes (a fact is true when it is true of one of them), and, when the instruction is one
of the world's questions (shape / place of a colour's object, the count, which colour, a
description), whether the response answers it right (`answers.right|wrong`; `answers.other`
when the instruction is none of them).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from vloom.curate.generated.common import (
    GeneratingStep,
    batched,
    bump,
    clip,
    doc_scenes,
    first_image,
)
from vloom.curate.registry import register
from vloom.doc import Document
from vloom.media import sniff_image
from vloom.ondisk import atomic_write_text
from vloom.synth.factcheck import Count, Fact, Mention, judge, parse_facts, world_scenes
from vloom.synth.world import CELLS, COLOURS, SHAPES, Scene

INSTRUCTION_PROMPT = (
    "Here is a text. Write the question or instruction that it answers.\nText: {document}"
)
RESPONSE_PROMPT = (
    "Text: {document}\nRewrite the text above as the answer to this instruction: {instruction}"
)


def clean_instruction(text: str) -> str:
    line = text.strip().split("\n", 1)[0]
    line = re.split(r"\bAnswer:", line, maxsplit=1)[0].strip()
    if "?" in line:
        line = line[: line.index("?") + 1]
    return re.sub(r"^(Question|Instruction):\s*", "", line).strip()


def clean_response(text: str) -> str:
    line = text.strip().split("\n", 1)[0]
    return re.split(r"\bQuestion:", line, maxsplit=1)[0].strip()


def fit(text: str, max_chars: int) -> str:
    """The run of consecutive paragraphs with the most text that fits in max_chars (a world
    text document's densest part is a scene, not its intro); one paragraph cut at a word when
    none fits."""
    paras = [p.strip() for p in text.split("\n\n") if p.strip()]
    best = ""
    for i in range(len(paras)):
        for j in range(i + 1, len(paras) + 1):
            run = "\n\n".join(paras[i:j])
            if len(run) > max_chars:
                break
            if len(run) > len(best):
                best = run
    return best or clip(text.strip(), max_chars)


def _true_somewhere(f: Fact, scenes: list[Scene]) -> bool:
    return any(judge(f, s) == "true" for s in scenes)


def question_kind(instruction: str) -> tuple[str, str | None]:
    """(kind, colour): which of the world's questions an instruction is (count, shape,
    position, colour, describe) and the colour naming its object; ("other", None) if none."""
    q = instruction.lower()
    colour = next((c for c in COLOURS if re.search(rf"\b{c}\b", q)), None)
    if "how many" in q:
        return "count", None
    if colour and "what shape" in q:
        return "shape", colour
    if colour and "where" in q:
        return "position", colour
    if "colour" in q or "color" in q:
        return "colour", None
    if "describe" in q:
        return "describe", None
    return "other", None


def answers(instruction: str, response: str, scenes: list[Scene]) -> str:
    """right / wrong when the instruction is one of the world's questions, else other."""
    kind, colour = question_kind(instruction)
    facts = parse_facts(response)
    if kind == "count":
        got = [f for f in facts if isinstance(f, Count)]
    elif kind in ("shape", "position"):
        key, vocab = ("shape", SHAPES) if kind == "shape" else ("cell", CELLS)
        got = [
            m
            for m in facts
            if isinstance(m, Mention) and m.colour == colour and getattr(m, key) in vocab
        ]
    elif kind in ("colour", "describe"):
        got = [m for m in facts if isinstance(m, Mention)]
    else:
        return "other"
    return "right" if got and all(_true_somewhere(f, scenes) for f in got) else "wrong"


@register("backtranslate")
class BackTranslate(GeneratingStep):
    """Document -> (instruction, response) pair (module docstring)."""

    keeps_counts = True

    def __init__(
        self,
        generator: dict[str, Any],
        cache_dir: str | None = None,
        batch_size: int = 16,
        max_new_tokens: int = 48,
        seed: int = 0,
        instruction_prompt: str = INSTRUCTION_PROMPT,
        response_prompt: str = RESPONSE_PROMPT,
        max_chars: int = 600,
        min_words: int = 3,
        check_world: bool = True,
    ) -> None:
        super().__init__(generator, cache_dir, batch_size, max_new_tokens, seed)
        self.instruction_prompt, self.response_prompt = instruction_prompt, response_prompt
        self.max_chars, self.min_words, self.check_world = max_chars, min_words, check_world

    def run(
        self, docs: Iterable[Document], rank: int = 0, world_size: int = 1
    ) -> Iterator[Document]:
        for batch in batched(docs, self.batch_size):
            yield from self._batch(batch)

    def _images(self, d: Document) -> tuple[bytes, ...]:
        im = first_image(d)
        return (im,) if im is not None else ()

    def _batch(self, batch: list[Document]) -> Iterator[Document]:
        texts = [fit(d.text, self.max_chars) for d in batch]
        live = [k for k, t in enumerate(texts) if t]
        for _ in range(len(batch) - len(live)):
            self.drop("no_text")
        stop = ("\n",)
        ins = self.generate(
            "instruction",
            [
                self.request(
                    self.instruction_prompt.format(document=texts[k]),
                    self._images(batch[k]),
                    stop=stop,
                )
                for k in live
            ],
        )
        instr: dict[int, str] = {}
        for k, g in zip(live, ins, strict=True):
            if not g.ok:
                self.drop(f"instruction_{g.error}")
            elif len((q := clean_instruction(g.text or "")).split()) < self.min_words:
                self.drop("instruction_invalid")
            else:
                instr[k] = q
        todo = list(instr)
        resp = self.generate(
            "response",
            [
                self.request(
                    self.response_prompt.format(document=texts[k], instruction=instr[k]),
                    self._images(batch[k]),
                    stop=("\n", "Question:"),
                )
                for k in todo
            ],
        )
        for k, g in zip(todo, resp, strict=True):
            d, text = batch[k], texts[k]
            if not g.ok:
                self.drop(f"response_{g.error}")
                continue
            r = clean_response(g.text or "")
            if not r:
                self.drop("response_invalid")
                continue
            if not self._judge(d, instr[k], r, text):
                self.drop("response_contradicts_world")
                continue
            bump(self.tally, ("pairs", "kept"))
            images = list(self._images(d))
            yield Document.from_items(
                d.id,
                [*images, instr[k], r],
                source=d.source,
                url=d.url,
                language=d.language,
                metadata=dict(
                    d.metadata,
                    conversation=[
                        {"role": "user", "text": instr[k]},
                        {"role": "assistant", "text": r},
                    ],
                ),
            )

    def _judge(self, d: Document, instruction: str, response: str, text: str = "") -> bool:
        """Count the pair's scores; False when the response contradicts the world: the
        scenes of the text the prompts showed (`text`) when it names them in full, else the
        document's."""
        truth = doc_scenes(d) if "scene" in d.metadata else world_scenes(text) or doc_scenes(d)
        scenes = list(truth.values()) if self.check_world else []
        if not scenes:
            bump(self.tally, ("pairs", "no_truth"))
            return True
        facts = list(dict.fromkeys(parse_facts(response)))
        bad = [f for f in facts if not _true_somewhere(f, scenes)]
        bump(self.tally, ("pairs", "scored"))
        bump(self.tally, ("instructions", question_kind(instruction)[0]))
        bump(self.tally, ("facts", "stated"), len(facts))
        bump(self.tally, ("facts", "true"), len(facts) - len(bad))
        if not facts:
            bump(self.tally, ("pairs", "no_facts"))
        bump(self.tally, ("answers", answers(instruction, response, scenes)))
        if bad:
            bump(self.tally, ("pairs", "contradicts_world"))
        return not bad


def openai_row(doc: Document) -> dict[str, Any] | None:
    """One back-translated document as an OpenAI-messages row (None: no conversation)."""
    conv = doc.metadata.get("conversation")
    if not isinstance(conv, list) or len(conv) != 2:
        return None
    user: list[dict[str, Any]] = []
    for im in (im for im in doc.images if im is not None):
        kind = sniff_image(im[:16]) or "png"
        url = f"data:image/{kind.lower()};base64,{base64.b64encode(im).decode()}"
        user.append({"type": "image_url", "image_url": {"url": url}})
    user.append({"type": "text", "text": conv[0]["text"]})
    return {
        "id": doc.id,
        "messages": [
            {"role": "user", "content": user},
            {"role": "assistant", "content": conv[1]["text"]},
        ],
    }


def write_openai_jsonl(docs: Iterable[Document], path: str | Path) -> int:
    """The pairs as OpenAI-messages JSONL (what `vloom sft-data` reads as a chat source)."""
    rows = [r for r in map(openai_row, docs) if r is not None]
    atomic_write_text(Path(path), "".join(json.dumps(r) + "\n" for r in rows))
    return len(rows)


def pairs_table(stats: dict[str, Any], dropped: dict[str, int]) -> dict[str, Any]:
    """step_stats.backtranslate + its ledger drops as one row."""
    p, f, a = stats.get("pairs", {}), stats.get("facts", {}), stats.get("answers", {})
    asked = a.get("right", 0) + a.get("wrong", 0)
    return {
        "kept": p.get("kept", 0),
        "dropped": dict(sorted(dropped.items())),
        "scored_pairs": p.get("scored", 0),
        "contradicts_world": p.get("contradicts_world", 0),
        "no_facts": p.get("no_facts", 0),
        "response_facts_true": round(f.get("true", 0) / max(f.get("stated", 0), 1), 3),
        "world_questions": asked,
        "answered_right": round(a.get("right", 0) / max(asked, 1), 3),
        "other_instructions": a.get("other", 0),
        "instruction_kinds": dict(sorted(stats.get("instructions", {}).items())),
    }
