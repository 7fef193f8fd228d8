"""Metric sinks: every metrics.jsonl record also goes to TensorBoard, MLflow or W&B.

metrics.jsonl stays the record of truth (the report reads it); sinks are views of it for
the usual dashboards, all offline: TensorBoard event files in RUN/tb/, an MLflow SQLite store
RUN/mlflow.db (MLflow 3 deprecates the ./mlruns file store; `mlflow ui --backend-store-uri
sqlite:///RUN/mlflow.db`), a W&B offline run in RUN/wandb/ (`wandb sync` uploads it later). Which ones: `report.sinks` in the config
([tensorboard, mlflow, wandb]). Unset means TensorBoard when it is installed and nothing
otherwise; a sink asked for whose package is missing is a one-line error.

The loop calls `log_metrics(cfg, out_dir, record)` where it writes a metrics.jsonl line;
writers open on the first record of a run and close on its last step.
"""

from __future__ import annotations

import importlib.util
import math
import os
import time
from pathlib import Path
from typing import Any

SINKS = ("tensorboard", "mlflow", "wandb")
_PACKAGE = {"tensorboard": "tensorboard", "mlflow": "mlflow", "wandb": "wandb"}
TB_DIR = "tb"
MLFLOW_DB = "mlflow.db"


def _installed(sink: str) -> bool:
    return importlib.util.find_spec(_PACKAGE[sink]) is not None


def requested_sinks(cfg: Any) -> list[str]:
    """The sinks a config asks for (validated), or the default."""
    asked = getattr(getattr(cfg, "report", None), "sinks", None)
    if asked is None:
        return ["tensorboard"] if _installed("tensorboard") else []
    out = []
    for s in asked:
        if s not in SINKS:
            raise ValueError(f"report.sinks: unknown sink {s!r} (known: {', '.join(SINKS)})")
        if not _installed(s):
            raise ValueError(
                f"report.sinks asks for {s} but the {_PACKAGE[s]} package is not installed "
                f"(pip install {_PACKAGE[s]}, or remove it from report.sinks)"
            )
        out.append(s)
    return out


def _scalars(rec: dict[str, Any]) -> dict[str, float]:
    return {
        k: float(v)
        for k, v in rec.items()
        if k != "step"
        and isinstance(v, (int, float))
        and not isinstance(v, bool)
        and math.isfinite(v)
    }


class MetricSinks:
    """The open writers of one run directory."""

    def __init__(self, cfg: Any, out_dir: Path, sinks: list[str]) -> None:
        self.writers: dict[str, Any] = {}
        name = str(getattr(cfg, "name", "run"))
        if "tensorboard" in sinks:
            from torch.utils.tensorboard import SummaryWriter

            self.writers["tensorboard"] = SummaryWriter(log_dir=str(out_dir / TB_DIR))
        if "mlflow" in sinks:
            # a client, not the fluent API: no process-global run or URI, so the runs of a
            # sweep in one process each write to their own store
            from mlflow.tracking import MlflowClient

            db = (out_dir / MLFLOW_DB).resolve()
            client = MlflowClient(tracking_uri=f"sqlite:///{db}")
            exp = client.get_experiment_by_name("vloom")
            exp_id = (
                exp.experiment_id
                if exp is not None
                else client.create_experiment(
                    "vloom", artifact_location=(out_dir / "mlartifacts").resolve().as_uri()
                )
            )
            run = client.create_run(exp_id, run_name=name)
            self.writers["mlflow"] = (client, run.info.run_id)
        if "wandb" in sinks:
            import wandb

            os.environ.setdefault("WANDB_MODE", "offline")
            self.writers["wandb"] = wandb.init(
                dir=str(out_dir), project="vloom", name=name, mode="offline", reinit="create_new"
            )

    def write(self, rec: dict[str, Any]) -> None:
        step, values = int(rec.get("step", 0)), _scalars(rec)
        if "tensorboard" in self.writers:
            tb = self.writers["tensorboard"]
            for k, v in values.items():
                tb.add_scalar(k if k.startswith("eval/") else f"train/{k}", v, step)
            tb.flush()  # a killed run keeps what it logged, like metrics.jsonl
        if "mlflow" in self.writers:
            from mlflow.entities import Metric

            client, run_id = self.writers["mlflow"]
            now = int(time.time() * 1000)
            client.log_batch(run_id, metrics=[Metric(k, v, now, step) for k, v in values.items()])
        if "wandb" in self.writers:
            self.writers["wandb"].log(values, step=step)

    def close(self) -> None:
        if "tensorboard" in self.writers:
            self.writers["tensorboard"].close()
        if "mlflow" in self.writers:
            client, run_id = self.writers["mlflow"]
            client.set_terminated(run_id)
        if "wandb" in self.writers:
            self.writers["wandb"].finish()
        self.writers.clear()


_OPEN: dict[str, MetricSinks] = {}


def log_metrics(cfg: Any, out_dir: str | Path, rec: dict[str, Any]) -> None:
    """Send one metrics record to the run's sinks; the record of the run's last step closes them."""
    key = str(Path(out_dir).resolve())
    sinks = _OPEN.get(key)
    if sinks is None:
        names = requested_sinks(cfg)
        if not names:
            return
        sinks = _OPEN[key] = MetricSinks(cfg, Path(out_dir), names)
    sinks.write(rec)
    if rec.get("step") == getattr(getattr(cfg, "train", None), "steps", None):
        _OPEN.pop(key).close()
