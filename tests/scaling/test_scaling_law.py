"""Scaling-law fits: recover a known law from noisy losses, count FLOPs as the model is built,
find the compute-optimal size, and refuse unusable input with a clear error."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from vloom.scaling import fit_law, scaling_fit
from vloom.scaling.fit import Law
from vloom.scaling.flops import LMShape, param_counts, shape_from_config, train_flops_per_token
from vloom.scaling.optimal import FlopModel, optimal_size

TRUE = Law(E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28)  # Chinchilla's fit


def noisy_points(law: Law, noise: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    N, D = np.meshgrid(np.logspace(6, 9, 5), np.logspace(8, 11, 5))
    N, D = N.ravel(), D.ravel()
    L = law.loss(N, D) * np.exp(rng.normal(0, noise, N.shape))
    return N, D, L


@pytest.mark.parametrize("seed", [0, 1])
def test_recovers_exponents_of_a_known_law_under_noise(seed):
    N, D, L = noisy_points(TRUE, noise=0.005, seed=seed)
    law = fit_law(N, D, L)
    assert law.alpha == pytest.approx(TRUE.alpha, abs=0.04)
    assert law.beta == pytest.approx(TRUE.beta, abs=0.04)
    assert law.E == pytest.approx(TRUE.E, rel=0.1)


def test_other_exponents_are_recovered_too():
    truth = Law(E=2.5, A=2000.0, B=300.0, alpha=0.5, beta=0.2)  # both terms visible
    law = fit_law(*noisy_points(truth, noise=0.003, seed=3))
    assert (law.alpha, law.beta) == pytest.approx((0.5, 0.2), abs=0.04)


def test_compute_optimal_size_matches_closed_form_for_6N():
    # With C = 6 N D the optimum is N = G (C/6)^(b/(a+b)), G = (a A / (b B))^(1/(a+b)).
    a, b = TRUE.alpha, TRUE.beta
    G = (a * TRUE.A / (b * TRUE.B)) ** (1 / (a + b))
    for C in (1e20, 1e23):
        n, d, _ = optimal_size(TRUE, C, FlopModel(6.0, 1.0))
        assert n == pytest.approx(G * (C / 6) ** (b / (a + b)), rel=0.02)
        assert 6 * n * d == pytest.approx(C, rel=1e-9)


def test_flop_and_param_counts_match_the_built_model():
    from vloom.config import config_from_dict, dump_config
    from vloom.model.vlm import VLM

    cfg = config_from_dict(
        {
            "model": {"d_model": 64, "n_layers": 3, "n_heads": 4, "n_kv_heads": 2},
            "pack": {"vocab_size": 512, "seq_len": 128},
        }
    )
    shape = shape_from_config(dump_config(cfg))
    vlm = VLM(cfg.model, 512, 128, cfg.pack.image_size)
    lm_blocks = sum(
        p.numel() for n, p in vlm.lm.named_parameters() if "layers" in n and p.dim() == 2
    )
    counts = param_counts(shape)
    assert counts["nonembedding"] == lm_blocks
    assert counts["embedding"] == 512 * 64 and counts["output"] == 0  # tied
    f = train_flops_per_token(shape)
    assert f["dense"] == 6 * lm_blocks
    assert f["attention"] == 3 * 2 * 2 * 3 * 128 * 64
    assert f["output"] == 3 * 2 * 64 * 512
    assert f["total"] == f["dense"] + f["attention"] + f["output"]


def test_attention_and_output_terms_dominate_small_models():
    small = LMShape(64, 2, 4, 4, 176, 2048, 256)
    big = LMShape(4096, 32, 32, 32, 11008, 32000, 2048)
    share = lambda s: 1 - train_flops_per_token(s)["dense"] / train_flops_per_token(s)["total"]  # noqa: E731
    assert share(small) > 0.5 and share(big) < 0.2


def test_csv_end_to_end_with_bootstrap_interval(tmp_path):
    N, D, L = noisy_points(TRUE, noise=0.005)
    path = tmp_path / "runs.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["params", "tokens", "loss"])
        w.writerows(zip(N, D, L, strict=True))
        w.writerow([1e6, "n/a", 3.0])  # a bad row is skipped and counted
    fit = scaling_fit(path, budget=1e21, n_boot=12)
    assert fit["skipped"] == {"non-numeric or non-positive value": 1}
    assert fit["n_points"] == 25
    lo, hi = fit["bootstrap"]["N_opt_ci"]
    assert lo <= fit["optimal"]["N"] <= hi
    json.dumps(fit)  # JSON-able for --out


def test_cli_reports_fit_and_rejects_bad_csv(tmp_path, capsys):
    from vloom.cli import main

    N, D, L = noisy_points(TRUE, noise=0.005)
    good = tmp_path / "good.csv"
    good.write_text(
        "N,D,loss\n" + "".join(f"{n},{d},{x}\n" for n, d, x in zip(N, D, L, strict=True))
    )
    assert (
        main(
            [
                "scaling",
                str(good),
                "--budget",
                "1e21",
                "--bootstrap",
                "0",
                "--out",
                str(tmp_path / "fit.json"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "N_opt =" in out and "alpha" in out
    assert json.loads((tmp_path / "fit.json").read_text())["law"]["alpha"] == pytest.approx(
        0.34, abs=0.04
    )
    bad = tmp_path / "bad.csv"
    bad.write_text("size,tokens,loss\n1,2,3\n")
    assert main(["scaling", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.csv: no N (or params) column" in err
    few = tmp_path / "few.csv"
    few.write_text("N,D,loss\n1e6,1e9,3\n2e6,1e9,2.9\n")
    assert main(["scaling", str(few)]) == 2
    assert "at least 5 runs" in capsys.readouterr().err


def test_sweep_directory_points_come_from_configs_and_results(tmp_path):
    from vloom.config import config_from_dict, dump_config

    truth = Law(E=1.5, A=300.0, B=500.0, alpha=0.4, beta=0.3)
    rng = np.random.default_rng(0)
    expected_n = set()
    for d in (64, 128, 256, 512):
        for tokens in (1e7, 1e8, 1e9):
            cfg = dump_config(
                config_from_dict({"model": {"d_model": d, "n_layers": 4, "n_heads": 4}})
            )
            n = param_counts(shape_from_config(cfg))["nonembedding"]
            expected_n.add(n)
            loss = float(truth.loss(n, tokens)) * float(np.exp(rng.normal(0, 0.003)))
            rd = tmp_path / "runs" / f"d{d}-t{tokens:g}"
            rd.mkdir(parents=True)
            res = {"eval": {"text_ppl": {"loss": loss}}, "config": cfg, "train": {"tokens": tokens}}
            (rd / "results.json").write_text(json.dumps(res))
    (tmp_path / "runs" / "crashed").mkdir()  # no results.json: not a point
    broken = tmp_path / "runs" / "broken"
    broken.mkdir()
    (broken / "results.json").write_text('{"eval": {}, "config": {}}')
    fit = scaling_fit(tmp_path, n_boot=0)
    assert fit["n_points"] == 12
    assert fit["skipped"] == {"unreadable results.json (KeyError)": 1}
    assert "nonembedding" in fit["N_counts"]
    assert fit["law"]["alpha"] == pytest.approx(0.4, abs=0.05)
    assert fit["law"]["beta"] == pytest.approx(0.3, abs=0.05)
    # FLOPs per token were counted per run (attention and output included), not 6N.
    assert fit["flops_per_token"]["c"] != 6.0
