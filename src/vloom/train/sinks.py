"""Metric sinks: every metrics.jsonl record also goes to TensorBoard, MLflow or W&B.

metrics.jsonl stays the record of truth (the report reads it); sinks are views of it for
the usual dashboards, all offline: TensorBoard event files in RUN/tb/, an MLflow file store
in RUN/mlruns/, a W&B offline run in RUN/wandb/. Which ones: `report.sinks` in the config
([tensorboard, mlflow, wandb]). Unset means TensorBoard when it is installed and nothing
otherwise; a sink asked for whose package is missing is a one-line error.

The loop calls `log_metrics(cfg, out_dir, record)` where it writes a metrics.jsonl line;
writers open on the first record of a run and close on its last step.
"""

from __future__ import annotations

import importlib.util
import math
import os
from pathlib import Path
from typing import Any

SINKS = ("tensorboard", "mlflow", "wandb")
_PACKAGE = {"tensorboard": "tensorboard", "mlflow": "mlflow", "wandb": "wandb"}
TB_DIR = "tb"


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
            import mlflow

            mlflow.set_tracking_uri((out_dir / "mlruns").resolve().as_uri())
            self.writers["mlflow"] = mlflow.start_run(run_name=name)
        if "wandb" in sinks:
            import wandb

            os.environ.setdefault("WANDB_MODE", "offline")
            self.writers["wandb"] = wandb.init(
                dir=str(out_dir), project="vloom", name=name, mode="offline", reinit=True
            )

    def write(self, rec: dict[str, Any]) -> None:
        step, values = int(rec.get("step", 0)), _scalars(rec)
        if "tensorboard" in self.writers:
            tb = self.writers["tensorboard"]
            for k, v in values.items():
                tb.add_scalar(f"train/{k}", v, step)
            tb.flush()  # a killed run keeps what it logged, like metrics.jsonl
        if "mlflow" in self.writers:
            import mlflow

            mlflow.log_metrics(values, step=step)
        if "wandb" in self.writers:
            self.writers["wandb"].log(values, step=step)

    def close(self) -> None:
        if "tensorboard" in self.writers:
            self.writers["tensorboard"].close()
        if "mlflow" in self.writers:
            import mlflow

            mlflow.end_run()
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
