"""Hydra entry point for sweeps: distil every student, train the baselines and compare, in one job folder.

Usage, from the repository root after `dvc repro soft_labels` (the task is
`sweep.task`, one key of `tasks`):

    python -m pipeline.sweep -m distill.temperature=1,2,4,8
    python -m pipeline.sweep -m seed=1,2,3 distill=kd,logit_mse sweep.task=ticket_routing

Each job composes conf/ with its overrides, as `dvc exp run -S` does, and
runs in its own Hydra output folder (multirun/<date>/<time>/<job>/). There
the datasets, soft labels and teacher of the repository are linked, not
copied, and the students, baselines, augmented data and reports are written,
so jobs never overwrite the DVC outputs in models/ and reports/. Every run
goes to the MLflow store of the repository (sqlite:///mlflow.db there, unless
MLFLOW_TRACKING_URI is set), in the configured experiment, tagged with task,
student, method and seed. The job returns the best student's test macro-F1,
so a Hydra sweeper plugin can optimize it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import hydra
import mlflow
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from pipeline import paths
from pipeline.config import ConfigError, validate

log = logging.getLogger(__name__)

def link_inputs(root: Path, job_dir: Path, task: str) -> None:
    """Link the repository's dataset, soft labels and teacher of `task` into `job_dir`."""
    task_paths = paths.TaskPaths(task)
    sources = [task_paths.datasets, task_paths.soft_labels, task_paths.teacher]
    for relative in sources:
        source = root / relative
        if not source.exists():
            raise FileNotFoundError(f"{source} not found: run `dvc repro soft_labels` in {root} before a sweep.")
        target = job_dir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            target.symlink_to(source.resolve(), target_is_directory=source.is_dir())


def run_job(cfg: DictConfig, root: Path, job_dir: Path) -> float:
    from pipeline.augment import augmented_file, write_augmented
    from pipeline.baselines import train_baseline
    from pipeline.compare import compare
    from pipeline.distill import distill

    task = str(cfg.sweep.task)
    if task not in cfg.tasks:
        raise ConfigError(f"sweep.task={task!r} is not a key of tasks ({', '.join(cfg.tasks)}).")
    with open_dict(cfg):
        cfg.task = cfg.tasks[task]
    validate(cfg)
    link_inputs(root, job_dir, task)
    if "MLFLOW_TRACKING_URI" not in os.environ:
        mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")

    # Stages read and write paths relative to the working directory. The next
    # job of a multirun resolves its output folder against it too, so restore it.
    os.chdir(job_dir)
    try:
        if int(cfg.augment.copies_per_record) > 0:
            write_augmented(cfg, augmented_file(task))
        for name in cfg.students:
            distill(cfg, name)
        for name in cfg.get("baselines") or {}:
            train_baseline(cfg, name)
        table = compare(cfg)
    finally:
        os.chdir(root)

    best = float(table.loc[list(cfg.students), "test/macro_f1"].max())
    log.info("Job in %s: best student test macro-F1 %.4f", job_dir, best)
    return best


@hydra.main(config_path="../conf", config_name="config", version_base=None)
def main(cfg: DictConfig) -> float:
    return run_job(cfg, Path(hydra.utils.get_original_cwd()), Path(HydraConfig.get().runtime.output_dir))


if __name__ == "__main__":
    main()
