"""The full demo (minutes on 2 cores): what README's `make demo` promises, with its targets.
The demo runs once (module fixture); one test holds what it reaches today, another issue
16's bounds, not reached yet; two post-train it (configs/sft.yaml and configs/score.yaml, issue
17; SCoRe's bound is not reached yet either)."""

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from scriptmod import load_script

from vloom.config import load_config
from vloom.evaluate.harness import evaluate, write_results
from vloom.pipeline import run_experiment
from vloom.report.stats import paired_bootstrap_ci

ROOT = Path(__file__).resolve().parents[1]
TYPES = ("colour", "count", "position", "shape")
PICTURE_ONLY = ("colour", "position", "shape")  # count has a prior a text model can learn
# SCoRe's three RL runs and evals (33 min on 2 AVX-512 cores) and the slow tests after it
SCORE_TEST_S = 45 * 60


def unmet(reason: str) -> pytest.MarkDecorator:
    """An issue's bound not reached yet: the test keeps it and fails expectedly on the
    assertion only (a crash is a failure)."""
    return pytest.mark.xfail(strict=False, raises=AssertionError, reason=reason)


def _post_train(run: Path, config: str, out: Path, seed: int, rl_reference: bool = False) -> Path:
    """configs/`config` from the demo's final checkpoint (also the KL reference of rl stages
    with `rl_reference`), on the demo's own world, written to `out`."""
    ckpt = str(run / "checkpoints" / "final")
    out.mkdir()
    shutil.copytree(run / "synth", out / "synth")  # the same world: not built again
    sets = {"train.init_from": ckpt, "seed": seed, "train.threads": 2, "out_dir": str(out)}
    if rl_reference:
        sets["rl.reference"] = ckpt
    run_experiment(load_config(ROOT / "configs" / config, sets), out, quiet=True)
    return out


def _pooled(res: dict, types: tuple[str, ...]) -> float:
    """Accuracy over the questions of `types` (the eval set holds equal numbers of each)."""
    return sum(res[f"accuracy_{t}"] for t in types) / len(types)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    cfg = load_config(ROOT / "configs" / "demo.yaml")
    run = run_experiment(cfg, tmp_path_factory.mktemp("demo") / "demo", quiet=True)
    res = json.loads((run / "results.json").read_text())
    ctl = json.loads((run / "control" / "results.json").read_text())
    return run, res, ctl


@pytest.mark.slow
def test_demo_vlm_reads_colour_and_count_and_the_control_does_not(demo):
    run, res, ctl = demo
    vqa, ctl_vqa = res["eval"]["vqa"], ctl["eval"]["vqa"]
    # The bound this test held before issue 16 (the skeleton's 0.60 is in the test below).
    assert vqa["accuracy"] >= 0.55, vqa
    # The global questions need the picture: the VLM reads them, the control cannot.
    assert vqa["accuracy_colour"] >= 0.80, vqa
    assert vqa["accuracy_count"] >= 0.80, vqa
    assert ctl_vqa["accuracy_colour"] <= 0.40, ctl_vqa
    assert ctl_vqa["accuracy"] <= vqa["accuracy"] - 0.15, (ctl_vqa, vqa)
    assert ctl["train"]["tokens"] == res["train"]["tokens"]
    report = (run / "report.md").read_text()
    assert "control" in report and (run / "plots" / "loss.png").stat().st_size > 5000


@pytest.mark.slow
@unmet(
    "issue 16 bounds not reached: binding needs at least 6x the demo's budget (last full run, "
    "2026-12-04, 1,200 questions: VQA colour 1.00 / count 1.00 / position 0.26 / shape 0.30, "
    "text_qa colour 1.00 / count 1.00 / position 0.27 / shape 1.00). On a GPU the demo's config "
    "binds every type by step 6,000 (24M tokens; seed 0, 400 questions: VQA position 0.96, "
    "shape 0.91, text_qa position 0.99, shape 1.00) and not by step 4,000 (0.37 / 0.99, "
    "0.40 / 1.00); on 2 CPU cores in fp32 the same run had not by step 6,000 (0.40 / 0.95, "
    "0.40 / 1.00); 12 variants of rate, batch, width, depth and seed bind at best in words by "
    "2,500; an answer-only SFT phase in the demo's 1,000 steps gives position 0.23-0.38 (VQA) "
    "and 0.25-0.39 (text_qa). 24M tokens take about an hour per model on 2 CPU cores, against "
    "the 15 minutes for the whole demo (README, scripts/binding_budget.py)",
)
def test_demo_binds_attributes_to_objects(demo):
    _, res, ctl = demo
    vqa, ctl_vqa, tqa = res["eval"]["vqa"], ctl["eval"]["vqa"], res["eval"]["text_qa"]
    # Issue 16's bounds (and the skeleton's VQA >= 0.60 with them). Chance is 0.25 on every
    # type. Position and shape name the object by its colour: the model must bind attributes
    # to objects, in the picture and in words.
    assert vqa["accuracy"] >= 0.60, vqa
    for t in TYPES:
        assert vqa[f"accuracy_{t}"] >= 0.80, (t, vqa)
        assert tqa[f"accuracy_{t}"] >= 0.80, (t, tqa)
    # The control never saw an image: on what only the picture tells it stays near chance.
    assert _pooled(ctl_vqa, PICTURE_ONLY) <= 0.35, ctl_vqa


@pytest.mark.slow
def test_sft_raises_free_answer_vqa_over_the_demo_checkpoint(demo, tmp_path):
    """Issue 17: SFT on the world's instruction sets (configs/sft.yaml as it is) raises
    free-answer VQA over the pre-trained demo, in three seeds, with error bars that separate
    (a paired bootstrap over the held-out questions, the seeds averaged)."""
    run, _, _ = demo
    ckpt = run / "checkpoints" / "final"
    sft_seeds = load_script("scripts/sft_seeds.py")  # the README table's reader of the runs
    write_results(tmp_path / "base", evaluate(ckpt, run / "synth" / "eval", ["vqa_open"]), {}, None)
    base, qtypes = sft_seeds.load(tmp_path / "base", "vqa_open")
    seeds = []
    for seed in (0, 1, 2):
        out = _post_train(run, "sft.yaml", tmp_path / f"sft{seed}", seed)
        correct, asked = sft_seeds.load(out, "vqa_open")
        assert (asked == qtypes).all()  # the same questions, in the same order
        seeds.append(correct)
    acc = np.stack(seeds)  # [3, n], the same questions in the same order as `base`
    assert acc.shape[1] == len(base) >= 1112  # an accuracy's standard error <= 0.015
    assert (acc.mean(1) > base.mean()).all(), (acc.mean(1), base.mean())
    idx = np.random.default_rng(0).integers(0, len(base), (2000, len(base)))
    gain = acc[:, idx].mean(axis=(0, 2)) - base[idx].mean(1)
    assert np.percentile(gain, 2.5) > 0, (
        acc.mean(1),
        base.mean(),
        np.percentile(gain, [2.5, 97.5]),
    )


@pytest.mark.slow
@unmet(
    "issue 17's SCoRe bound not reached robustly: a second attempt gains about what RL "
    "teaches it while attempt 1 is held. configs/score.yaml seeds 0/1/2, 4,800 held-out "
    "questions: from this test's demo checkpoint (asked twice -0.0277) +0.0402 / +0.0106 / "
    "+0.0050, but seed 0's attempt 1 fell 0.039 (count 1.00 -> 0.85) for attempt 2 to fix; "
    "from another demo checkpoint (-0.0327) +0.0035 / +0.0002 / -0.0023; from the 1,500-step "
    "SFT base (-0.1133) -0.0035 / -0.0042 / -0.0025; from an 800-step SFT base (-0.0148) "
    "+0.0004 / +0.0046 / -0.0115. On all three bases 99.7%+ of the wrong first answers are "
    "shape or position, the binding issue 16 finds beyond the demo's budget (README, "
    "post-training)",
)
def test_score_self_corrects_where_asking_twice_does_not(demo, tmp_path):
    """Issue 17: configs/score.yaml (SCoRe's stages I and II) from the demo checkpoint gives
    delta(t1, t2) > 0 on the held-out questions in each of three seeds, where the checkpoint
    itself asked for a second attempt gives delta <= 0, and no seed's attempt 1 falls below the
    base's. The demo checkpoint is the base here (the README's tables also start from SFT
    bases), so the test adds only three 640-step RL runs (33 min on 2 cores)."""
    deadline = float(os.environ.get("VLOOM_CI_DEADLINE", "inf"))  # set by .ci/run
    if deadline - time.time() < SCORE_TEST_S:
        pytest.skip(
            f"CI time: {max(deadline - time.time(), 0) / 60:.0f} min left before the CI limit, "
            f"this test needs about {SCORE_TEST_S / 60:.0f} (three 640-step RL runs on 2 cores)"
        )
    run, _, _ = demo
    ckpt = run / "checkpoints" / "final"
    score_seeds = load_script("scripts/score_seeds.py")  # the README table's reader
    write_results(
        tmp_path / "base", evaluate(ckpt, run / "synth" / "eval", ["self_correct"]), {}, None
    )
    ids, b1, b2 = score_seeds.load(tmp_path / "base")
    assert len(ids) >= 1112  # an accuracy's standard error <= 0.015
    assert b2.mean() - b1.mean() <= 0, (b1.mean(), b2.mean())  # the premise: no gain unasked
    deltas, held = [], []
    for seed in (0, 1, 2):
        out = _post_train(run, "score.yaml", tmp_path / f"score{seed}", seed, rl_reference=True)
        rid, t1, t2 = score_seeds.load(out)
        assert rid == ids  # the same held-out questions as the base's
        deltas.append(t2.mean() - t1.mean())
        # A delta bought by a worse first attempt is not self-correction (trajectory credit
        # can teach attempt 1 to answer wrong for attempt 2 to fix): attempt 1 must not fall
        # below the base's, paired over the questions (95% bootstrap).
        held.append(paired_bootstrap_ci(t1, b1)[1])
    assert all(d > 0 for d in deltas), deltas
    assert all(h >= 0 for h in held), (deltas, held)
