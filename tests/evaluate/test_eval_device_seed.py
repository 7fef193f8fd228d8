"""eval.device and eval.seed reach the model and the tasks; a bad device is a one-line error."""

from __future__ import annotations

import pytest
import torch

from vloom.config import ConfigError, config_from_dict
from vloom.evaluate import evaluate
from vloom.evaluate.tasks import TASKS


def _probe(ctx):
    """What a task sees: the context's device and seed, and where the weights really are."""
    return {
        "device": str(ctx.device),
        "weights_on": str(next(ctx.model.parameters()).device),
        "seed": ctx.seed,
    }


@pytest.fixture
def probe(monkeypatch):
    monkeypatch.setitem(TASKS, "probe", _probe)  # restored after the test


def test_device_and_seed_reach_the_model_and_the_tasks(probe, rand_ckpt, tiny_data):
    res = evaluate(rand_ckpt, tiny_data["eval"], ["probe"], device="cpu", seed=7)
    assert res["probe"]["device"] == res["probe"]["weights_on"] == "cpu"
    assert res["probe"]["seed"] == 7
    auto = evaluate(rand_ckpt, tiny_data["eval"], ["probe"], device="auto")["probe"]
    want = "cuda" if torch.cuda.is_available() else "cpu"
    assert auto["device"].split(":")[0] == auto["weights_on"].split(":")[0] == want


@pytest.mark.parametrize(
    ("device", "message"),
    [
        ("meta", "evaluation runs on auto, cpu, cuda or mps"),
        ("gpu0", "not a device"),
        pytest.param(
            "cuda:0",
            "CUDA is not available",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA"),
        ),
        ("cuda:99", "CUDA"),
    ],
)
def test_a_bad_device_is_a_one_line_error_before_loading(rand_ckpt, tiny_data, device, message):
    with pytest.raises(ValueError, match=message) as e:
        evaluate(rand_ckpt, tiny_data["eval"], ["vqa"], device=device)
    assert "\n" not in str(e.value) and repr(device) in str(e.value)


def test_eval_config_has_device_and_seed():
    cfg = config_from_dict({})
    assert (cfg.eval.device, cfg.eval.seed) == ("auto", 0)
    assert config_from_dict({"eval": {"device": "cuda:1", "seed": 3}}).eval.device == "cuda:1"
    with pytest.raises(ConfigError, match="eval.device"):
        config_from_dict({"eval": {"device": "cpu; rm -rf ~"}})


def test_the_seed_picks_the_fewshot_examples_deterministically(rand_ctx):
    from vloom.evaluate.tasks.data import read_rows
    from vloom.evaluate.tasks.text_qa import TEXT_QA_COLUMNS, fewshot_prompts

    rows = read_rows(rand_ctx.data_dir / "text_qa.parquet", TEXT_QA_COLUMNS, None)
    a, again, b = (fewshot_prompts(rows[:4], rows, 2, s) for s in (0, 0, 1))
    assert a == again and a != b
