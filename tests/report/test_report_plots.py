from __future__ import annotations

from PIL import Image

from vloom.report.plots import main_metric, plot_eval, plot_loss
from vloom.report.runfiles import image_entry_step, read_metrics


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
