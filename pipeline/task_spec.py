"""A supervised task as configuration: where its records come from and which columns play which role.

Every file under conf/task/ parses into a TaskSpec. The build_datasets stage
reads nothing else about a task, so a new task on any source is a new YAML
file. The checks here run before any data is read, so a bad task file fails
in a second with the key and the fix.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from omegaconf import DictConfig, OmegaConf

from pipeline.config import ConfigError

SPLIT_POLICIES = ("auto", "time", "group", "stratified")
# Columns that build_datasets writes itself; a field of the same name would overwrite one.
RESERVED_NAMES = ("example_id", "group", "time", "text", "label")
RARE_ACTIONS = ("merge", "drop", "keep")


@dataclass(frozen=True)
class Join:
    """One table (or SQL query) joined onto the entity rows, which must not multiply them."""

    source: str
    left_on: str
    right_on: str
    columns: dict[str, str]
    how: str = "left"
    is_query: bool = False


@dataclass(frozen=True)
class TaskSpec:
    name: str
    entity: str
    id_column: str
    label: str
    joins: list[Join] = field(default_factory=list)
    derive: dict[str, str] = field(default_factory=dict)
    text_fields: list[str] = field(default_factory=list)
    categorical_fields: list[str] = field(default_factory=list)
    numeric_fields: list[str] = field(default_factory=list)
    group_key: str | None = None
    time_key: str | None = None
    leaks: list[str] = field(default_factory=list)
    split_policy: str = "auto"
    test_fraction: float = 0.15
    validation_fraction: float = 0.10
    label_budget: float = 0.10
    rare_min_count: int = 0
    rare_action: str = "keep"
    other_label: str = "other"
    label_names: dict | None = None

    @property
    def feature_fields(self) -> list[str]:
        return [*self.text_fields, *self.categorical_fields, *self.numeric_fields]

    def resolved_split_policy(self) -> str:
        """Time split where a time key exists, else group split where a group key exists, else stratified."""
        if self.split_policy != "auto":
            return self.split_policy
        if self.time_key:
            return "time"
        if self.group_key:
            return "group"
        return "stratified"


def _names(value, key: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ConfigError(f"task.{key}={value!r} must be a list of column names.")
    return list(value)


def _parse_join(index: int, raw: dict) -> Join:
    where = f"task.joins[{index}]"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}={raw!r} must be a mapping with table (or sql), key and columns.")
    if ("table" in raw) == ("sql" in raw):
        raise ConfigError(f"{where} needs exactly one of table (an extracted table) or sql (a query over them).")
    # Not `on`: YAML 1.1 reads a bare `on` key as the boolean true.
    key = raw.get("key")
    if isinstance(key, str):
        left_on = right_on = key
    elif isinstance(key, dict) and set(key) == {"left", "right"}:
        left_on, right_on = str(key["left"]), str(key["right"])
    else:
        raise ConfigError(f"{where}.key={key!r} must be a column name or {{left: <column>, right: <column>}}.")

    columns = raw.get("columns")
    if isinstance(columns, list):
        columns = {column: column for column in columns}
    if not isinstance(columns, dict) or not columns:
        raise ConfigError(
            f"{where}.columns={columns!r} must list the columns to take, as a list or as "
            "{new_name: source_column}."
        )
    how = raw.get("how", "left")
    if how not in ("left", "inner"):
        raise ConfigError(f"{where}.how={how!r} must be left or inner.")
    source = str(raw.get("table") or raw.get("sql"))
    return Join(source, left_on, right_on, {str(k): str(v) for k, v in columns.items()}, how, "sql" in raw)


def _number(value, key: str, whole: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"task.{key}={value!r} must be a {'whole number' if whole else 'number'}.")
    if whole and float(value) != int(value):
        raise ConfigError(f"task.{key}={value!r} must be a whole number.")
    return float(value)


def _fraction_or_count(value, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ConfigError(f"task.{key}={value!r} must be a fraction in (0, 1) or a whole count of at least 1.")
    if value >= 1 and float(value) != int(value):
        raise ConfigError(f"task.{key}={value!r} is above 1, so it is read as a count and must be a whole number.")
    return float(value)


def parse_task(task: DictConfig) -> TaskSpec:
    """Turn a task section into a TaskSpec, raising ConfigError on the first bad value."""
    raw = OmegaConf.to_container(task, resolve=True)
    for key in ("name", "entity", "id", "label"):
        if not raw.get(key):
            raise ConfigError(f"task.{key} is missing in task {raw.get('name', '?')!r}: every task file sets it.")

    split = raw.get("split") or {}
    rare = raw.get("rare_classes") or {}
    spec = TaskSpec(
        name=str(raw["name"]), entity=str(raw["entity"]), id_column=str(raw["id"]), label=str(raw["label"]),
        joins=[_parse_join(index, join) for index, join in enumerate(raw.get("joins") or [])],
        derive={str(k): str(v) for k, v in (raw.get("derive") or {}).items()},
        text_fields=_names(raw.get("text_fields"), "text_fields"),
        categorical_fields=_names(raw.get("categorical_fields"), "categorical_fields"),
        numeric_fields=_names(raw.get("numeric_fields"), "numeric_fields"),
        group_key=raw.get("group_key"), time_key=raw.get("time_key"),
        leaks=_names(raw.get("leaks"), "leaks"),
        split_policy=str(split.get("policy", "auto")),
        test_fraction=_number(split.get("test_fraction", 0.15), "split.test_fraction"),
        validation_fraction=_number(split.get("validation_fraction", 0.10), "split.validation_fraction"),
        label_budget=_fraction_or_count(raw.get("label_budget", 0.10), "label_budget"),
        rare_min_count=int(_number(rare.get("min_count", 0), "rare_classes.min_count", whole=True)),
        rare_action=str(rare.get("action", "keep")),
        other_label=str(rare.get("other_label", "other")),
        label_names=raw.get("label_names"),
    )
    check_task(spec)
    return spec


def check_task(spec: TaskSpec) -> None:
    """Reject inconsistent roles: leaking features, a label used as a feature, unknown policies."""
    _check_fields(spec)
    _check_split_settings(spec)


def _check_fields(spec: TaskSpec) -> None:
    if not spec.feature_fields:
        raise ConfigError(
            f"Task {spec.name!r} has no input: set text_fields, categorical_fields or numeric_fields."
        )
    leaking = [column for column in spec.feature_fields if column in spec.leaks or column == spec.label]
    if leaking:
        raise ConfigError(
            f"Task {spec.name!r} lists {leaking} as features, but they are the label or are declared in "
            f"task.leaks {spec.leaks}: they would not be known when the model is used. Remove them from the "
            "text, categorical and numeric fields."
        )
    reserved = [column for column in spec.feature_fields if column in RESERVED_NAMES]
    if reserved:
        raise ConfigError(
            f"Task {spec.name!r} uses the reserved name(s) {reserved} for a field; the dataset has its own "
            f"columns {list(RESERVED_NAMES)}. Rename the field in task.derive or a join's columns."
        )
    repeated = sorted({column for column in spec.feature_fields if spec.feature_fields.count(column) > 1})
    if repeated:
        raise ConfigError(f"Task {spec.name!r} lists {repeated} in more than one of the field lists; keep one.")


def _check_split_settings(spec: TaskSpec) -> None:
    if spec.split_policy not in SPLIT_POLICIES:
        raise ConfigError(f"task.split.policy={spec.split_policy!r} must be one of {', '.join(SPLIT_POLICIES)}.")
    policy = spec.resolved_split_policy()
    if policy == "time" and not spec.time_key:
        raise ConfigError(f"task.split.policy=time needs task.time_key, which task {spec.name!r} does not set.")
    if policy == "group" and not spec.group_key:
        raise ConfigError(f"task.split.policy=group needs task.group_key, which task {spec.name!r} does not set.")

    for key in ("test_fraction", "validation_fraction"):
        value = getattr(spec, key)
        if not 0.0 < value < 1.0:
            raise ConfigError(f"task.split.{key}={value!r} must be a fraction between 0 and 1.")
    if spec.test_fraction + spec.validation_fraction >= 0.9:
        raise ConfigError(
            "task.split.test_fraction + task.split.validation_fraction leave under 10% of the records "
            "for train and transfer; lower them."
        )

    if spec.rare_action not in RARE_ACTIONS:
        raise ConfigError(f"task.rare_classes.action={spec.rare_action!r} must be one of {', '.join(RARE_ACTIONS)}.")
    if spec.rare_min_count < 0:
        raise ConfigError(f"task.rare_classes.min_count={spec.rare_min_count!r} must be 0 (off) or more.")
