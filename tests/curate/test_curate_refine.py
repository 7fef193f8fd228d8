import json

import pytest
from curate_world import small_world
from shapes import clean_docs

from vloom.config import CurateConfig, StepConfig
from vloom.curate import CurateError, build_step, run_curate, run_steps
from vloom.curate.refine import apply_program, parse_program
from vloom.doc import Document, read_documents

PNG = clean_docs(1, seed=1, image_share=1.0)[0].images[1]


def doc(*items, id="d") -> Document:
    return Document.from_items(id, list(items), source="test")


def run(program, d):
    return apply_program(d, parse_program(program))


def test_remove_lines_by_index_across_text_items_and_by_pattern():
    d = doc("l0\nl1\nl2", PNG, "l3\nl4")
    new, _, applied = run([{"op": "remove_lines", "lines": [1, -1]}], d)
    assert new.texts == ["l0\nl2", None, "l3"] and new.images[1] == PNG
    assert applied["lines_removed"] == 2
    new, _, _ = run([{"op": "remove_lines", "pattern": r"^l[34]$"}], d)
    assert new.texts == ["l0\nl1\nl2", None] and new.images == [None, PNG]  # emptied item removed


def test_normalize_modes():
    d = doc("Cafe\u0301  colour\t\tcolour \n\n\n\nend  ")
    assert run([{"op": "normalize", "unicode": "NFC"}], d)[0].texts[0].startswith("Café ")
    assert "color  color" in run([{"op": "normalize", "find": "colour", "replace": "color"}], d)[
        0
    ].texts[0].replace("\t\t", "  ")
    regex = [{"op": "normalize", "find": r"colou?r", "replace": "C", "regex": True}]
    assert run(regex, d)[0].texts[0].count("C") == 3
    ws = run([{"op": "normalize", "whitespace": True}], d)[0].texts[0]
    assert ws == "Cafe\u0301 colour colour\n\nend"


def test_strip_spans_drop_keep_and_emptied():
    d = doc("Intro.\n<nav>Home | Shop\nCart</nav>\nBody text.", PNG)
    new, _, _ = run([{"op": "strip_spans", "pattern": r"<nav>.*?</nav>\n"}], d)
    assert new.texts[0] == "Intro.\nBody text." and new.images[1] == PNG
    assert run([{"op": "drop_doc", "reason": "menu"}], d)[:2] == (None, "refine_menu")
    # keep_doc stops the program: the later drop never runs
    assert run([{"op": "keep_doc"}, {"op": "drop_doc"}], d)[0] is d
    # all text stripped: the images remain, so the document stays
    new, _, _ = run([{"op": "strip_spans", "pattern": ".*"}], d)
    assert new.texts == [None] and new.images == [PNG]
    assert run([{"op": "strip_spans", "pattern": ".*"}], doc("only text"))[:2] == (
        None,
        "refine_emptied",
    )


@pytest.mark.parametrize(
    "program, words",
    [
        ([{"op": "explode"}], ["unknown op", "drop_doc"]),
        ([{"op": "remove_lines"}], ["exactly one of 'lines' or 'pattern'"]),
        ([{"op": "remove_lines", "pattern": "("}], ["bad regex"]),
        ([{"op": "normalize", "find": "a", "whitespace": True}], ["exactly one of"]),
        ([{"op": "drop_doc", "why": "x"}], ["why"]),
        ([{"op": "strip_spans", "pattern": "[a-"}], ["bad regex"]),
    ],
)
def test_bad_ops_are_one_line_errors(program, words):
    step = {"name": "refine", "rules": [{"program": program}]}
    with pytest.raises(CurateError) as e:
        build_step(StepConfig(**step))
    msg = str(e.value)
    assert "\n" not in msg and "rules[0].program[0" in msg
    assert all(w in msg for w in words), msg


def test_program_sources_must_be_one():
    with pytest.raises(CurateError, match="exactly one program source"):
        build_step(StepConfig(name="refine"))
    with pytest.raises(CurateError, match="cannot import"):
        build_step(StepConfig(name="refine", function="no_such_module_xyz:f"))
    with pytest.raises(CurateError, match="has no function"):
        build_step(StepConfig(name="refine", function="refine_plugin:nope"))


SPAM_RULES = [
    {"match": r"Copyright \d{4}", "program": [{"op": "remove_lines", "pattern": "^Copyright"}]},
    {"match": r"^• ", "program": [{"op": "drop_doc", "reason": "menu"}]},
    {"program": [{"op": "normalize", "whitespace": True}]},
]


def test_rules_on_the_synthetic_world_with_program_log(tmp_path):
    train = small_world(tmp_path / "w", spam=0.3, shard_size=60)
    docs = list(read_documents(train))
    step = {"name": "refine", "rules": SPAM_RULES, "log_programs": True}
    out = tmp_path / "out"
    led = run_curate(train, out, CurateConfig(steps=[StepConfig(**step)]), quiet=True)

    menus = [d for d in docs if any(line.startswith("• ") for line in d.text.splitlines())]
    assert menus and led.dropped["refine"] == {"refine_menu": len(menus)}
    kept = list(read_documents(out))
    assert led.kept == len(kept) == len(docs) - len(menus)
    assert not any("Copyright 2024" in d.text for d in kept)
    assert sum(d.n_images for d in kept) == sum(d.n_images for d in docs)  # images untouched
    stats = led.extra["step_stats"]["refine"]["ops"]
    n_copyright = sum("Copyright 2024" in d.text for d in docs)
    assert stats["remove_lines"] == n_copyright and stats["drop_doc"] == len(menus)
    assert stats["normalize"] == len(docs) - len(menus)
    # the per-document programs, one JSONL file per shard, in the output directory
    logged = [
        json.loads(line)
        for f in sorted((out / "refine_programs").glob("*.jsonl"))
        for line in f.read_text().splitlines()
    ]
    assert len(logged) == len(docs)
    by_id = {r["id"]: r["program"] for r in logged}
    assert by_id[menus[0].id][-2] == {"op": "drop_doc", "reason": "menu"}
    funnel = led.extra["funnel"]
    assert funnel[0]["text_tokens"] > funnel[1]["text_tokens"] > 0


def test_plugin_function_writes_programs(tmp_path):
    docs = [
        doc("Buy now $$$ cheap", id="s"),
        doc("Figure 1.", PNG, "Figure 2. A red circle", id="f"),
    ]
    docs.append(doc("Plain text stays.", id="p"))
    kept, led = run_steps(
        docs, [build_step(StepConfig(name="refine", function="refine_plugin:program"))]
    )
    assert [d.id for d in kept] == ["f", "p"]
    assert kept[0].texts == [None, "A red circle"] and kept[0].images == [PNG, None]
    assert kept[1] is docs[2]
    assert led.dropped["refine"] == {"refine_price_spam": 1}
    bad = build_step(StepConfig(name="refine", function="refine_plugin:bad_program"))
    with pytest.raises(CurateError) as e:
        run_steps(docs, [bad])
    assert "refine_plugin:bad_program" in str(e.value) and "unknown op" in str(e.value)
