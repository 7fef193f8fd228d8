"""Model-written distractors (AutoConverter) through a real tiny vloom checkpoint."""

from __future__ import annotations

import json

import pytest

from vloom.evaluate.convert import convert_open_to_mc, registered_distractors
from vloom.evaluate.distractor_score import score_plugins, uniquely_right
from vloom.evaluate.metrics import normalize_answer
from vloom.evaluate.model_distractors import ENV, ModelDistractors, Settings, read_option
from vloom.evaluate.tasks import get_task
from vloom.evaluate.tasks.data import read_table_rows
from vloom.generate.cache import GenerationCache
from vloom.generate.generator import make_generator, request_key
from vloom.synth.answers import WORLD


def _rows(tiny_data, template=True):
    cols = ("id", "image", "question", "answers", "qtype", "template", "scene")
    rows = read_table_rows(tiny_data["eval"] / "vqa_open.parquet", cols, None)
    # without the answer template a random model's text is the option itself
    return rows if template else [{**r, "template": None} for r in rows]


def _gen(ckpt, cache=None):
    return make_generator({"backend": "vloom", "path": str(ckpt), "device": "cpu"}, cache)


def _one_right(r):
    listed = {normalize_answer(a) for a in r["answers"]}
    return [i for i, o in enumerate(r["options"]) if normalize_answer(o) in listed] == [r["answer"]]


def test_read_option_takes_the_template_slot():
    row = {"template": "The green object is a {}."}
    assert read_option(row, " The green object is a circle.") == "circle"
    assert read_option(row, "The green object is a big circle") == "big circle"
    assert read_option(row, "The red object is a circle.") is None  # off the template
    assert read_option({"template": None}, "purple.") == "purple"


def test_sampled_answers_become_options_and_a_rerun_reads_the_cache(rand_ckpt, tiny_data, tmp_path):
    rows = _rows(tiny_data, template=False)
    s = Settings(n_samples=3, max_new_tokens=4, seed=1)
    plugin = ModelDistractors(_gen(rand_ckpt, tmp_path), settings=s)
    mc, stats = convert_open_to_mc(rows, 4, plugin, seed=2)
    assert stats["distractors_from_generator"] > 0
    assert all(_one_right(r) and len({normalize_answer(o) for o in r["options"]}) == 4 for r in mc)
    c = plugin.counts
    assert plugin.generator.counts["generated"] == len(rows) * 3
    # every sampled answer is accounted for: a right answer, empty, a repeat or a candidate
    assert (
        c["proposed_right_answer"] + c["empty"] + c["duplicate"] + c["candidates"] == len(rows) * 3
    )
    assert c["offered"] == c["candidates"]  # no reviewer
    again = ModelDistractors(_gen(rand_ckpt, tmp_path), settings=s)
    assert convert_open_to_mc(rows, 4, again, seed=2) == (mc, stats)
    assert again.generator.counts == {"cache_hit": len(rows) * 3}


def test_a_reviewer_that_cannot_judge_rejects_every_candidate(rand_ckpt, tiny_data):
    rows = _rows(tiny_data, template=False)
    gen = _gen(rand_ckpt)
    plugin = ModelDistractors(gen, gen, Settings(n_samples=2, max_new_tokens=4))
    mc, stats = convert_open_to_mc(rows, 4, plugin, seed=0)
    c = plugin.counts
    failed = sum(v for k, v in c.items() if k.startswith("review:"))
    assert c["candidates"] > 0 and failed == c["candidates"] and c["offered"] == 0
    assert stats["distractors_from_generator"] == 0
    assert all(_one_right(r) for r in mc)  # the set's own answers filled in
    # not offered, but not vouched right either: the set's own answers may still use it
    row = next(r for r in rows if plugin._unjudged.get(r["id"]))
    cand = next(iter(plugin._unjudged[row["id"]]))
    assert cand not in plugin.propose(row, 3, None) and not plugin.also_right(row, cand)


def test_reviewer_verdicts_decide(rand_ckpt, tiny_data, tmp_path):
    # A reviewer's earlier verdicts, as its cache holds them: "right" rejects, "wrong" keeps.
    rows = [r for r in _rows(tiny_data, template=False) if r["qtype"] == "colour"][:1]
    gen = _gen(rand_ckpt)
    first = ModelDistractors(gen, settings=Settings(n_samples=6, max_new_tokens=4))
    first.prepare(rows, 3)
    cands = first.propose(rows[0], 3, None)
    assert len(cands) >= 2
    reviewer = _gen(rand_ckpt, tmp_path)
    plugin = ModelDistractors(gen, reviewer, Settings(n_samples=6, max_new_tokens=4))
    cache = GenerationCache(tmp_path)
    for i, opt in enumerate(cands):
        key = request_key(reviewer.backend.identity(), plugin.review_request(rows[0], opt))
        cache.put(key, {"text": json.dumps({"right": i == 0})})
    kept = plugin.propose(rows[0], 3, None)
    assert kept == cands[1:] and plugin.also_right(rows[0], cands[0])
    assert plugin.counts["review_right"] == 1 and plugin.counts["review_wrong"] == len(cands) - 1


def test_failed_json_proposals_are_counted_and_rows_fall_back(rand_ckpt, tiny_data):
    rows = _rows(tiny_data)
    plugin = ModelDistractors(_gen(rand_ckpt), settings=Settings(mode="json", max_new_tokens=8))
    mc, stats = convert_open_to_mc(rows, 4, plugin, seed=0)
    failed = sum(v for k, v in plugin.counts.items() if k.startswith("propose:"))
    assert failed + plugin.counts["empty"] + plugin.counts["candidates"] >= len(rows) > 0
    assert failed > 0  # a random model writes no valid JSON (or overflows its context)
    kept_or_dropped = len(mc) + stats.get("too_few_distinct_distractors", 0)
    assert kept_or_dropped == len(rows)


def test_registered_model_plugin_in_the_converted_task(rand_ckpt, rand_ctx, tmp_path, monkeypatch):
    plugin = registered_distractors("model")
    monkeypatch.setattr(plugin, "_impl", None)
    monkeypatch.delenv(ENV, raising=False)
    with pytest.raises(ValueError, match=ENV):
        plugin.propose({"question": "q", "answers": ["a"]}, 3, None)
    cfg = tmp_path / "model.yaml"
    cfg.write_text(
        f"generator: {{backend: vloom, path: {rand_ckpt}, device: cpu}}\n"
        "n_samples: 2\nmax_new_tokens: 4\n"
    )
    monkeypatch.setenv(ENV, str(cfg))
    out = get_task("vqa_mc_converted")(rand_ctx, distractors="model")
    assert 0 <= out["accuracy"] <= 1 and "distractors_from_generator" in out
    n_rows = len(_rows_of(rand_ctx))
    assert plugin.impl.generator.counts["generated"] == n_rows * 2  # one batched prepare


def _rows_of(ctx):
    from vloom.evaluate.tasks.vqa_open import read_open_rows

    return read_open_rows(ctx, None)


def test_score_plugins_checks_truth_and_compares_on_common_rows(tiny_data):
    rows = _rows(tiny_data)
    answer_first = lambda mc: [0] * len(mc)  # noqa: E731  (a fixed "model": always option 0)
    report = score_plugins(rows, {"world": WORLD, "none": None}, answer_first, WORLD)
    assert report["world"]["kept"] == len(rows) and report["world"]["unique"] == 1.0
    assert report["world"]["n_common"] == report["none"]["n_common"] <= report["none"]["kept"]
    bad = {**convert_open_to_mc(rows, 4, WORLD)[0][0]}
    bad["options"] = [bad["answers"][0]] * 4  # every option right: not uniquely right
    assert not uniquely_right(bad, WORLD)


def test_the_score_command_prints_every_plugin(rand_ckpt, tiny_data, tmp_path, capsys):
    from vloom.evaluate.distractor_score import main

    cfg = tmp_path / "model.yaml"
    cfg.write_text(
        f"generator: {{backend: vloom, path: {rand_ckpt}, device: cpu}}\n"
        "reviewer: same\nn_samples: 2\nmax_new_tokens: 4\n"
    )
    out = tmp_path / "report.json"
    main(
        [str(rand_ckpt), str(tiny_data["eval"]), "--config", str(cfg), "--n", "10"]
        + ["--out", str(out)]
    )
    report = json.loads(out.read_text())
    assert list(report) == ["answer space only", "vocabulary (world)", "model", "model + review"]
    assert report["vocabulary (world)"]["unique"] == 1.0
    assert report["model"]["counts"]["candidates"] >= report["model + review"]["counts"]["offered"]
    assert "| model + review |" in capsys.readouterr().out


def test_rows_short_of_options_get_another_round(rand_ckpt, tiny_data):
    rows = _rows(tiny_data, template=False)[:4]
    gen = _gen(rand_ckpt)
    plugin = ModelDistractors(gen, gen, Settings(n_samples=2, max_new_tokens=4, rounds=2))
    plugin.prepare(rows, 3)
    c = plugin.counts
    assert c["rounds"] == 2  # the reviewer rejected everything: every row asked twice
    assert gen.counts["generated"] == len(rows) * 2 * 2  # new seeds, no repeats
    failed = sum(v for k, v in c.items() if k.startswith("review:"))
    assert failed == c["candidates"] and c["offered"] == 0
