"""Load a stage's settings from params.yaml, apply overrides and validate them.

DVC tracks params.yaml, so what dvc.lock records is what ran. A stage run by
hand takes Hydra override syntax (`key=value`, `+key=value`, `~key`) on top.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from pipeline.paths import CONF_DIR, PARAMS_FILE

log = logging.getLogger(__name__)

STUDENT_ARCHS = ("transformer", "bilstm", "cnn", "ngram", "mlp", "bert")
INIT_SOURCES = ("pretrained", "finetuned")
SOFT_LOSSES = ("kl", "logit_mse")
CLASS_WEIGHTS = ("balanced",)
BASELINE_KINDS = ("no_distill", "tfidf_logreg", "key_majority")


class ConfigError(ValueError):
    """Invalid settings, found before a stage starts work."""


def setup_logging() -> None:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )


def load_params(overrides: list[str] | None = None, params_file: str | Path = PARAMS_FILE) -> DictConfig:
    """Read params.yaml and apply Hydra-style overrides on top of it."""
    overrides = list(overrides or [])
    params_path = Path(params_file).resolve()
    if not params_path.is_file():
        raise ConfigError(
            f"{params_path} not found. Run stages from the repository root, or "
            "compose it from conf/ with `python -m pipeline.compose_params`."
        )

    conf_dir = params_path.parent / CONF_DIR
    groups = _group_choices(overrides, conf_dir, OmegaConf.load(params_path))
    key_overrides = [override for override in overrides if override not in groups.values()]
    try:
        if groups:
            cfg = _compose_with_groups(params_path, conf_dir, groups, key_overrides)
        else:
            with initialize_config_dir(config_dir=str(params_path.parent), version_base=None):
                cfg = compose(config_name=params_path.stem, overrides=key_overrides)
    except (HydraException, OmegaConfBaseException) as error:
        raise ConfigError(f"Invalid override in {overrides}: {error}") from error

    if overrides:
        log.info("Applied overrides on top of %s: %s", params_path.name, " ".join(overrides))
    else:
        log.info("Settings from %s, no overrides", params_path.name)
    return cfg


def _group_choices(overrides: list[str], conf_dir: Path, params: DictConfig) -> dict[str, str]:
    """Find overrides that pick a config group file, such as `source=database`; maps group to override."""
    groups = {}
    for override in overrides:
        name, separator, value = override.partition("=")
        if not separator or "." in name or name.startswith(("+", "~")) or not (conf_dir / name).is_dir():
            continue
        if name == "experiment":
            raise ConfigError(
                f"{override}: an experiment preset changes several sections at once. Compose it with "
                f"`python -m pipeline.compose_params {override}` or run `dvc exp run -S {override}`."
            )
        if name not in params:
            continue
        options = sorted(path.stem for path in (conf_dir / name).glob("*.yaml"))
        if value not in options:
            raise ConfigError(f"{override}: no file conf/{name}/{value}.yaml; choose one of {', '.join(options)}.")
        groups[name] = override
    return groups


def _compose_with_groups(params_path: Path, conf_dir: Path, groups: dict[str, str],
                         key_overrides: list[str]) -> DictConfig:
    """Replace each chosen group's section of params.yaml with the composed group file, then apply key overrides.

    Sections that are not chosen keep their params.yaml values, so earlier
    `dvc exp run -S` changes survive a hand run with `source=...`.
    """
    with initialize_config_dir(config_dir=str(conf_dir), version_base=None):
        chosen = compose(config_name="config", overrides=list(groups.values()))
    params = OmegaConf.load(params_path)
    for group in groups:
        params[group] = chosen[group]

    with tempfile.TemporaryDirectory() as folder:
        OmegaConf.save(params, Path(folder) / params_path.name)
        with initialize_config_dir(config_dir=folder, version_base=None):
            return compose(config_name=params_path.stem, overrides=key_overrides)


def validate(cfg: DictConfig) -> None:
    """Check the whole config and raise ConfigError naming the first bad value."""
    from pipeline.teacher_model import resolve_pretrained

    _require(cfg, ["seed", "source", "tasks", "teacher", "students", "distill", "compare", "mlflow"])

    temperature = cfg.distill.temperature
    if not isinstance(temperature, (int, float)) or temperature <= 0:
        raise ConfigError(
            f"distill.temperature={temperature!r} is invalid: it divides the logits, "
            "so it must be a number above 0 (1 is plain softmax, 2 to 8 is usual)."
        )
    alpha = cfg.distill.alpha
    if not isinstance(alpha, (int, float)) or not 0.0 <= alpha <= 1.0:
        raise ConfigError(
            f"distill.alpha={alpha!r} is invalid: it weighs the soft-target term "
            "against cross-entropy and must lie in [0, 1]."
        )

    _validate_distill_extras(cfg)

    if not cfg.students:
        raise ConfigError("students is empty: name at least one, e.g. students.bilstm with arch: bilstm.")
    for name, student in cfg.students.items():
        arch = student.get("arch") if isinstance(student, DictConfig) else None
        if arch not in STUDENT_ARCHS:
            raise ConfigError(
                f"Unknown student architecture students.{name}.arch={arch!r}. "
                f"Choose one of {', '.join(STUDENT_ARCHS)}, or pick a file under conf/student/."
            )
        for key in ("epochs", "batch_size"):
            if int(student[key]) < 1:
                raise ConfigError(f"students.{name}.{key}={student[key]!r} must be at least 1.")
        init = student.get("init_from_teacher")
        if init is not None and (init not in INIT_SOURCES or arch != "bert"):
            raise ConfigError(
                f"students.{name}.init_from_teacher={init!r} is invalid: set pretrained or finetuned on a "
                "student with arch bert (see conf/student/distilbert.yaml), or null."
            )

    _validate_baselines(cfg)
    _validate_augment(cfg)

    _validate_tasks(cfg)

    for section_name in ("teacher", "distill"):
        class_weight = cfg[section_name].get("class_weight")
        if class_weight is not None and class_weight not in CLASS_WEIGHTS:
            raise ConfigError(
                f"{section_name}.class_weight={class_weight!r} is invalid: set null (every example alike) or "
                f"{' or '.join(CLASS_WEIGHTS)}."
            )

    if cfg.teacher.pretrained is None and cfg.teacher.architecture is None:
        raise ConfigError(
            "teacher.pretrained and teacher.architecture are both null: set a pretrained "
            "model (folder, Hugging Face id or package:NAME) or an architecture (teacher=tiny)."
        )
    if cfg.teacher.pretrained is not None:
        resolve_pretrained(str(cfg.teacher.pretrained))


def _validate_tasks(cfg: DictConfig) -> None:
    from pipeline.task_spec import parse_task

    if not cfg.tasks:
        raise ConfigError("tasks is empty: name at least one, e.g. pick a task set with tasks=simulated_erp.")
    for key, task in cfg.tasks.items():
        if not isinstance(task, DictConfig):
            raise ConfigError(f"tasks.{key}={task!r} must be a task section; pick a file under conf/task/.")
        spec = parse_task(task)
        if spec.name != key:
            raise ConfigError(f"tasks.{key}.name={spec.name!r} differs from its key {key!r}; make them equal.")
        for setting, minimum in (("max_length", 1), ("student_vocab_size", 1), ("numeric_bins", 2)):
            value = task.get(setting)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ConfigError(
                    f"tasks.{key}.{setting}={value!r} must be a whole number of at least {minimum}."
                )


def _validate_distill_extras(cfg: DictConfig) -> None:
    soft_loss = cfg.distill.get("soft_loss", "kl")
    if soft_loss not in SOFT_LOSSES:
        raise ConfigError(
            f"distill.soft_loss={soft_loss!r} is unknown: choose one of {', '.join(SOFT_LOSSES)} "
            "(or a file under conf/distill/)."
        )
    temperature_end = cfg.distill.get("temperature_end")
    if temperature_end is not None and (not isinstance(temperature_end, (int, float)) or temperature_end <= 0):
        raise ConfigError(
            f"distill.temperature_end={temperature_end!r} is invalid: set a number above 0, "
            "or null for a fixed temperature."
        )
    alpha_end = cfg.distill.get("alpha_end")
    if alpha_end is not None and (not isinstance(alpha_end, (int, float)) or not 0.0 <= alpha_end <= 1.0):
        raise ConfigError(
            f"distill.alpha_end={alpha_end!r} is invalid: set a number in [0, 1], or null for a fixed alpha."
        )
    tau = cfg.distill.get("logit_adjustment", 0.0)
    if isinstance(tau, bool) or not isinstance(tau, (int, float)) or tau < 0:
        raise ConfigError(
            f"distill.logit_adjustment={tau!r} is invalid: set 0 (teacher logits as they are) or a positive "
            "tau. tau = 1 removes the label prior of the labeled split from the teacher's logits."
        )
    hidden_weight = cfg.distill.get("hidden_weight", 0.0)
    if not isinstance(hidden_weight, (int, float)) or hidden_weight < 0:
        raise ConfigError(
            f"distill.hidden_weight={hidden_weight!r} is invalid: set 0 (no hidden-state loss) or a positive weight."
        )


def _validate_baselines(cfg: DictConfig) -> None:
    for name, baseline in (cfg.get("baselines") or {}).items():
        kind = baseline.get("kind") if isinstance(baseline, DictConfig) else None
        if kind not in BASELINE_KINDS:
            raise ConfigError(
                f"Unknown baseline kind baselines.{name}.kind={kind!r}. "
                f"Choose one of {', '.join(BASELINE_KINDS)}, or pick a file under conf/baseline/."
            )
        if kind == "key_majority" and not baseline.get("key"):
            raise ConfigError(f"baselines.{name}.key is not set: name the field to look labels up by, "
                              "e.g. merchant_name.")
        if kind == "no_distill" and baseline.get("student") not in cfg.students:
            raise ConfigError(
                f"baselines.{name}.student={baseline.get('student')!r} is not a key of students "
                f"({', '.join(cfg.students)}): add that student or remove the baseline with ~baselines.{name}."
            )


def _validate_augment(cfg: DictConfig) -> None:
    augment = cfg.get("augment")
    if augment is None:
        return
    if int(augment.copies_per_record) < 0:
        raise ConfigError(f"augment.copies_per_record={augment.copies_per_record!r} must be 0 (off) or more.")
    for key in ("p_mask", "p_replace", "p_ngram"):
        if not 0.0 <= float(augment[key]) <= 1.0:
            raise ConfigError(f"augment.{key}={augment[key]!r} is a probability and must lie in [0, 1].")
    if float(augment.p_mask) + float(augment.p_replace) > 1.0:
        raise ConfigError(
            f"augment.p_mask + augment.p_replace = {float(augment.p_mask) + float(augment.p_replace)} exceeds 1: "
            "one draw per word decides between masking and replacing, so lower them."
        )


def _require(cfg: DictConfig, keys: list[str]) -> None:
    missing = [key for key in keys if key not in cfg]
    if missing:
        raise ConfigError(
            f"params.yaml lacks the section(s) {missing}. Recompose it from conf/ "
            "with `python -m pipeline.compose_params`."
        )
    for key in keys[1:]:
        if not isinstance(cfg[key], DictConfig):
            raise ConfigError(
                f"{key}={cfg[key]!r} replaces the whole {key} section with a single value. Set "
                f"keys inside it instead, e.g. {key}.<name>=<value>, or pick a file under "
                f"conf/{key}/ if that group exists."
            )


def stage_config(argv: list[str] | None = None, task: str | None = None) -> DictConfig:
    """Load, override and validate the config for a stage's command line.

    With `task`, that entry of `tasks` is also available as `cfg.task`.
    """
    cfg = load_params(sys.argv[1:] if argv is None else argv)
    if task is not None:
        if task not in cfg.tasks:
            raise ConfigError(f"--task {task!r} is not a key of tasks ({', '.join(cfg.tasks)}).")
        with open_dict(cfg):
            cfg.task = cfg.tasks[task]
    validate(cfg)
    return cfg


def parse_stage_args(argv: list[str] | None, doc: str, module: str,
                     *names: tuple[str, str]) -> tuple[argparse.Namespace, list[str]]:
    """Parse `--task NAME` plus the named options; everything else is returned as overrides."""
    parser = argparse.ArgumentParser(prog=f"python -m {module}", description=doc.splitlines()[0])
    parser.add_argument("--task", required=True, help="key under `tasks` in params.yaml, e.g. gl_account")
    for name, help_text in names:
        parser.add_argument(f"--{name}", required=True, help=help_text)
    return parser.parse_known_args(sys.argv[1:] if argv is None else argv)


def run_stage(main, argv: list[str] | None = None) -> None:
    """Run a stage's main function; a ConfigError exits with code 2 and no traceback."""
    setup_logging()
    try:
        main(argv)
    except ConfigError as error:
        log.error("%s", error)
        sys.exit(2)


def to_container(cfg: DictConfig) -> dict:
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
