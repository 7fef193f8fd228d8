"""The study report's paired differences on synthetic per-seed, per-example results: a clearly
separated pair of settings is called resolved, an identical pair is not."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vloom.evaluate.records import write_examples
from vloom.report.stats import paired_bootstrap_ci, t_interval
from vloom.report.study import write_study_report

N, SEEDS = 400, (0, 1, 2)
# setting -> accuracy of its runs; 0.5 and 0.25 share every answer (identical pair)
P = {0.25: 0.5, 0.5: 0.5, 1.0: 0.9}


def correct(frac: float, seed: int) -> np.ndarray:
    """The same questions for every run; which ones a run gets right depends on its seed and
    (for the separated setting) on the setting."""
    rng = np.random.default_rng(seed if P[frac] == 0.5 else 100 + seed)
    return (rng.random(N) < P[frac]).astype(int)


@pytest.fixture
def sweep(tmp_path):
    runs = []
    for frac in P:
        for seed in SEEDS:
            name = f"f{frac}_s{seed}"
            runs.append(
                {"name": name, "settings": {"train.image_start_fraction": frac, "seed": seed}}
            )
            rd = tmp_path / "runs" / name
            c = correct(frac, seed)
            recs = [
                {"id": f"vqa-{i:05d}", "correct": int(x), "pick": 0, "answer": 1 - int(x)}
                for i, x in enumerate(c)
            ]
            write_examples(rd, {"vqa": recs})
            ev = {
                "vqa": {"accuracy": float(c.mean()), "n": N},
                "text_qa": {"accuracy": 0.4 + 0.01 * seed, "n": 200},  # no records
            }
            (rd / "results.json").write_text(json.dumps({"eval": ev, "config": {}}))
            (rd / "status.json").write_text(json.dumps({"status": "done", "seconds": 1.0}))
    study = {"name": "synthetic", "swept": ["train.image_start_fraction"], "runs": runs}
    (tmp_path / "study.json").write_text(json.dumps(study))
    return tmp_path


def _row(md: str, section: str, first: str) -> list[str]:
    part = md[md.index(section) :]
    for line in part.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] == first:
            return cells
    raise AssertionError(f"no row {first!r} after {section!r}")


def test_separated_pair_resolved_identical_pair_not(sweep):
    md_path, _ = write_study_report(sweep)
    md = md_path.read_text()
    assert "## Paired differences between settings" in md

    same = "### image_start_fraction=0.5 − image_start_fraction=0.25"
    row = _row(md, same, "vqa.accuracy")
    assert row[3] == "+0" and row[4] == "[0, 0]" and row[5] == "[0, 0]"
    assert row[6] == str(N) and row[7] == "not resolved"

    apart = "### image_start_fraction=1 − image_start_fraction=0.25"
    row = _row(md, apart, "vqa.accuracy")
    a = np.stack([correct(1.0, s) for s in SEEDS])
    b = np.stack([correct(0.25, s) for s in SEEDS])
    per_seed = a.mean(1) - b.mean(1)
    assert float(row[3]) == pytest.approx(per_seed.mean(), abs=1e-4)
    lo, hi = t_interval(per_seed)
    assert row[4] == f"[{round(lo, 4):.4g}, {round(hi, 4):.4g}]"
    elo, ehi = paired_bootstrap_ci(a.mean(0), b.mean(0))  # examples, pooled over seeds
    assert row[5] == f"[{round(elo, 4):.4g}, {round(ehi, 4):.4g}]"
    assert 0 < lo and 0 < elo and row[7] == "resolved (seeds and examples)"

    # the sentences say it in words
    assert (
        "image_start_fraction=1 − image_start_fraction=0.25 (3 paired seeds): resolved by both "
        "intervals: vqa.accuracy (+" in md
    )
    assert (
        "image_start_fraction=0.5 − image_start_fraction=0.25 (3 paired seeds): not resolved: "
        in md
    )
    # text_qa has no records: a seed interval, no example interval (identical seeds -> +0)
    assert _row(md, same, "text_qa.accuracy")[5] == ""

    # each accuracy's example standard error, flagged above 0.015
    se = _row(md, "## Example standard error", "vqa.accuracy")
    p = np.mean([correct(0.25, s).mean() for s in SEEDS])
    assert se[1] == f"{round(float(np.sqrt(p * (1 - p) / N)), 4):.4g} (n={N}) (> 0.015)"

    summary = json.loads((sweep / "study_summary.json").read_text())
    verdicts = {(d["a"], d["b"], d["metric"]): d["verdict"] for d in summary["differences"]}
    key = ("image_start_fraction=1", "image_start_fraction=0.25", "vqa.accuracy")
    assert verdicts[key] == "resolved (seeds and examples)"


def test_one_seed_has_no_seed_interval(sweep):
    study = json.loads((sweep / "study.json").read_text())
    study["runs"] = [r for r in study["runs"] if r["settings"]["seed"] == 0]
    (sweep / "study.json").write_text(json.dumps(study))
    md = write_study_report(sweep)[0].read_text()
    row = _row(md, "### image_start_fraction=1 − image_start_fraction=0.25", "vqa.accuracy")
    assert row[4] == "(one seed)" and row[7] == "resolved by examples only"
