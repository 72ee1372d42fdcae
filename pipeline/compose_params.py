"""Compose conf/ with Hydra and write params.yaml, as `dvc exp run` does.

Usage: python -m pipeline.compose_params [override ...]
"""

from __future__ import annotations

import logging
import sys

from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from pipeline.config import ConfigError, run_stage
from pipeline.paths import CONF_DIR, PARAMS_FILE, REPO_ROOT

log = logging.getLogger(__name__)


def compose_config(overrides: list[str] | None = None) -> DictConfig:
    overrides = list(overrides or [])
    try:
        with initialize_config_dir(config_dir=str(REPO_ROOT / CONF_DIR), version_base=None):
            return compose(config_name="config", overrides=overrides)
    except (HydraException, OmegaConfBaseException) as error:
        raise ConfigError(f"Cannot compose conf/ with {overrides}: {error}") from error


def main(argv: list[str] | None = None) -> None:
    overrides = sys.argv[1:] if argv is None else argv
    cfg = compose_config(overrides)

    # The same resolve-and-dump that `dvc exp run` does, so the file is identical.
    OmegaConf.resolve(cfg)
    (REPO_ROOT / PARAMS_FILE).write_text(OmegaConf.to_yaml(cfg), encoding="utf-8")
    log.info("Wrote %s from %s/ with overrides %s", PARAMS_FILE, CONF_DIR, overrides)


if __name__ == "__main__":
    run_stage(main)
