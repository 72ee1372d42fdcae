"""MLflow helpers shared by the stages: one experiment, one run per model."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import lightning as L
import mlflow
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)

RUN_INFO_FILE = "mlflow_run.json"


def start_run(cfg: DictConfig, run_name: str, stage: str, params: dict | None = None):
    """Start an MLflow run in the configured experiment, tagged with stage, seed and (for task stages) task."""
    mlflow.set_experiment(str(cfg.mlflow.experiment_name))
    tags = {"stage": stage, "seed": str(cfg.seed)}
    if "task" in cfg:
        tags["task"] = str(cfg.task.name)
    run = mlflow.start_run(run_name=run_name, tags=tags)
    if params:
        mlflow.log_params(_flatten(params))
    log.info("MLflow run %s (%s) in experiment %r at %s", run.info.run_id, run_name,
             cfg.mlflow.experiment_name, mlflow.get_tracking_uri())
    return run


def save_run_info(folder: Path, run) -> None:
    """Record the run id next to a model, so later stages can log to the same run."""
    info = {"run_id": run.info.run_id, "experiment_id": run.info.experiment_id}
    (folder / RUN_INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")


def load_run_id(folder: Path) -> str | None:
    file = folder / RUN_INFO_FILE
    return json.loads(file.read_text())["run_id"] if file.is_file() else None


def _flatten(params: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def section(cfg: DictConfig, *keys: str) -> dict:
    return {key: OmegaConf.to_container(cfg[key], resolve=True) if OmegaConf.is_config(cfg[key]) else cfg[key]
            for key in keys}


class MlflowMetrics(L.Callback):
    """Log the epoch's logged metrics to the active MLflow run, one step per epoch."""

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        self._log(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._log(trainer)

    @staticmethod
    def _log(trainer: L.Trainer) -> None:
        metrics = {name: float(value) for name, value in trainer.callback_metrics.items()}
        metrics = {name: value for name, value in metrics.items() if math.isfinite(value)}
        if metrics:
            mlflow.log_metrics(metrics, step=trainer.current_epoch)
