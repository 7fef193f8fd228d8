"""scripts/score_seeds.py: the self-correction table pools seeds per question and pairs arms
with the base on the same questions."""

import json

import pytest
from scriptmod import load_script


def _write(d, t1, t2, ids=None):
    (d / "examples").mkdir(parents=True)
    ids = ids or [f"q{i:02d}" for i in range(len(t1))]
    lines = [
        json.dumps({"id": i, "correct_t1": a, "correct_t2": b, "qtype": "position"})
        for i, a, b in zip(ids, t1, t2, strict=True)
    ]
    (d / "examples" / "self_correct.jsonl").write_text("\n".join(reversed(lines)) + "\n")
    return d


def test_pooled_delta_is_the_seed_mean_and_minus_base_is_paired(tmp_path):
    s = load_script("scripts/score_seeds.py")
    base = _write(tmp_path / "base", [1, 1, 0, 0], [1, 0, 0, 0])  # delta -0.25
    a = _write(tmp_path / "a", [1, 0, 0, 0], [1, 1, 0, 0])  # +0.25
    b = _write(tmp_path / "b", [1, 0, 0, 0], [1, 0, 1, 1])  # +0.50
    out = s.table(base, {"score": [a, b]}, n_boot=200)
    assert out[0] == "== self_correct (n=4) =="
    assert "delta -0.2500" in out[1] and "r->w 0.2500" in out[1]
    line = out[2]
    assert line.startswith("score ") and "delta by seed +0.2500 / +0.5000" in line
    assert "pooled +0.3750" in line and "minus base +0.6250" in line
    # the seeds' own interval: mean 0.375, sd 0.1768, t(0.975, 1) 12.706 -> +/- 1.5883
    assert "seeds [-1.2133, +1.9633]" in line
    assert "seeds [" not in s.table(base, {"one": [a]}, n_boot=200)[2]
    assert "w->r 0.3750 r->w 0.0000" in line


def test_an_arm_on_other_questions_is_refused(tmp_path):
    s = load_script("scripts/score_seeds.py")
    base = _write(tmp_path / "base", [1, 0], [1, 0])
    other = _write(tmp_path / "other", [1, 0], [1, 0], ids=["q00", "x99"])
    with pytest.raises(ValueError, match="other questions"):
        s.table(base, {"score": [other]})
