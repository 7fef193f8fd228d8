"""ProX-style refinement: small per-document programs of operations, executed at scale.

A program is a list of operations, each a JSON-able dict with an "op" key:

    {"op": "drop_doc", "reason": "boilerplate"}        drop the document (reason refine_<reason>)
    {"op": "keep_doc"}                                 stop here, keep the document as it is
    {"op": "remove_lines", "lines": [0, -1]}           by index over all text lines, in reading
    {"op": "remove_lines", "pattern": "^Copyright"}    order (negative counts from the end), or
                                                       lines a regex finds (re.search)
    {"op": "normalize", "find": "colour", "replace": "color"}            plain string replace
    {"op": "normalize", "find": "\\s+([,.])", "replace": "\\1", "regex": true}  regex substitution
    {"op": "normalize", "unicode": "NFC"}              Unicode normal form (NFC/NFKC/NFD/NFKD)
    {"op": "normalize", "whitespace": true}            runs of spaces/tabs -> one space, lines
                                                       stripped, 3+ newlines -> a blank line
    {"op": "strip_spans", "pattern": "<nav>.*?</nav>"} remove every match (DOTALL|MULTILINE)

Operations apply to text items only (images are untouched); a text item left empty (only
whitespace) is removed with its slot, and a document left with no items is dropped
(`refine_emptied`). Programs come from `rules` in the config (`match` regex -> program;
every rule whose regex finds the document's text contributes its ops, in order; a rule
without `match` applies to all), or from a plug-in `function` "module:function" that
takes a Document and returns a program (a list of op dicts, or None for keep_doc),
e.g. a small model that writes programs as ProX does. A bad op is a one-line error.
"""

from __future__ import annotations

import importlib
import json
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from vloom import ondisk
from vloom.curate.base import CurateError, Step
from vloom.curate.registry import register
from vloom.doc import Document


class _Op(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DropDoc(_Op):
    op: Literal["drop_doc"]
    reason: str = Field("drop_doc", pattern=r"^[A-Za-z0-9_]+$", description="ledger reason slug")


class KeepDoc(_Op):
    op: Literal["keep_doc"]


class RemoveLines(_Op):
    op: Literal["remove_lines"]
    lines: list[int] | None = Field(None, description="line indices over the document's text")
    pattern: str | None = Field(None, description="remove lines this regex finds")

    @model_validator(mode="after")
    def _one(self) -> RemoveLines:
        if (self.lines is None) == (self.pattern is None):
            raise ValueError("remove_lines needs exactly one of 'lines' or 'pattern'")
        if self.pattern is not None:
            _compile(self.pattern)
        return self


class Normalize(_Op):
    op: Literal["normalize"]
    find: str | None = None
    replace: str = ""
    regex: bool = False
    unicode: Literal["NFC", "NFKC", "NFD", "NFKD"] | None = None
    whitespace: bool = False

    @model_validator(mode="after")
    def _one(self) -> Normalize:
        chosen = (self.find is not None) + (self.unicode is not None) + self.whitespace
        if chosen != 1:
            raise ValueError("normalize needs exactly one of 'find', 'unicode' or 'whitespace'")
        if self.find == "":
            raise ValueError("normalize: 'find' is empty")
        if self.regex and self.find is not None:
            _compile(self.find)
        return self


class StripSpans(_Op):
    op: Literal["strip_spans"]
    pattern: str

    @model_validator(mode="after")
    def _compiles(self) -> StripSpans:
        _compile(self.pattern, re.DOTALL | re.MULTILINE)
        return self


Op = Annotated[DropDoc | KeepDoc | RemoveLines | Normalize | StripSpans, Field(discriminator="op")]
OP_NAMES = ("drop_doc", "keep_doc", "remove_lines", "normalize", "strip_spans")
_PROGRAM = TypeAdapter(list[Op])


def _compile(pattern: str, flags: int = 0) -> re.Pattern[str]:
    try:
        return re.compile(pattern, flags)
    except re.error as e:
        raise ValueError(f"bad regex {pattern!r}: {e}") from None


def parse_program(raw: Any, where: str = "program") -> list[Op]:
    """Validate a program (a list of op dicts); a one-line CurateError names the bad op."""
    if raw is None:
        return []
    if isinstance(raw, dict):
        raw = [raw]
    try:
        return _PROGRAM.validate_python(raw)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(x) for x in err["loc"] if not str(x).startswith("function-"))
        msg = err["msg"]
        if err["type"] == "union_tag_invalid":
            msg = f"unknown op (known: {', '.join(OP_NAMES)})"
        raise CurateError(f"{where}[{loc}]: {msg}") from None


class Rule(BaseModel):
    """`match` (a regex searched in the document's text; None = every document) -> program."""

    model_config = ConfigDict(extra="forbid")
    match: str | None = None
    program: list[dict[str, Any]]


# ---- the interpreter ----

_HSPACE = re.compile(r"[ \t\f\v\u00a0]+")
_BLANKS = re.compile(r"\n{3,}")
_regex_cache: dict[tuple[str, int], re.Pattern[str]] = {}


def _re(pattern: str, flags: int = 0) -> re.Pattern[str]:
    key = (pattern, flags)
    if key not in _regex_cache:
        _regex_cache[key] = re.compile(pattern, flags)
    return _regex_cache[key]


def _remove_lines(texts: list[str | None], op: RemoveLines) -> int:
    """Remove lines from the text items in place; returns how many went."""
    slots = [(i, t.split("\n")) for i, t in enumerate(texts) if t is not None]
    total = sum(len(lines) for _, lines in slots)
    if op.lines is not None:
        drop = {j if j >= 0 else total + j for j in op.lines}
        drop = {j for j in drop if 0 <= j < total}
    else:
        rx = _re(op.pattern or "")
        drop = set()
        j = 0
        for _, lines in slots:
            for line in lines:
                if rx.search(line):
                    drop.add(j)
                j += 1
    if not drop:
        return 0
    j = 0
    for i, lines in slots:
        kept = [line for k, line in enumerate(lines, start=j) if k not in drop]
        j += len(lines)
        texts[i] = "\n".join(kept)
    return len(drop)


def _normalize(text: str, op: Normalize) -> str:
    if op.unicode is not None:
        return unicodedata.normalize(op.unicode, text)
    if op.whitespace:
        lines = [_HSPACE.sub(" ", line).strip() for line in text.split("\n")]
        return _BLANKS.sub("\n\n", "\n".join(lines)).strip()
    if op.regex:
        return _re(op.find or "").sub(op.replace, text)
    return text.replace(op.find or "", op.replace)


def apply_program(doc: Document, program: list[Op]) -> tuple[Document | None, str, Counter[str]]:
    """Run a program on one document: (refined doc or None, drop reason, ops applied)."""
    texts = list(doc.texts)
    applied: Counter[str] = Counter()
    for op in program:
        applied[op.op] += 1
        if isinstance(op, DropDoc):
            return None, f"refine_{op.reason}", applied
        if isinstance(op, KeepDoc):
            break
        if isinstance(op, RemoveLines):
            applied["lines_removed"] += _remove_lines(texts, op)
        elif isinstance(op, Normalize):
            texts = [_normalize(t, op) if t is not None else None for t in texts]
        elif isinstance(op, StripSpans):
            rx = _re(op.pattern, re.DOTALL | re.MULTILINE)
            texts = [rx.sub("", t) if t is not None else None for t in texts]
    # an emptied text item goes with its slot; images stay where they were
    keep = [i for i, t in enumerate(texts) if t is None or t.strip()]
    if not keep:
        return None, "refine_emptied", applied
    if len(keep) == len(texts) and texts == doc.texts:
        return doc, "", applied
    new = Document(
        id=doc.id,
        texts=[texts[i] for i in keep],
        images=[doc.images[i] for i in keep],
        source=doc.source,
        url=doc.url,
        language=doc.language,
        metadata=doc.metadata,
    )
    applied["items_removed"] += len(texts) - len(keep)
    return new, "", applied


def load_function(spec: str) -> Callable[[Document], Any]:
    """Import a "module:function" plug-in; a one-line CurateError when it is not there."""
    mod_name, _, fn_name = spec.partition(":")
    if not mod_name or not fn_name:
        raise CurateError(f"function {spec!r}: expected 'module:function'")
    try:
        mod = importlib.import_module(mod_name)
    except ImportError as e:
        raise CurateError(f"function {spec!r}: cannot import {mod_name!r} ({e})") from None
    fn = getattr(mod, fn_name, None)
    if not callable(fn):
        raise CurateError(f"function {spec!r}: {mod_name} has no function {fn_name!r}")
    return fn


@register("refine")
class Refine(Step):
    """Apply a refinement program to each document (ProX); programs from rules or a plug-in.

    Stats in the ledger (`step_stats.refine`): how often each op ran, lines and items
    removed, documents changed. With `log_programs`, each shard writes the program it ran
    per document (id, program) as JSONL under `<out>/refine_programs/`.
    """

    def __init__(
        self,
        rules: list[Rule] | None = None,
        function: str | None = None,
        log_programs: bool = False,
        log_dir: str | None = None,
    ) -> None:
        super().__init__()
        if (rules is None) == (function is None):
            raise CurateError("give exactly one program source: 'rules' or 'function'")
        self.rules = [
            (
                _re(r.match) if r.match is not None else None,
                parse_program(r.program, f"rules[{i}].program"),
            )
            for i, r in enumerate(
                Rule.model_validate(r) if isinstance(r, dict) else r for r in rules or []
            )
        ]
        self.function = function
        self._fn = load_function(function) if function else None
        self.log_programs = log_programs
        self.log_dir = log_dir
        self.applied: Counter[str] = Counter()
        self.logged: list[dict[str, Any]] = []  # in memory when no log_dir (run_steps)

    @classmethod
    def prepare(cls, params: dict[str, Any], work_dir: Path) -> dict[str, Any]:
        if params.get("log_programs") and not params.get("log_dir"):
            params = dict(params, log_dir=str(work_dir.parent / "refine_programs"))
        return params

    def program_for(self, doc: Document) -> list[Op]:
        if self._fn is not None:
            raw = self._fn(doc)
            if raw is not None and not isinstance(raw, list | dict):
                raise CurateError(
                    f"refine: function {self.function!r} returned {type(raw).__name__} for "
                    f"document {doc.id!r}; expected a list of ops or None"
                )
            ops = raw if isinstance(raw, list) else [raw] if raw else []
            ops = [o.model_dump() if isinstance(o, BaseModel) else o for o in ops]
            return parse_program(ops, f"refine: {self.function}({doc.id!r}) returned program")
        text = doc.text
        out: list[Op] = []
        for rx, program in self.rules:
            if rx is None or rx.search(text):
                out.extend(program)
        return out

    def stats(self) -> dict[str, Any]:
        return {"ops": dict(sorted(self.applied.items()))}

    def run(
        self, docs: Iterable[Document], rank: int = 0, world_size: int = 1
    ) -> Iterator[Document]:
        log: list[dict[str, Any]] = []
        for doc in docs:
            program = self.program_for(doc)
            new, reason, applied = apply_program(doc, program)
            self.applied.update(applied)
            if self.log_programs and program:
                log.append(
                    {
                        "id": doc.id,
                        "program": [op.model_dump(exclude_defaults=True) for op in program],
                    }
                )
            if new is None:
                self.drop(reason)
                continue
            if new is not doc:
                self.applied["docs_changed"] += 1
            yield new
        if self.log_programs:
            write_program_log(self.log_dir, self.logged, log, rank)


def write_program_log(
    log_dir: str | None, logged: list[dict[str, Any]], log: list[dict[str, Any]], rank: int
) -> None:
    """A worker's programs as `programs-<rank>.jsonl` in log_dir, or kept in `logged` (in
    memory, run_steps) when there is no log_dir."""
    if log_dir is None:
        logged.extend(log)
        return
    path = Path(log_dir) / f"programs-{rank:05d}.jsonl"
    ondisk.atomic_write_text(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in log))
