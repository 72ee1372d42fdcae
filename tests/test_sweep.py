"""Sweep job folders: inputs linked from the repository, outputs kept apart."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.sweep import link_inputs, run_job

INPUTS = ["data/datasets/gl_account", "data/soft_labels/gl_account.parquet", "models/gl_account/teacher"]


def make_inputs(root: Path) -> None:
    for relative in INPUTS:
        path = root / relative
        if path.suffix:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
        else:
            path.mkdir(parents=True)


def test_inputs_linked(tmp_path):
    root, job = tmp_path / "repo", tmp_path / "job"
    make_inputs(root)
    job.mkdir()

    link_inputs(root, job, "gl_account")

    for relative in INPUTS:
        assert (job / relative).is_symlink(), relative
        assert (job / relative).resolve() == (root / relative).resolve()
    # models/<task>/students is created by the job itself, so it never writes into the repository's models/.
    assert not (job / "models" / "gl_account").is_symlink()


def test_missing_input_rejected(tmp_path):
    (tmp_path / "job").mkdir()

    with pytest.raises(FileNotFoundError, match="dvc repro soft_labels"):
        link_inputs(tmp_path / "repo", tmp_path / "job", "gl_account")


def test_job_restores_working_directory(tmp_path, default_config, monkeypatch):
    import pipeline.distill

    root, job = tmp_path / "repo", tmp_path / "job"
    make_inputs(root)
    job.mkdir()
    monkeypatch.chdir(root)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")

    def failing_distill(cfg, name):
        raise RuntimeError(f"distill {name} failed")

    monkeypatch.setattr(pipeline.distill, "distill", failing_distill)

    # The next job of a multirun resolves its folder against the working directory.
    with pytest.raises(RuntimeError, match="distill transformer failed"):
        run_job(default_config, root, job)
    assert Path.cwd() == root


def test_recompare_needs_a_job_folder(tmp_path):
    from pipeline.config import ConfigError
    from pipeline.sweep_compare import compare_job

    with pytest.raises(ConfigError, match="config.yaml not found"):
        compare_job(tmp_path, tmp_path)


def test_recompare_uses_the_jobs_settings(tmp_path, default_config, monkeypatch):
    from omegaconf import OmegaConf

    import pipeline.compare
    from pipeline.sweep_compare import compare_job

    root, job = tmp_path / "repo", tmp_path / "job"
    root.mkdir()
    (job / ".hydra").mkdir(parents=True)
    default_config.seed = 7
    default_config.sweep.task = "ticket_routing"
    OmegaConf.save(default_config, job / ".hydra" / "config.yaml")
    monkeypatch.chdir(root)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    seen = {}

    def fake_compare(cfg):
        seen.update(seed=cfg.seed, task=cfg.task.name, cwd=Path.cwd())

    monkeypatch.setattr(pipeline.compare, "compare", fake_compare)

    compare_job(job, root)

    assert seen == {"seed": 7, "task": "ticket_routing", "cwd": job}
    assert Path.cwd() == root
