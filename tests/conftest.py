"""Shared fixtures: the composed default config and a small extracted ERP."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from omegaconf import DictConfig, OmegaConf, open_dict

from pipeline.compose_params import compose_config

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture()
def default_config() -> DictConfig:
    return compose_config([])


@pytest.fixture()
def small_config(tmp_path: Path) -> DictConfig:
    """The smoke experiment with a SQLite file under tmp_path, with the gl_account task as `task`."""
    cfg = compose_config(["experiment=smoke"])
    OmegaConf.update(cfg, "source.url", f"sqlite:///{tmp_path / 'erp.sqlite'}")
    OmegaConf.update(cfg, "source.n_invoices", 300)
    return select_task(cfg, "gl_account")


def select_task(cfg: DictConfig, task: str) -> DictConfig:
    """Make `tasks.<task>` available as `cfg.task`, as a stage run with --task does."""
    with open_dict(cfg):
        cfg.task = cfg.tasks[task]
    return cfg


@pytest.fixture()
def in_tmp_dir(tmp_path: Path):
    previous = Path.cwd()
    os.chdir(tmp_path)
    try:
        yield tmp_path
    finally:
        os.chdir(previous)
