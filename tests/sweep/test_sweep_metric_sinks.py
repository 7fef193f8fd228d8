"""Metric sinks through a real (tiny) training run: on by config, off by config, and a sink
asked for whose package is absent is a one-line error."""

from __future__ import annotations

import importlib.util
import json
import struct

import pytest
from tinyexp import tiny_config

from vloom.train import train


def test_tensorboard_sink_writes_every_record(tiny_data, tmp_path):
    pytest.importorskip(
        "tensorboard", reason="TensorBoard is an optional extra: pip install 'vloom[logging]'"
    )
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


def _records(run):
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.skipif(
    importlib.util.find_spec("mlflow") is None, reason="needs mlflow: pip install 'vloom[mlflow]'"
)
def test_mlflow_sink_writes_every_record_to_the_runs_own_store(tiny_data, tmp_path):
    from mlflow.tracking import MlflowClient

    for name in ("a", "b"):  # two runs in one process: each has its own store, nothing global
        cfg = tiny_config(name=name, report__sinks=["mlflow"])
        train(cfg, tiny_data["packed"], tmp_path / name, quiet=True)
    for name in ("a", "b"):
        client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / name / 'mlflow.db'}")
        runs = client.search_runs([client.get_experiment_by_name("vloom").experiment_id])
        assert [(r.info.run_name, r.info.status) for r in runs] == [(name, "FINISHED")]
        recs = _records(tmp_path / name)
        hist = client.get_metric_history(runs[0].info.run_id, "loss")
        assert [(m.step, m.value) for m in hist] == [(r["step"], r["loss"]) for r in recs]


@pytest.mark.skipif(
    importlib.util.find_spec("wandb") is None, reason="needs wandb: pip install 'vloom[wandb]'"
)
def wandb_log_records(path):
    """The protobuf payloads of a W&B transaction log (.wandb: LevelDB's log format behind a
    ':W&B' header; wandb >= 0.20 no longer ships a Python reader)."""
    data, block = path.read_bytes(), 32768
    assert data[:4] == b":W&B"
    pos, part, out = 7, b"", []
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        length, kind = struct.unpack_from("<HB", data, pos + 4)
        part += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # FULL, or LAST of FIRST/MIDDLE.../LAST
            out.append(part)
            part = b""
    return out


@pytest.mark.skipif(
    importlib.util.find_spec("wandb") is None, reason="needs wandb: pip install 'vloom[wandb]'"
)
def test_wandb_offline_sink_writes_every_record(tiny_data, tmp_path, monkeypatch):
    from wandb.proto import wandb_internal_pb2

    monkeypatch.setenv("WANDB_SILENT", "true")
    train(tiny_config(report__sinks=["wandb"]), tiny_data["packed"], tmp_path, quiet=True)
    (run_dir,) = (tmp_path / "wandb").glob("offline-run-*")  # offline: nothing left the machine
    (log,) = run_dir.glob("run-*.wandb")
    got = []
    for payload in wandb_log_records(log):
        rec = wandb_internal_pb2.Record()
        rec.ParseFromString(payload)
        if rec.WhichOneof("record_type") == "history":
            items = {
                i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in rec.history.item
            }
            got.append((items["_step"], items["loss"]))
    want = [(r["step"], r["loss"]) for r in _records(tmp_path)]
    assert [s for s, _ in got] == [s for s, _ in want]
    assert [v for _, v in got] == pytest.approx([v for _, v in want])


def test_absent_package_asked_for_is_a_one_line_error(tiny_data, tmp_path, monkeypatch):
    from vloom.train import sinks

    # the real lookup, for a package name nothing provides
    monkeypatch.setitem(sinks._PACKAGE, "mlflow", "vloom_no_such_package")
    with pytest.raises(ValueError) as e:
        train(tiny_config(report__sinks=["mlflow"]), tiny_data["packed"], tmp_path, quiet=True)
    assert "vloom_no_such_package" in str(e.value) and "not installed" in str(e.value)
    assert "\n" not in str(e.value)


def test_unknown_sink_is_a_config_error():
    from vloom.config import ConfigError

    with pytest.raises(ConfigError, match="report.sinks"):
        tiny_config(report__sinks=["neptune"])
