"""Score refinement programs (ProX) against labelled noise: which noise lines they remove,
which clean lines they keep.

The synthetic world labels noise per document (`vloom.synth.noise`: spam pages, foreign
text); ProX also works inside a document, so `labelled_docs` builds a set with noise
labelled per line: clean world text unchanged, the same text framed by boilerplate lines
(menus, offers, footers drawn by `noise.spam_text`), and whole spam and foreign pages. Each
document carries `metadata["noise_lines"]`: the indices of its noise lines over all text
lines in reading order (the indexing `refine`'s `remove_lines` uses).

`score_refined` compares each input with what a program left of it, line by line: a line
is kept when an output line equals it after whitespace is collapsed, or (a `normalize` or
`strip_spans` edited it) when an unmatched output line is at least `FUZZY` alike
(difflib ratio). Shares are weighted by characters: `noise_removed` of the noise characters,
`clean_kept` of the clean ones; `docs_exact` is the share of documents left with exactly
their clean lines (a noise-only document: dropped).
"""

from __future__ import annotations

import difflib
import random
from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any

from vloom.curate.base import Step
from vloom.curate.generated.prox_programs import program_prompt, program_text, text_lines
from vloom.curate.refine import Op, Refine, apply_program, parse_program
from vloom.doc import Document
from vloom.synth.noise import foreign_text, spam_text

FUZZY = 0.8
KINDS = ("clean", "framed", "spam", "foreign")


def _framed(text: str, rng: random.Random) -> tuple[list[str], list[int]]:
    """Clean lines with 1-3 boilerplate lines above and 1-2 below; the noise indices."""
    junk = spam_text(rng).split("\n")
    head = rng.sample(junk[:-1], min(len(junk) - 1, rng.randint(1, 3)))
    foot = [junk[-1]] + ([rng.choice(junk[:-1])] if rng.random() < 0.5 else [])
    body = text.split("\n")
    lines = head + body + foot
    noise = list(range(len(head))) + list(range(len(head) + len(body), len(lines)))
    return lines, noise


def labelled_docs(
    clean: Iterable[Document],
    n: int,
    rng: random.Random,
    shares: dict[str, float] | None = None,
) -> list[Document]:
    """`n` text documents built from clean world documents, noise labelled per line."""
    shares = shares or {"clean": 0.3, "framed": 0.4, "spam": 0.15, "foreign": 0.15}
    texts = [d.text for d in clean if d.text.strip() and not d.metadata.get("defect")]
    if not texts:
        raise ValueError("labelled_docs: no clean text documents to build from")
    kinds = rng.choices(list(shares), weights=list(shares.values()), k=n)
    out = []
    for i, kind in enumerate(kinds):
        if kind == "clean":
            lines, noise = rng.choice(texts).split("\n"), []
        elif kind == "framed":
            lines, noise = _framed(rng.choice(texts), rng)
        elif kind == "spam":
            lines = spam_text(rng).split("\n")
            noise = list(range(len(lines)))
        elif kind == "foreign":
            lines = foreign_text(rng, rng.choice(("fr", "de", "es"))).split("\n")
            noise = list(range(len(lines)))
        else:
            raise ValueError(f"labelled_docs: unknown kind {kind!r} (known: {', '.join(KINDS)})")
        meta = {"defect": kind, "noise_lines": noise}
        out.append(
            Document.from_items(f"prox-{i:05d}", ["\n".join(lines)], source="prox", metadata=meta)
        )
    return out


def _norm(line: str) -> str:
    return " ".join(line.split())


def kept_lines(before: list[str], after: list[str]) -> list[bool]:
    """For each line of `before`, whether it survives in `after` (exact, then fuzzy)."""
    pool = Counter(_norm(x) for x in after if x.strip())
    kept = [False] * len(before)
    for i, line in enumerate(before):
        key = _norm(line)
        if pool[key] > 0:
            pool[key] -= 1
            kept[i] = True
    rest = [x for x, c in pool.items() for _ in range(c)]
    for i, line in enumerate(before):
        if kept[i] or not line.strip() or not rest:
            continue
        sm = difflib.SequenceMatcher(a=_norm(line), autojunk=False)
        best, at = 0.0, -1
        for j, cand in enumerate(rest):
            sm.set_seq2(cand)
            if sm.quick_ratio() >= FUZZY and (r := sm.ratio()) > best:
                best, at = r, j
        if best >= FUZZY:
            kept[i] = True
            rest.pop(at)
    return kept


def score_refined(inputs: list[Document], outputs: dict[str, Document | None]) -> dict[str, Any]:
    """Noise removed and clean text kept, overall and per kind (a missing id: dropped)."""
    chars: dict[str, Counter[str]] = defaultdict(Counter)
    for doc in inputs:
        lines = text_lines(doc)
        noise = set(doc.metadata.get("noise_lines") or ())
        out = outputs.get(doc.id)
        after = text_lines(out) if out is not None else []
        kept = kept_lines(lines, after)
        kind = str(doc.metadata.get("defect") or "clean")
        want = [_norm(x) for i, x in enumerate(lines) if i not in noise and x.strip()]
        exact = (out is None and not want) or (
            out is not None and [_norm(x) for x in after if x.strip()] == want
        )
        for c in (chars["all"], chars[kind]):
            c["docs"] += 1
            c["docs_dropped"] += out is None
            c["docs_exact"] += exact
            for i, line in enumerate(lines):
                w = len(line.strip())
                part = "noise" if i in noise else "clean"
                c[part] += w
                c[part + "_kept"] += w * kept[i]
    report: dict[str, Any] = {}
    for group, c in sorted(chars.items()):
        report[group] = {
            "docs": c["docs"],
            "noise_removed": 1 - c["noise_kept"] / c["noise"] if c["noise"] else None,
            "clean_kept": c["clean_kept"] / c["clean"] if c["clean"] else None,
            "docs_dropped": c["docs_dropped"] / c["docs"],
            "docs_exact": c["docs_exact"] / c["docs"],
        }
    return report


def line_program(doc: Document, program: list[Op]) -> list[Op]:
    """What `program` does to `doc`, restated with line numbers (the form a small model can
    learn to write): drop_doc, remove_lines by index (from the end in the second half), or
    keep_doc."""
    new, reason, _ = apply_program(doc, program)
    if new is None:
        slug = reason.removeprefix("refine_")
        return parse_program(
            [{"op": "drop_doc", "reason": "boilerplate" if slug == "emptied" else slug}]
        )
    before = text_lines(doc)
    gone = [
        i for i, k in enumerate(kept_lines(before, text_lines(new))) if not k and before[i].strip()
    ]
    if not gone:
        return parse_program([{"op": "keep_doc"}])
    # lines in the second half counted from the end: a footer is -1 however long the page
    n = len(before)
    return parse_program(
        [{"op": "remove_lines", "lines": [i if 2 * i < n else i - n for i in gone]}]
    )


def sft_rows(docs: list[Document], rules: Refine, **prompt_kw: Any) -> list[dict[str, Any]]:
    """(document -> rule program, restated by line) pairs in the OpenAI-messages chat layout
    (`vloom sft-data` reads them): the step's own prompt, the program as it should be written."""
    return [
        {
            "messages": [
                {"role": "user", "content": program_prompt(d, **prompt_kw)},
                {
                    "role": "assistant",
                    "content": program_text(line_program(d, rules.program_for(d))),
                },
            ]
        }
        for d in docs
    ]


def run_step(step: Step, docs: list[Document]) -> dict[str, Document | None]:
    """Each input id -> what the step left of it (None: dropped)."""
    from vloom.curate import run_steps

    out, _ = run_steps(docs, [step])
    left = {d.id: d for d in out}
    return {d.id: left.get(d.id) for d in docs}


def table(rows: dict[str, dict[str, Any]]) -> str:
    """Score reports by method as a Markdown table (overall and per kind)."""

    def f(x: Any) -> str:
        return "-" if x is None else f"{x:.3f}"

    head = (
        "| programs | noise removed | clean kept | docs exact | framed: noise removed / clean "
        "kept | spam removed | foreign removed |"
    )
    lines = [head, "|---" * 7 + "|"]
    for name, r in rows.items():
        a, fr = r["all"], r.get("framed", {})
        lines.append(
            f"| {name} | {f(a['noise_removed'])} | {f(a['clean_kept'])} | {f(a['docs_exact'])} | "
            f"{f(fr.get('noise_removed'))} / {f(fr.get('clean_kept'))} | "
            f"{f(r.get('spam', {}).get('noise_removed'))} | "
            f"{f(r.get('foreign', {}).get('noise_removed'))} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    import argparse
    import json
    from pathlib import Path

    from vloom.config import load_curate_config
    from vloom.curate import build_step
    from vloom.doc import list_shards, read_shard

    ap = argparse.ArgumentParser(description="Score refinement programs against labelled noise.")
    ap.add_argument("world", help="the synthetic world's train/ shards (clean text is taken)")
    ap.add_argument("--rules", default="configs/generated/prox_rules.yaml", help="refine rules")
    ap.add_argument(
        "--config",
        action="append",
        default=[],
        help="a curate YAML whose first "
        "step writes programs (prox_program); repeat to compare several",
    )
    ap.add_argument("--n", type=int, default=300, help="labelled documents scored")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sft-out", help="write (document -> rule program) chat pairs here (JSONL)")
    ap.add_argument(
        "--sft-n",
        type=int,
        default=2000,
        help="pairs written (from clean documents the scored ones are not built from)",
    )
    ap.add_argument("--out", help="write the report as JSON here")
    args = ap.parse_args(argv)

    clean = [d for s in list_shards(args.world) for d in read_shard(s) if isinstance(d, Document)]
    # scored documents from every other clean document, SFT pairs from the rest
    docs = labelled_docs(clean[0::2], args.n, random.Random(args.seed))
    rules = build_step(load_curate_config(args.rules).steps[0])
    assert isinstance(rules, Refine), f"{args.rules}: the first step must be refine"
    report: dict[str, Any] = {}
    counts: dict[str, Any] = {}
    if docs:  # --n 0: only the SFT pairs
        report["none (input)"] = score_refined(docs, {d.id: d for d in docs})
        report["rule programs"] = score_refined(docs, run_step(rules, docs))
        for path in args.config:
            step = build_step(load_curate_config(path).steps[0])
            report[f"model: {Path(path).stem}"] = score_refined(docs, run_step(step, docs))
            counts[Path(path).stem] = step.stats()
        print(table(report))
        for name, c in counts.items():
            print(f"{name}: {json.dumps(c)}")
    if args.sft_out:
        train = labelled_docs(clean[1::2], args.sft_n, random.Random(args.seed + 1))
        kw = {}
        if args.config:  # the first model config's prompt settings
            p = load_curate_config(args.config[0]).steps[0].params()
            kw = {k: p[k] for k in ("max_lines", "max_line_chars") if k in p}
            kw["with_schema"] = p.get("schema_in_prompt", True)
            if "prompt" in p:
                kw["template"] = p["prompt"]
        rows = sft_rows(train, rules, **kw)
        Path(args.sft_out).write_text("".join(json.dumps(r) + "\n" for r in rows))
        print(f"wrote {len(rows)} SFT pairs to {args.sft_out}")
    if args.out:
        Path(args.out).write_text(json.dumps({"report": report, "counts": counts}, indent=1) + "\n")


if __name__ == "__main__":
    main()
