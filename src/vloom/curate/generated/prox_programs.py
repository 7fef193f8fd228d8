"""ProX with a model: a generator writes each document's refinement program, `refine` runs it.

The program is the JSON op list `vloom.curate.refine` executes (its docstring lists the ops);
the generator is asked for `{"ops": [...]}` with `Program` as the structured-output schema,
which is refine's own op models, so a program that validates is one refine can run. The
prompt shows the document's text lines numbered as `remove_lines` counts them (long lines
cut, at most `max_lines`); `program_prompt` and `program_text` make the (document -> program)
pairs a generator can be fine-tuned on (`vloom.curate.generated.prox_score --sft-out`).

A generation that fails (invalid JSON, a program that does not validate, a refusal, a
timeout...) leaves its document as it was (or drops it, `on_invalid: drop`), counted by
reason under `step_stats.prox_program.programs`; the run goes on. Valid programs are counted
`valid` (`empty` when they have no op) and their ops as `refine` counts them. Batching, the
generator and the cache are `common.GeneratingStep`'s.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from vloom.curate.base import CurateError
from vloom.curate.generated.common import GeneratingStep, batched, bump
from vloom.curate.refine import Op, apply_program, write_program_log
from vloom.curate.registry import register
from vloom.doc import Document
from vloom.generate.generator import Request, schema_prompt

PROMPT = (
    "Clean this web document for pre-training. Write its refinement program: drop_doc "
    "(with a reason) for a page not worth keeping, remove_lines (line numbers, or a regex "
    "pattern) for menus, adverts and footers, keep_doc when it is clean.\n"
    "Document:\n{document}\n"
)


class Program(BaseModel):
    """A refinement program as a model writes it: refine's ops, validated as refine does."""

    model_config = ConfigDict(extra="forbid")
    ops: list[Op] = Field(default_factory=list, description="operations, applied in order")


def text_lines(doc: Document) -> list[str]:
    """All text lines in reading order: the line indexing of `refine`'s remove_lines."""
    return [line for t in doc.texts if t is not None for line in t.split("\n")]


def numbered_lines(doc: Document, max_lines: int = 64, max_line_chars: int = 200) -> str:
    """The text lines as `remove_lines` indexes them, each prefixed with its number."""
    lines = text_lines(doc)
    shown = [f"{i}: {line[:max_line_chars]}" for i, line in enumerate(lines[:max_lines])]
    if len(lines) > max_lines:
        shown.append(f"({len(lines) - max_lines} more lines)")
    return "\n".join(shown)


def program_prompt(
    doc: Document,
    template: str = PROMPT,
    max_lines: int = 64,
    max_line_chars: int = 200,
    with_schema: bool = True,
) -> str:
    """The prompt that asks for `doc`'s program (the step's and the SFT pairs' prompt)."""
    text = template.format(document=numbered_lines(doc, max_lines, max_line_chars))
    return text + (schema_prompt(Program) if with_schema else "")


def program_text(ops: list[Op]) -> str:
    """A program as the generator should write it: compact JSON, defaults left out."""
    return json.dumps({"ops": [op.model_dump(exclude_defaults=True) for op in ops]})


@register("prox_program")
class ProxProgram(GeneratingStep):
    """Refine each document with the program a generator writes for it (module docstring).

    `generator`: a GeneratorConfig section (`{backend: vloom, path: CKPT}`); the cache (default
    `generations/` beside the run's work dir) makes a rerun reuse every valid program. Counts:
    `generation.program.<outcome>`, `programs.<valid|empty|reason>`, `ops.<op>` as refine's.
    """

    def __init__(
        self,
        generator: dict[str, Any],
        cache_dir: str | None = None,
        batch_size: int = 16,
        max_new_tokens: int = 256,
        seed: int = 0,
        temperature: float = 0.0,
        prompt: str = PROMPT,
        schema_in_prompt: bool = True,
        max_lines: int = 64,
        max_line_chars: int = 200,
        on_invalid: Literal["keep", "drop"] = "keep",
        log_programs: bool = False,
        log_dir: str | None = None,
    ) -> None:
        super().__init__(generator, cache_dir, batch_size, max_new_tokens, seed)
        if "{document}" not in prompt:
            raise CurateError("step 'prox_program': 'prompt' must hold a {document} placeholder")
        self.temperature = temperature
        self.prompt, self.schema_in_prompt = prompt, schema_in_prompt
        self.max_lines, self.max_line_chars = max_lines, max_line_chars
        self.on_invalid = on_invalid
        self.log_programs, self.log_dir = log_programs, log_dir
        self.logged: list[dict[str, Any]] = []  # in memory when no log_dir (run_steps)

    @classmethod
    def prepare(cls, params: dict[str, Any], work_dir: Path) -> dict[str, Any]:
        params = super().prepare(params, work_dir)
        if params.get("log_programs") and not params.get("log_dir"):
            params = dict(params, log_dir=str(work_dir.parent / "prox_programs"))
        return params

    def program_request(self, doc: Document) -> Request:
        prompt = program_prompt(
            doc, self.prompt, self.max_lines, self.max_line_chars, self.schema_in_prompt
        )
        return self.request(prompt, temperature=self.temperature, schema=Program)

    def run(
        self, docs: Iterable[Document], rank: int = 0, world_size: int = 1
    ) -> Iterator[Document]:
        log: list[dict[str, Any]] = []
        for batch in batched(docs, self.batch_size):
            gens = self.generate("program", [self.program_request(d) for d in batch])
            for doc, g in zip(batch, gens, strict=True):
                if not g.ok or not isinstance(g.value, Program):
                    bump(self.tally, ("programs", g.error or "backend_error"))
                    if self.on_invalid == "drop":
                        self.drop(f"prox_{g.error}")
                    else:
                        yield doc
                    continue
                ops = g.value.ops
                bump(self.tally, ("programs", "valid" if ops else "empty"))
                if self.log_programs:
                    log.append({"id": doc.id, "program": json.loads(program_text(ops))})
                new, reason, applied = apply_program(doc, ops)
                for k, v in applied.items():
                    bump(self.tally, ("ops", k), v)
                if new is None:
                    self.drop(reason)
                    continue
                if new is not doc:
                    bump(self.tally, ("ops", "docs_changed"))
                yield new
        if self.log_programs:
            write_program_log(self.log_dir, self.logged, log, rank)
