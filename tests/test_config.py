"""params.yaml against conf/, and bad settings stopped before any work."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from pipeline.compose_params import compose_config
from pipeline.config import ConfigError, load_params, validate

REPO_ROOT = Path(__file__).resolve().parent.parent


def test_params_yaml_matches_conf():
    composed = OmegaConf.to_container(compose_config([]), resolve=True)
    on_disk = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())

    assert on_disk == composed, (
        "params.yaml has drifted from conf/: run `python -m pipeline.compose_params`."
    )


def test_default_config_valid(default_config):
    validate(default_config)


def test_smoke_experiment_uses_tiny_teacher():
    cfg = compose_config(["experiment=smoke"])

    assert cfg.teacher.pretrained is None
    assert cfg.teacher.architecture.num_hidden_layers >= 1
    validate(cfg)


def test_rare_classes_experiment_composition():
    # docs/results.md ran these settings as overrides, so the experiment file must compose the same config.
    by_file = compose_config(["experiment=rare_classes"])
    by_overrides = compose_config(["distill.class_weight=balanced"])

    assert by_file == by_overrides
    validate(by_file)


def test_overrides_applied_on_params(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text((REPO_ROOT / "params.yaml").read_text())

    cfg = load_params(["distill.temperature=4", "students.bilstm.epochs=1"], params)

    assert cfg.distill.temperature == 4
    assert cfg.students.bilstm.epochs == 1


def test_unknown_key_override_rejected(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text((REPO_ROOT / "params.yaml").read_text())

    with pytest.raises(ConfigError, match="distill.temprature"):
        load_params(["distill.temprature=4"], params)


@pytest.mark.parametrize("temperature", [0, -1.5])
def test_nonpositive_temperature_rejected(default_config, temperature):
    default_config.distill.temperature = temperature

    with pytest.raises(ConfigError, match=r"distill.temperature=.*above 0"):
        validate(default_config)


def test_alpha_outside_unit_interval_rejected(default_config):
    default_config.distill.alpha = 1.5

    with pytest.raises(ConfigError, match="distill.alpha=1.5"):
        validate(default_config)


def test_unknown_teacher_class_weight_rejected(default_config):
    default_config.teacher.class_weight = "inverse"

    with pytest.raises(ConfigError, match="teacher.class_weight='inverse' is invalid.*balanced"):
        validate(default_config)


@pytest.mark.parametrize("tau", [-1.0, "high", True])
def test_bad_logit_adjustment_rejected(default_config, tau):
    default_config.distill.logit_adjustment = tau

    with pytest.raises(ConfigError, match="distill.logit_adjustment=.* is invalid"):
        validate(default_config)


def test_unknown_student_rejected(default_config):
    default_config.students.bilstm.arch = "gru"

    with pytest.raises(ConfigError, match=r"students.bilstm.arch='gru'.*transformer, bilstm"):
        validate(default_config)


def test_missing_teacher_folder_rejected(default_config, tmp_path):
    missing = tmp_path / "no-such-teacher"
    default_config.teacher.pretrained = str(missing)

    with pytest.raises(ConfigError, match=f"teacher.pretrained='{missing}' not found"):
        validate(default_config)


def test_uncached_hub_id_rejected(default_config):
    default_config.teacher.pretrained = "example-org/model-that-is-not-cached"

    with pytest.raises(ConfigError, match="not in the local cache|neither a local folder"):
        validate(default_config)


def test_missing_teacher_package_rejected(default_config):
    default_config.teacher.pretrained = "package:no_such_weights_package"

    with pytest.raises(ConfigError, match="no_such_weights_package.*not"):
        validate(default_config)


def test_password_in_url_rejected(default_config):
    from pipeline.extract import source_url

    default_config.source.url = "postgresql+psycopg://erp:s3cret@127.0.0.1/erp"

    with pytest.raises(ConfigError) as error:
        source_url(default_config)
    assert "s3cret" not in str(error.value)
    assert "ERP_DB_PASSWORD" in str(error.value)


def test_stage_stops_before_work(tmp_path):
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    params["distill"]["temperature"] = 0
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))

    result = subprocess.run([sys.executable, "-m", "pipeline.extract"], cwd=tmp_path, capture_output=True,
                            text=True, env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"})

    assert result.returncode == 2
    assert "distill.temperature=0" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "data").exists()


def test_group_override_replaces_section():
    cfg = load_params(["teacher=tiny", "teacher.epochs=3", "distill.temperature=4"], REPO_ROOT / "params.yaml")

    assert cfg.teacher.pretrained is None
    assert cfg.teacher.architecture.num_hidden_layers == 2
    assert cfg.teacher.epochs == 3
    assert cfg.distill.temperature == 4
    assert cfg.source == compose_config([]).source


def test_unknown_group_file_rejected():
    with pytest.raises(ConfigError, match=r"no file conf/teacher/huge.yaml; choose one of .*minilm.*tiny"):
        load_params(["teacher=huge"], REPO_ROOT / "params.yaml")


def test_experiment_by_hand_rejected():
    with pytest.raises(ConfigError, match="compose_params experiment=smoke"):
        load_params(["experiment=smoke"], REPO_ROOT / "params.yaml")


def test_default_tasks_are_four():
    assert list(compose_config([]).tasks) == ["gl_account", "late_payment", "invoice_block", "ticket_routing"]


def test_unknown_task_stage_rejected():
    from pipeline.config import stage_config

    with pytest.raises(ConfigError, match=r"--task 'gl_acount' is not a key of tasks \(gl_account, "):
        stage_config([], task="gl_acount")


def test_task_name_must_match_key():
    cfg = compose_config([])
    cfg.tasks.late_payment.name = "late"

    with pytest.raises(ConfigError, match="tasks.late_payment.name='late' differs from its key"):
        validate(cfg)


def test_leaking_feature_stops_stage():
    cfg = compose_config([])
    cfg.tasks.late_payment.numeric_fields.append("days_late")

    with pytest.raises(ConfigError, match="days_late"):
        validate(cfg)
