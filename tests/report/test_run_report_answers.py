"""The run report of a real tiny run answers first: the headline table with intervals before
the configuration, a gallery of held-out scenes, and a real folded config in report.html."""

from __future__ import annotations

import re

import pytest
from tinyexp import tiny_config

from vloom.evaluate.records import read_examples
from vloom.pipeline import run_experiment
from vloom.report.stats import bootstrap_ci, paired_bootstrap_ci

TASKS = ["vqa", "text_qa", "text_ppl"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("answers") / "run"
    cfg = tiny_config(name="tiny", control=True, eval__tasks=TASKS, eval__max_examples=12)
    run_experiment(cfg, run, quiet=True)  # writes report.md and report.html
    return run


def _interval(cell: str) -> tuple[float, float, float]:
    m = re.fullmatch(r"([+-]?[\d.]+) \[([-\d.]+), ([-\d.]+)\]", cell)
    assert m, cell
    return float(m[1]), float(m[2]), float(m[3])


def test_headline_first_with_intervals(tiny_run, row):
    md = (tiny_run / "report.md").read_text()
    heads = [ln for ln in md.splitlines() if ln.startswith("## ")]
    assert heads == [
        "## Results",
        "## Training",
        "## Gallery: held-out scenes",
        "## Data",
        "## Configuration",
    ]
    assert md.index("| task | metric | tiny | control |") < md.index("![evaluation]")
    assert md.index("![evaluation]") < md.index("## Gallery") < md.index("## Configuration")

    run = read_examples(tiny_run, "vqa")
    ctl = read_examples(tiny_run / "control", "vqa")
    assert len(run) == len(ctl) == 12
    a = [r["correct"] for r in run]
    b = [r["correct"] for r in ctl]
    cells = row(md, "vqa")
    assert cells[1] == "accuracy" and cells[-1] == "12"
    acc, lo, hi = _interval(cells[2])
    assert acc == pytest.approx(sum(a) / 12, abs=1e-4)
    assert (lo, hi) == pytest.approx(bootstrap_ci(a), abs=1e-4)
    assert lo <= acc <= hi
    d, dlo, dhi = _interval(cells[4])
    assert d == pytest.approx((sum(a) - sum(b)) / 12, abs=1e-4)
    assert (dlo, dhi) == pytest.approx(paired_bootstrap_ci(a, b), abs=1e-4)
    # per question type too, the "all" row being the headline's interval
    per_type = md[md.index("### vqa: accuracy per question type") :]
    assert _interval(row(per_type, "all")[1]) == (acc, lo, hi)
    qtype = run[0]["qtype"]
    right = [r["correct"] for r in run if r["qtype"] == qtype]
    assert _interval(row(per_type, qtype)[1])[1:] == pytest.approx(bootstrap_ci(right), abs=1e-4)
    assert "95% intervals" in md and "resolved" in md
    assert "[" not in row(md, "text_ppl")[2]  # a perplexity has no per-example records


def test_gallery_shows_right_and_wrong_scenes(tiny_run):
    md = (tiny_run / "report.md").read_text()
    gallery = md[md.index("## Gallery") : md.index("## Data")]
    recs = read_examples(tiny_run, "vqa")
    n_right = min(3, sum(r["correct"] for r in recs))
    n_wrong = min(3, len(recs) - sum(r["correct"] for r in recs))
    entries = re.findall(r"^\| !\[vqa (\S+)\]\((plots/gallery/[^)]+\.png)\) \|", gallery, re.M)
    assert len(entries) == n_right + n_wrong >= 3  # both kinds whenever the run has both
    by_id = {r["id"]: r for r in recs}
    for ex_id, png in entries:
        rec = by_id[ex_id]
        assert (tiny_run / png).is_file()
        line = next(ln for ln in gallery.splitlines() if f"![vqa {ex_id}]" in ln)
        assert rec["question"] in line
        assert all(o in line for o in rec["options"])
        assert f"**{rec['options'][rec['pick']]} " in line  # its answer in bold, with its share
        assert ("(right)" in line) == bool(rec["correct"])
    assert gallery.count("(right) |") >= n_right and "control's answer" in gallery
    assert "text_qa" not in gallery  # no image, no scene


def test_html_config_is_a_real_fold(tiny_run):
    page = (tiny_run / "report.html").read_text()
    assert "&lt;details" not in page and "&lt;summary" not in page
    assert "<details><summary>Settings and the full config (YAML)</summary>" in page
    fold = page[page.index("<details>") : page.index("</details>")]
    assert "image_start_fraction" in fold and "<table>" in fold  # the config lives inside it
    assert page.index("<table>") < page.index("<details>")  # results before the config
    assert page.count('src="data:image/png;base64,') >= 3  # plots and thumbnails embedded


def test_chance_levels_follow_the_options():
    from vloom.report.headline import chance_levels

    recs = {
        "run": {"multi_image": [{"options": ["a", "b"]}] * 3, "vqa": [{"options": list("abcd")}]}
    }
    assert chance_levels(recs) == {"multi_image": 0.5, "vqa": 0.25}
