"""Post-training in the run report: SFT loss and RL curves from metrics.jsonl, SCoRe's table."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from vloom.evaluate.records import write_examples
from vloom.evaluate.tasks.self_correct import metrics_from_records
from vloom.report import write_report
from vloom.report.compare import compare_runs
from vloom.report.plots import plot_loss
from vloom.report.posttrain import rl_panels, stage_kinds, stage_lines
from vloom.report.runfiles import read_metrics
from vloom.report.stats import bootstrap_ci, paired_bootstrap_ci


def add_stages(run: Path, rl_keys: tuple[str, ...] = ("reward", "kl", "response_len")) -> None:
    """An SFT stage (steps 45..60) and an RL stage named `score` (steps 65..100) after the
    pre-training steps make_run wrote, in config.json and metrics.jsonl."""
    cfg = json.loads((run / "config.json").read_text())
    base = cfg["train"]["stages"][0]
    cfg["train"]["stages"] += [
        {**base, "name": "tune", "kind": "sft"},
        {**base, "name": "score", "kind": "rl"},
    ]
    (run / "config.json").write_text(json.dumps(cfg))
    values = {
        "reward": lambda i: 0.3 + 0.02 * i,
        "reward_t2": lambda i: 0.35 + 0.02 * i,
        "kl": lambda i: 0.001 * i,
        "kl_t1": lambda i: 0.002 * i,
        "kl_weight": lambda i: 0.1,  # a setting, not a curve
        "response_len_t2": lambda i: 7.0,
        "response_len": lambda i: 9.0 - 0.1 * i,
        "acc_t1": lambda i: 0.5,
        "acc_t2": lambda i: 0.5 + 0.01 * i,
    }
    lines = [
        json.dumps({"step": s, "loss": 2.0 - 0.05 * s / 5, "stage": "tune"}) for s in (50, 55, 60)
    ]
    for i, s in enumerate(range(65, 101, 5)):
        # the keys vloom.rl logs: figures averaged over the steps since the last line
        rec = {"step": s, "loss": -0.02, "stage": "score", "rl_recipe": "score", "rl_steps": 5}
        rec.update(rollout_tokens=4000, reward_skips={"exact:ValueError": 1} if i == 3 else {})
        rec.update({k: f(i) for k, f in values.items() if k in rl_keys or k == "kl_weight"})
        lines.append(json.dumps(rec))
    # make_run's metrics end in a truncated line: start ours on a new one
    with (run / "metrics.jsonl").open("a") as f:
        f.write("\n" + "\n".join(lines) + "\n")


def test_rl_and_sft_lines_and_panels(tmp_path, make_run):
    run = make_run(tmp_path / "r", control=False)
    add_stages(
        run,
        (
            "reward",
            "reward_t2",
            "kl",
            "kl_t1",
            "response_len",
            "response_len_t2",
            "acc_t1",
            "acc_t2",
        ),
    )
    records, _ = read_metrics(run)
    kinds = stage_kinds(json.loads((run / "config.json").read_text()))
    assert kinds == {"pretrain": "pretrain", "tune": "sft", "score": "rl"}
    assert [r["step"] for r in stage_lines(records, kinds, "sft")] == [50, 55, 60]
    rl = stage_lines(records, kinds, "rl")
    assert [r["step"] for r in rl] == list(range(65, 101, 5))
    # a line logging a reward counts as RL even when the config names no RL stage
    assert len(stage_lines(records, {}, "rl")) == len(rl)
    panels = {title: lines for title, _, lines in rl_panels({"run": rl})}
    assert sorted(panels["reward"]) == ["reward", "reward_t2"]
    assert panels["reward"]["reward"] == (
        list(range(65, 101, 5)),
        [0.3 + 0.02 * i for i in range(8)],
    )
    assert sorted(panels["KL to the reference"]) == ["kl", "kl_t1"]  # kl_weight is no curve
    assert sorted(panels["response length"]) == ["response_len", "response_len_t2"]
    assert panels["response length"]["response_len"][1][-1] == 9.0 - 0.1 * 7
    assert sorted(panels["accuracy on the rollouts"]) == ["acc_t1", "acc_t2"]


def test_report_plots_rl_and_sft_curves(tmp_path, make_run):
    run = make_run(tmp_path / "r")
    plots = run / "plots"
    before = plot_loss({"demo": run}, tmp_path / "before.png")
    add_stages(run)
    md = write_report(run).read_text()
    assert md.index("## Results") < md.index("## Training") < md.index("### Reinforcement")
    assert "### Supervised fine-tuning" in md and "![SFT loss](plots/sft_loss.png)" in md
    assert "![reinforcement learning](plots/rl.png)" in md
    for png in (plots / "rl.png", plots / "sft_loss.png"):
        with Image.open(png) as im:
            assert im.format == "PNG" and im.size[0] > 300
    rl_png = (plots / "rl.png").read_bytes()
    # the start/end table: mean of the first and last quarter (two points each of 8)
    assert "| demo | reward | 0.31 | 0.43 | 65..100 |" in md
    assert "| demo | kl | 0.0005 | 0.0065 | 65..100 |" in md
    assert "could not score (skipped, the run went on): demo: 1 exact:ValueError." in md
    assert "kl_weight" not in md.split("## Training")[1].split("### Throughput")[0]
    html = (run / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 4 and "Reinforcement learning" in html
    # RL steps stay off the loss curve: same figure as before they were added (SFT's loss
    # is on it, so compare with the SFT lines' loss removed: tune is not an rl stage)
    after = plot_loss({"demo": run}, tmp_path / "after.png", {"demo": {"score", "tune"}})
    assert after.read_bytes() == before.read_bytes()
    # missing keys: RL lines with a reward only -> one panel, a smaller figure, no KL row
    run2 = make_run(tmp_path / "r2", control=False)
    add_stages(run2, ("reward",))
    md2 = write_report(run2).read_text()
    assert "| demo | reward |" in md2 and "| demo | kl |" not in md2
    assert len((run2 / "plots" / "rl.png").read_bytes()) < len(rl_png)


def test_pretraining_report_has_no_post_training_parts(tmp_path, make_run):
    run = make_run(tmp_path / "r")
    (run / "plots").mkdir()
    (run / "plots" / "rl.png").write_bytes(b"stale")
    md = write_report(run).read_text()
    assert "Reinforcement" not in md and "Supervised fine-tuning" not in md
    assert "Self-correction" not in md
    assert not (run / "plots" / "rl.png").exists() and not (run / "plots" / "sft_loss.png").exists()


def sc_records() -> list[dict]:
    """20 questions: 8 right both times, 5 wrong -> right, 2 right -> wrong, 5 wrong both."""
    pattern = [(1, 1)] * 8 + [(0, 1)] * 5 + [(1, 0)] * 2 + [(0, 0)] * 5
    qtypes = ["count", "shape"] * 10
    return [
        {
            "id": f"q{i}",
            "correct": c2,
            "correct_t1": c1,
            "correct_t2": c2,
            "changed": int(c1 != c2),
            "qtype": qtypes[i],
            "prediction": "x",
            "prediction_t1": "y",
        }
        for i, (c1, c2) in enumerate(pattern)
    ]


def test_self_correction_table_with_intervals(tmp_path, make_run, run_eval, row):
    recs = sc_records()
    run_eval["self_correct"] = metrics_from_records(recs)
    run = make_run(tmp_path / "r", ev=run_eval)
    write_examples(run, {"self_correct": recs})
    md = write_report(run).read_text()
    c1 = [float(r["correct_t1"]) for r in recs]
    c2 = [float(r["correct_t2"]) for r in recs]
    cells = row(md, "demo")
    assert cells[1] == "self_correct"

    def ci(v, lo_hi, sign=""):
        return f"{sign}{v} [{round(lo_hi[0], 4):.4g}, {round(lo_hi[1], 4):.4g}]"

    assert cells[2] == ci(0.5, bootstrap_ci(c1))  # t1: 10/20
    assert cells[3] == ci(0.65, bootstrap_ci(c2))  # t2: 13/20
    assert cells[4] == ci(0.15, paired_bootstrap_ci(c2, c1), "+")  # delta = 0.25 - 0.1
    assert cells[5].startswith("0.25 [") and cells[6].startswith("0.1 [")
    assert cells[7] == "0.35" and cells[8] == "20"  # 7 of 20 answers changed
    assert md.index("## Results") < md.index("### Self-correction") < md.index("## Training")
    assert row(md, "self_correct")[1] == "accuracy (attempt 2)"  # the headline row
    # per question type: counts q0, q2, ... (4 r->r, 3 w->r, 1 r->w, 2 w->w)
    per_type = md.split("#### self_correct: per question type")[1]
    count = row(per_type, "demo")
    assert count[1] == "count" and count[2].startswith("0.5 [") and count[3].startswith("0.7 [")
    # the attempts are not question types in the generic per-type tables
    assert "### self_correct: accuracy per question type" not in md
    html = (run / "report.html").read_text()
    assert "Self-correction: two attempts" in html and "wrong -&gt; right" in html


def test_compare_lists_self_correction(tmp_path, make_run, run_eval):
    recs = sc_records()
    run_eval["self_correct"] = metrics_from_records(recs)
    run_eval["vqa_open"] = {"accuracy": 0.5, "n": 20}
    a = make_run(tmp_path / "a", control=False, ev=run_eval)
    write_examples(a, {"self_correct": recs})
    b = make_run(tmp_path / "b", control=False, ev={"vqa": {"accuracy": 0.3}})
    out = compare_runs([a, b])
    assert "| self_correct.delta | 0.15 |" in out and "| vqa_open.accuracy | 0.5 |" in out
    assert "### Self-correction" in out and "| a | self_correct | 0.5 [" in out
    assert "a self_correct: delta" in out and "delta difference" not in out
    # a base model answering the same questions twice alike: delta 0, paired difference 0.15
    flat = [{**r, "correct_t2": r["correct_t1"], "correct": r["correct_t1"]} for r in recs]
    base = make_run(
        tmp_path / "base", control=False, ev={"self_correct": metrics_from_records(flat)}
    )
    write_examples(base, {"self_correct": flat})
    out = compare_runs([base, a])
    d = [float(r["correct_t2"] - r["correct_t1"]) for r in recs]
    lo, hi = paired_bootstrap_ci(d, [0.0] * len(d))
    want = f"| a - base | self_correct | +0.15 [{round(lo, 4):.4g}, {round(hi, 4):.4g}] |"
    assert want in out


def test_rl_only_run_shows_curves_without_a_loss_figure(tmp_path, make_run):
    run = make_run(tmp_path / "r", control=False)
    (run / "metrics.jsonl").write_text("")  # an rl stage from a checkpoint: no pre-training
    add_stages(run)
    lines = (run / "metrics.jsonl").read_text().splitlines()
    (run / "metrics.jsonl").write_text("\n".join(ln for ln in lines if '"tune"' not in ln) + "\n")
    md = write_report(run).read_text()
    assert "![training loss]" not in md and "![reinforcement learning](plots/rl.png)" in md
