"""Stage build_datasets: turn extracted ERP records into one task's supervised dataset on disk.

The task file (conf/task/<name>.yaml) says which table holds the records,
what to join onto them, which columns are text, categorical and numeric
inputs, which is the label, and which leak it. This stage then
1. assembles the records with DuckDB (pipeline/task_frame.py);
2. counts and sets aside records without a label;
3. splits them by time, group or label (pipeline/splits.py) and keeps labels
   for exactly `label_budget` training records; the rest of the training side
   becomes the transfer pool, stored with the label -1;
4. merges or drops classes rarer than `rare_classes.min_count`;
5. renders each record into the model text (pipeline/features.py) and learns
   the students' tokenizer from the training side;
6. writes a DatasetDict, the input encoder and a dataset card, all at once.

Usage: python -m pipeline.build_datasets --task NAME [override ...]
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value
from datasets.fingerprint import Hasher
from omegaconf import DictConfig

from pipeline import paths
from pipeline.config import ConfigError, parse_stage_args, run_stage, stage_config
from pipeline.features import InputEncoder
from pipeline.splits import apply_label_budget, assign_splits, rare_classes
from pipeline.task_frame import load_label_names, load_task_frame
from pipeline.task_spec import TaskSpec, parse_task
from pipeline.tokenization import train_student_tokenizer

log = logging.getLogger(__name__)

SPLITS = ("train", "transfer", "validation", "test")
NO_LABEL = -1


def _as_text(values: pd.Series) -> pd.Series:
    """Label and key values as strings, with 1.0-style floats from nullable integer columns made whole."""
    def one(value) -> str:
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        return str(value)
    return values.map(one)


def drop_unlabeled(frame: pd.DataFrame, spec: TaskSpec) -> tuple[pd.DataFrame, dict[str, int]]:
    """Set aside records without a label, a time (time split) or a group (group key); return the counts."""
    removed = {}
    missing_label = frame[spec.label].isna() | (frame[spec.label].astype(str).str.strip() == "")
    removed["no_label"] = int(missing_label.sum())
    keep = ~missing_label
    if spec.resolved_split_policy() == "time":
        missing_time = frame[spec.time_key].isna() & keep
        removed["no_time"] = int(missing_time.sum())
        keep &= ~missing_time
    if spec.group_key and spec.resolved_split_policy() != "stratified":
        missing_group = frame[spec.group_key].isna() & keep
        removed["no_group"] = int(missing_group.sum())
        keep &= ~missing_group
    for reason, count in removed.items():
        if count:
            log.warning("Task %s: %d record(s) set aside (%s); the dataset card counts them.", spec.name, count, reason)
    if not keep.any():
        raise ConfigError(f"Task {spec.name!r}: no record has a label in column {spec.label!r}.")
    return frame[keep].reset_index(drop=True), removed


def refill_label_budget(frame: pd.DataFrame, labeled: int, seed: int) -> None:
    """Move random transfer records to train until train has `labeled` records again, in place."""
    missing = labeled - int((frame["split"] == "train").sum())
    pool = frame.index[frame["split"] == "transfer"].to_numpy()
    if missing > 0 and len(pool) > missing:
        chosen = np.random.default_rng(seed + 2).choice(pool, size=missing, replace=False)
        frame.loc[chosen, "split"] = "train"


def handle_rare_classes(frame: pd.DataFrame, spec: TaskSpec, seed: int) -> tuple[pd.DataFrame, dict]:
    """Merge or drop classes with too few labeled training records; return the new frame and what changed.

    A drop keeps the label budget exact by moving random transfer records to train.
    """
    rare = rare_classes(frame["label_name"], frame["split"], spec.rare_min_count)
    if not rare or spec.rare_action == "keep":
        return frame, {"min_count": spec.rare_min_count, "action": spec.rare_action, "classes": rare, "rows": 0}
    if spec.other_label in set(frame["label_name"]) - set(rare):
        raise ConfigError(
            f"task.rare_classes.other_label={spec.other_label!r} is already a label of task {spec.name!r}; "
            "choose another name."
        )
    affected = frame["label_name"].isin(rare)
    rows_per_split = frame.loc[affected, "split"].value_counts().to_dict()
    if spec.rare_action == "merge":
        frame = frame.copy()
        frame.loc[affected, "label_name"] = spec.other_label
    else:
        labeled = int((frame["split"] == "train").sum())
        frame = frame[~affected].reset_index(drop=True)
        refill_label_budget(frame, labeled, seed)
    log.info("Task %s: %s %d rare class(es) (%d rows): %s", spec.name, spec.rare_action + "d",
             len(rare), int(affected.sum()), rare)
    return frame, {"min_count": spec.rare_min_count, "action": spec.rare_action, "classes": rare,
                   "rows": int(affected.sum()), "rows_per_split": {k: int(v) for k, v in rows_per_split.items()},
                   "other_label": spec.other_label if spec.rare_action == "merge" else None}


def _time_overlap(frame: pd.DataFrame, spec: TaskSpec, policy: str) -> dict | None:
    """Under a time split, check that train precedes validation and test; warn when groups spanning time break it."""
    if policy != "time":
        return None
    times = pd.to_datetime(frame[spec.time_key])
    training_side = frame["split"].isin(["train", "transfer"])
    latest_training = times[training_side].max()
    earliest_test = times[frame["split"] == "test"].min()
    later = int((times[training_side] >= earliest_test).sum())
    if later:
        log.warning("Task %s: %d training-side records are dated on or after the first test record (%s), "
                    "because groups of %s span time. Split without the group key for a strict time order.",
                    spec.name, later, earliest_test.date(), spec.group_key)
    return {"latest_training": str(latest_training.date()), "earliest_test": str(earliest_test.date()),
            "training_records_not_before_test": later}


def _feature_types(spec: TaskSpec, class_names: list[str]) -> Features:
    columns = {"example_id": Value("string"), "group": Value("string"), "time": Value("string"),
               "text": Value("string")}
    columns.update({name: Value("string") for name in [*spec.text_fields, *spec.categorical_fields]})
    columns.update({name: Value("float64") for name in spec.numeric_fields})
    columns["label"] = ClassLabel(names=class_names)
    return Features(columns)


def _split_rows(part: pd.DataFrame, spec: TaskSpec, split: str, label_of: dict[str, int]) -> dict:
    def strings(column: str) -> list[str | None]:
        return [None if pd.isna(value) else str(value) for value in part[column]]

    rows = {
        "example_id": part["example_id"].tolist(),
        "group": _as_text(part[spec.group_key]).tolist() if spec.group_key else part["example_id"].tolist(),
        "time": [str(value) for value in part[spec.time_key]] if spec.time_key else [""] * len(part),
        "text": part["text"].tolist(),
    }
    for name in [*spec.text_fields, *spec.categorical_fields]:
        rows[name] = strings(name)
    for name in spec.numeric_fields:
        rows[name] = pd.to_numeric(part[name], errors="coerce").astype(float).tolist()
    rows["label"] = ([NO_LABEL] * len(part) if split == "transfer"
                     else part["label_name"].map(label_of).astype(int).tolist())
    return rows


def _dataset(rows: dict, features: Features) -> Dataset:
    """Build a split whose fingerprint is a hash of its rows.

    datasets gives in-memory tables a random fingerprint, which save_to_disk
    writes out. With one derived from the content, rebuilding the same rows
    gives the same files, so DVC does not rerun the stages downstream.
    """
    built = Dataset.from_dict(rows, features=features)
    return Dataset(built.data, info=built.info, fingerprint=Hasher.hash(rows))


def _date_range(part: pd.DataFrame, spec: TaskSpec) -> list[str] | None:
    if not spec.time_key or part.empty:
        return None
    times = pd.to_datetime(part[spec.time_key])
    return [str(times.min().date()), str(times.max().date())]


def make_card(frame: pd.DataFrame, spec: TaskSpec, cfg: DictConfig, class_names: list[str], policy: str,
              unit: str, removed: dict, rare: dict, display_names: dict[str, str]) -> dict:
    """Describe the dataset: splits with counts and dates, label budget, rare classes and leakage checks."""
    card = {
        "task": spec.name, "entity": spec.entity,
        "input": {"text_fields": spec.text_fields, "categorical_fields": spec.categorical_fields,
                  "numeric_fields": spec.numeric_fields, "numeric_bins": int(cfg.task.numeric_bins)},
        "label": spec.label, "split_policy": policy, "split_unit": unit, "time_key": spec.time_key,
        "label_budget": {"setting": spec.label_budget, "labeled_train_records": int((frame["split"] == "train").sum())},
        "records_set_aside": removed, "rare_classes": rare,
        "leakage": {"declared_leaks": spec.leaks, "leaks_used_as_features": [],
                    "checked": "no declared leak and not the label is among the feature fields"},
        "classes": {name: display_names.get(name, name) for name in class_names},
        "splits": {},
    }
    for split in SPLITS:
        part = frame[frame["split"] == split]
        counts = part["label_name"].value_counts().to_dict() if split != "transfer" else None
        card["splits"][split] = {
            "examples": len(part),
            "units": int(part[unit].nunique()) if unit in part else len(part),
            "time_range": _date_range(part, spec),
            "class_counts": {name: int(counts.get(name, 0)) for name in class_names} if counts is not None else None,
        }

    train_classes = set(frame.loc[frame["split"] == "train", "label_name"])
    unseen = {split: sorted(set(frame.loc[frame["split"] == split, "label_name"]) - train_classes)
              for split in ("validation", "test")}
    card["classes_not_in_train"] = unseen
    for split, missing in unseen.items():
        if missing:
            log.warning("Task %s: %s has %d class(es) with no labeled training record: %s. They stay under "
                        "their own name, so models score 0 on them; raise task.label_budget or "
                        "rare_classes.min_count.", spec.name, split, len(missing), missing)
    return card


def build(cfg: DictConfig, extracted: Path, task_paths: paths.TaskPaths, report_file: Path) -> dict:
    spec = parse_task(cfg.task)
    seed = int(cfg.seed)

    frame = load_task_frame(extracted, spec)
    read = len(frame)
    frame, removed = drop_unlabeled(frame, spec)
    frame["example_id"] = _as_text(frame[spec.id_column])
    frame["label_name"] = _as_text(frame[spec.label])

    result = assign_splits(frame, spec, seed)
    frame["split"] = apply_label_budget(result.split, spec.label_budget, seed)
    frame, rare = handle_rare_classes(frame, spec, seed)
    empty = [split for split in SPLITS if not (frame["split"] == split).any()]
    if empty:
        raise ConfigError(
            f"Task {spec.name!r}: no record left in {empty} after dropping rare classes "
            f"{rare['classes']}. Lower rare_classes.min_count or use action: merge."
        )
    train_classes = frame.loc[frame["split"] == "train", "label_name"].nunique()
    if train_classes < 2:
        raise ConfigError(
            f"Task {spec.name!r}: the labeled training records hold {train_classes} class, so there is nothing "
            f"to learn. Check the label column {spec.label!r}, raise task.label_budget (now {spec.label_budget:g}) "
            f"or lower task.rare_classes.min_count (now {spec.rare_min_count})."
        )

    training_side = frame[frame["split"].isin(["train", "transfer"])]
    encoder = InputEncoder.fit(training_side, spec.text_fields, spec.categorical_fields, spec.numeric_fields,
                               int(cfg.task.numeric_bins))
    frame["text"] = encoder.render_frame(frame)
    if not frame.loc[frame["split"].isin(["train", "transfer"]), "text"].str.strip().any():
        raise ConfigError(
            f"Task {spec.name!r}: every training-side record renders to empty model text, because its fields "
            f"{spec.feature_fields} are all empty there. Check the field lists and the joins."
        )
    overlap = _time_overlap(frame, spec, result.policy)

    # The transfer pool's labels are hidden, so they do not add classes.
    class_names = sorted(frame.loc[frame["split"] != "transfer", "label_name"].unique())
    label_of = {name: index for index, name in enumerate(class_names)}
    features = _feature_types(spec, class_names)
    splits = {split: _dataset(_split_rows(frame[frame["split"] == split], spec, split, label_of), features)
              for split in SPLITS}
    card = make_card(frame, spec, cfg, class_names, result.policy, result.unit, removed, rare,
                     load_label_names(extracted, spec))
    card["records_read"] = read
    card["time_order"] = overlap

    out_dir = task_paths.datasets
    staging = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        DatasetDict(splits).save_to_disk(str(staging / task_paths.splits.name))
        training_text = list(splits["train"]["text"]) + list(splits["transfer"]["text"])
        train_student_tokenizer(training_text, int(cfg.task.student_vocab_size),
                                staging / task_paths.tokenizer.name)
        encoder.save(staging)
        (staging / task_paths.card.name).write_text(json.dumps(card, indent=2) + "\n")
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    shutil.rmtree(out_dir, ignore_errors=True)
    staging.rename(out_dir)

    summary = {split: {"examples": card["splits"][split]["examples"]} for split in SPLITS}
    summary["classes"] = len(class_names)
    summary["records_read"] = read
    summary["records_set_aside"] = sum(removed.values()) + (rare["rows"] if rare["action"] == "drop" else 0)
    report_file.parent.mkdir(parents=True, exist_ok=True)
    report_file.write_text(json.dumps(summary, indent=2) + "\n")
    log.info("Built %s (%s split by %s): %s examples per split, %d classes", spec.name, result.policy,
             result.unit, {split: summary[split]["examples"] for split in SPLITS}, len(class_names))
    return card


def log_to_mlflow(cfg: DictConfig, task_paths: paths.TaskPaths, report_file: Path) -> None:
    """Log the dataset card and the per-split counts to an MLflow run."""
    import mlflow

    from pipeline.tracking import section, start_run

    summary = json.loads(report_file.read_text())
    with start_run(cfg, f"build_datasets/{cfg.task.name}", "build_datasets", section(cfg, "seed", "task")):
        mlflow.log_metrics({f"{split}/examples": summary[split]["examples"] for split in SPLITS}
                           | {"classes": summary["classes"], "records_set_aside": summary["records_set_aside"]})
        mlflow.log_artifact(str(task_paths.card))


def main(argv: list[str] | None = None) -> None:
    args, overrides = parse_stage_args(argv, __doc__, "pipeline.build_datasets")
    cfg = stage_config(overrides, task=args.task)
    task_paths = paths.TaskPaths(args.task)
    report_file = task_paths.reports / "datasets.json"
    build(cfg, paths.EXTRACTED, task_paths, report_file)
    log_to_mlflow(cfg, task_paths, report_file)


if __name__ == "__main__":
    run_stage(main)
