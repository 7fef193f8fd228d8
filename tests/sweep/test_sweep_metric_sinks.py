"""Metric sinks through a real (tiny) training run: on by config, off by config, and a sink
asked for whose package is absent is a one-line error."""

from __future__ import annotations

import importlib.util
import json

import pytest
from tinyexp import tiny_config

from vloom.train import train


def test_tensorboard_sink_writes_every_record(tiny_data, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = tiny_config(report__sinks=["tensorboard"])
    train(cfg, tiny_data["packed"], tmp_path, quiet=True)
    recs = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("train/lr")] == [r["step"] for r in recs]
    assert "train/tokens_per_s" in acc.Tags()["scalars"]


def test_no_sinks_writes_no_event_files(tiny_data, tmp_path):
    train(tiny_config(report__sinks=[]), tiny_data["packed"], tmp_path, quiet=True)
    assert (tmp_path / "metrics.jsonl").exists() and not (tmp_path / "tb").exists()


@pytest.mark.skipif(importlib.util.find_spec("mlflow") is not None, reason="mlflow is installed")
def test_absent_package_asked_for_is_a_one_line_error(tiny_data, tmp_path):
    with pytest.raises(ValueError) as e:
        train(tiny_config(report__sinks=["mlflow"]), tiny_data["packed"], tmp_path, quiet=True)
    assert "mlflow" in str(e.value) and "not installed" in str(e.value)
    assert "\n" not in str(e.value)


def test_unknown_sink_is_a_config_error():
    from vloom.config import ConfigError

    with pytest.raises(ConfigError, match="report.sinks"):
        tiny_config(report__sinks=["neptune"])
