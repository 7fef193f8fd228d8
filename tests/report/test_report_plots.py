from __future__ import annotations

import json

from PIL import Image

from vloom.report import write_report
from vloom.report.plots import main_metric, plot_eval, plot_eval_curves, plot_loss
from vloom.report.runfiles import eval_curves, image_entry_step, read_metrics


def test_read_metrics_skips_truncated_line(tmp_path, make_run):
    run = make_run(tmp_path / "r", control=False)
    records, skipped = read_metrics(run)
    assert skipped == 1
    assert [r["step"] for r in records if "loss" in r] == list(range(0, 41, 5))
    assert [r["val_loss"] for r in records if "val_loss" in r] == [5.7, 3.7]


def test_image_entry_step():
    def recs(fracs):
        return [{"step": 10 * i, "image_frac": f} for i, f in enumerate(fracs)]

    assert image_entry_step(recs([0.0, 0.0, 0.5, 0.5])) == 20
    assert image_entry_step(recs([0.5, 0.5])) is None  # images from the start: nothing to mark
    assert image_entry_step(recs([0.0, 0.0])) is None  # text-only control
    # images from the start, one batch drew none by chance (configs/real.yaml, ratio 0.3)
    assert image_entry_step(recs([0.3, 0.2, 0.0, 0.25])) is None
    on = [{"step": s, "image_frac": 0.0, "images_on": s >= 20} for s in (0, 10, 20, 30)]
    assert image_entry_step(on) == 20  # the trainer's switch, even when its batch drew none
    assert (
        image_entry_step(
            [{"step": 0}, {"step": 5, "image_frac": 0.0}, {"step": 9, "image_frac": 0.25}]
        )
        == 9
    )


def test_main_metric_prefers_accuracy_then_perplexity():
    assert main_metric({"n": 400, "accuracy_colour": 0.5, "accuracy": 0.4}) == "accuracy"
    assert main_metric({"loss": 3.6, "perplexity": 38.2}) == "perplexity"
    assert main_metric({"n": 10, "bleu": 0.2}) == "bleu"
    assert main_metric({"n": 10}) is None


def test_plots_are_valid_deterministic_pngs(tmp_path, make_run):
    run = make_run(tmp_path / "r")
    loss = plot_loss({"run": run, "control": run / "control"}, tmp_path / "out" / "loss.png")
    ev = {
        "run": {"eval": {"vqa": {"accuracy": 0.41}, "text_ppl": {"perplexity": 38.2}}},
        "control": {"vqa": {"accuracy": 0.25}},
    }  # a bare eval mapping is accepted too
    bars = plot_eval(ev, tmp_path / "out" / "eval.png")
    for p in (loss, bars):
        with Image.open(p) as im:
            assert im.format == "PNG" and im.size[0] > 300 and im.size[1] > 200
        assert 5_000 < p.stat().st_size < 200_000  # non-trivial yet small
    again = plot_eval(ev, tmp_path / "again.png")
    assert again.read_bytes() == bars.read_bytes()


def _eval_records(run, scale: float) -> None:
    """Append eval.during_training records (every 10 steps, 4096 tokens a step) to a run."""
    lines = [
        json.dumps(
            {
                "step": s,
                "tokens": 4096 * s,
                "eval_s": 0.1,
                "eval/vqa/accuracy": round(0.25 + scale * s / 100, 4),
                "eval/vqa/n": 64,
                "eval/text_ppl/loss": 6.0 - scale * s / 20,
                "eval/text_ppl/perplexity": round(400 - scale * 5 * s, 2),
            }
        )
        for s in (0, 10, 20, 30, 40)
    ]
    with (run / "metrics.jsonl").open("a") as f:
        f.write("\n".join(lines) + "\n")


def test_eval_curves_read_from_metrics(tmp_path, make_run):
    run = make_run(tmp_path / "r", control=False)
    assert eval_curves(read_metrics(run)[0]) == {}
    _eval_records(run, 1.0)
    curves = eval_curves(read_metrics(run)[0])
    assert set(curves) == {"vqa", "text_ppl"}
    assert set(curves["vqa"]) == {"accuracy", "n"}
    tokens, acc = curves["vqa"]["accuracy"]
    assert tokens == [0, 40960, 81920, 122880, 163840]
    assert acc == [0.25, 0.35, 0.45, 0.55, 0.65]


def test_run_report_shows_curves_only_when_recorded(tmp_path, make_run):
    run = make_run(tmp_path / "r")
    md = write_report(run).read_text()
    assert "Benchmarks during training" not in md
    assert not (run / "plots" / "eval_curves.png").exists()
    _eval_records(run, 1.0)
    _eval_records(run / "control", 0.5)
    md = write_report(run).read_text()
    assert "### Benchmarks during training" in md
    png = run / "plots" / "eval_curves.png"
    assert f"]({png.relative_to(run).as_posix()})" in md
    with Image.open(png) as im:
        assert im.format == "PNG" and im.size[0] > 500
    again = plot_eval_curves({"demo": run, "control": run / "control"}, tmp_path / "again.png")
    assert again.read_bytes() == png.read_bytes()  # deterministic, run and control alike
    assert plot_eval_curves({"x": tmp_path / "none"}, tmp_path / "x.png") is None
