"""Rerun the comparison of finished sweep jobs, for example to time them again on an idle machine.

Usage, from the repository root: python -m pipeline.sweep_compare JOB_DIR [JOB_DIR ...]

Each JOB_DIR is a job folder of `python -m pipeline.sweep`
(multirun/<date>/<time>/<job>/). Its .hydra/config.yaml gives the settings,
and its models/ the trained students and baselines, which are not retrained.
Accuracy figures come out as before. Size and latency are measured anew, so
jobs trained side by side, or next to other work, can be timed on their own.
The job's reports are rewritten and a new comparison run goes to MLflow.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

import mlflow
from omegaconf import OmegaConf, open_dict

from pipeline.config import ConfigError, run_stage, setup_logging, validate

log = logging.getLogger(__name__)


def compare_job(job_dir: Path, root: Path) -> None:
    """Run the compare stage in `job_dir` with the settings that job ran with."""
    from pipeline.compare import compare

    settings = job_dir / ".hydra" / "config.yaml"
    if not settings.is_file():
        raise ConfigError(f"{settings} not found: give the folder of one sweep job, such as multirun/<date>/<time>/0.")
    cfg = OmegaConf.load(settings)
    with open_dict(cfg):
        cfg.task = cfg.tasks[str(cfg.sweep.task)]
    validate(cfg)
    if "MLFLOW_TRACKING_URI" not in os.environ:
        mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")

    os.chdir(job_dir)
    try:
        compare(cfg)
    finally:
        os.chdir(root)
    log.info("Compared the models of %s again", job_dir)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pipeline.sweep_compare", description=__doc__.splitlines()[0])
    parser.add_argument("job_dirs", nargs="+", type=Path, help="sweep job folders, e.g. multirun/<date>/<time>/0")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    setup_logging()
    root = Path.cwd()
    for job_dir in args.job_dirs:
        compare_job(job_dir.resolve(), root)


if __name__ == "__main__":
    run_stage(main)
