"""scripts/sft_seeds.py: the seeds' interval is report.stats' Student t interval."""

import json

from scriptmod import load_script


def _write(d, correct):
    (d / "examples").mkdir(parents=True)
    lines = [
        json.dumps({"id": f"q{i:02d}", "correct": c, "qtype": "position"})
        for i, c in enumerate(correct)
    ]
    (d / "examples" / "vqa_open.jsonl").write_text("\n".join(lines) + "\n")
    return d


def test_seed_interval_is_the_t_interval(tmp_path):
    s = load_script("scripts/sft_seeds.py")
    base = _write(tmp_path / "base", [0, 0, 0, 0])
    a = _write(tmp_path / "a", [1, 0, 0, 0])  # 0.25
    b = _write(tmp_path / "b", [1, 1, 0, 0])  # 0.50
    out = s.table(base, [a, b], "vqa_open", n_boot=200)
    # mean 0.375, sd 0.1768 over two seeds, t(0.975, 1) 12.706 -> half width 1.588
    assert "mean 0.375 +- 1.588 (seeds)" in out[1]
    assert "+- nan (seeds)" in s.table(base, [a], "vqa_open", n_boot=200)[1]
