"""Split policies, the label budget and rare-class handling for a task's records.

Splits are drawn over units: a group (every record sharing the group key) or,
without a group key, a single record. A unit never straddles two splits.
- time: units ordered by their earliest time; the latest ones form test, the
  ones before them validation, the rest the training side.
- group: units in a seeded random order.
- stratified: single records, stratified by label (scikit-learn).
The label budget then picks exactly that many training-side records to keep
their labels (train); the others form the transfer pool. Train and transfer
may share a group because the transfer pool's labels are never used.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from pipeline.config import ConfigError
from pipeline.task_spec import TaskSpec

log = logging.getLogger(__name__)

TRAIN_SIDE = "train_side"


@dataclass
class SplitResult:
    split: pd.Series
    policy: str
    unit: str


def _units(frame: pd.DataFrame, spec: TaskSpec) -> pd.Series:
    if spec.group_key:
        return frame[spec.group_key].astype(str)
    return frame[spec.id_column].astype(str)


def _check_sizes(total: int, n_test: int, n_validation: int, what: str) -> None:
    if min(n_test, n_validation, total - n_test - n_validation) < 1:
        raise ConfigError(
            f"{total} {what} are too few for test_fraction and validation_fraction: every split needs at "
            "least one. Use more records or change task.split."
        )


def time_split(frame: pd.DataFrame, spec: TaskSpec) -> pd.Series:
    """Give the latest units to test and the ones before them to validation, by each unit's earliest time."""
    units = _units(frame, spec)
    start = pd.to_datetime(frame[spec.time_key]).groupby(units).min()
    # Ties in time are broken by unit id, so the order is the same on every run.
    order = pd.DataFrame({"time": start.to_numpy(), "unit": start.index}).sort_values(["time", "unit"])
    n_units = len(order)
    n_test = int(round(n_units * spec.test_fraction))
    n_validation = int(round(n_units * spec.validation_fraction))
    _check_sizes(n_units, n_test, n_validation, "time units")

    names = np.full(n_units, TRAIN_SIDE, dtype=object)
    names[n_units - n_test:] = "test"
    names[n_units - n_test - n_validation:n_units - n_test] = "validation"
    # Units that start at the same time join the earliest split among them, so
    # every validation time is after every training time and before every test time.
    order["split"] = names
    order["split"] = order.groupby("time")["split"].transform("first")
    if not (order["split"] == "test").any() or not (order["split"] == "validation").any():
        raise ConfigError(
            f"The time split of task {spec.name!r} left no time for validation or test: too many records "
            f"share one {spec.time_key}. Use split.policy=group or stratified."
        )
    return units.map(dict(zip(order["unit"], order["split"])))


def group_split(frame: pd.DataFrame, spec: TaskSpec, seed: int) -> pd.Series:
    """Assign whole units to test, validation and the training side in a seeded random order."""
    units = _units(frame, spec)
    unique = np.array(sorted(units.unique()))
    shuffled = unique[np.random.default_rng(seed).permutation(len(unique))]
    n_test = int(round(len(unique) * spec.test_fraction))
    n_validation = int(round(len(unique) * spec.validation_fraction))
    _check_sizes(len(unique), n_test, n_validation, "groups")

    names = np.full(len(unique), TRAIN_SIDE, dtype=object)
    names[:n_test] = "test"
    names[n_test:n_test + n_validation] = "validation"
    return units.map(dict(zip(shuffled, names)))


def stratified_split(frame: pd.DataFrame, spec: TaskSpec, seed: int) -> pd.Series:
    """Split single records with each label's share kept, where every label has enough records."""
    labels = frame[spec.label].astype(str).to_numpy()
    counts = pd.Series(labels).value_counts()
    # scikit-learn needs two records per class to stratify; rarer classes go
    # unstratified rather than failing the whole split.
    stratify = np.where(pd.Series(labels).map(counts).to_numpy() >= 3, labels, "__rare__")
    if (pd.Series(stratify).value_counts() < 3).any():
        stratify = None
    index = np.arange(len(frame))
    n_holdout = spec.test_fraction + spec.validation_fraction
    _check_sizes(len(frame), int(round(len(frame) * spec.test_fraction)),
                 int(round(len(frame) * spec.validation_fraction)), "records")
    train_side, holdout = train_test_split(index, test_size=n_holdout, random_state=seed, stratify=stratify)
    holdout_stratify = stratify[holdout] if stratify is not None else None
    if holdout_stratify is not None and (pd.Series(holdout_stratify).value_counts() < 2).any():
        holdout_stratify = None
    validation, test = train_test_split(holdout, test_size=spec.test_fraction / n_holdout, random_state=seed,
                                        stratify=holdout_stratify)
    names = np.full(len(frame), TRAIN_SIDE, dtype=object)
    names[validation] = "validation"
    names[test] = "test"
    return pd.Series(names, index=frame.index)


def assign_splits(frame: pd.DataFrame, spec: TaskSpec, seed: int) -> SplitResult:
    """Return each record's split: test, validation or the training side."""
    policy = spec.resolved_split_policy()
    if policy == "time":
        split = time_split(frame, spec)
    elif policy == "group":
        split = group_split(frame, spec, seed)
    else:
        split = stratified_split(frame, spec, seed)
    unit = spec.group_key if spec.group_key and policy != "stratified" else spec.id_column
    return SplitResult(split, policy, unit)


def budget_size(label_budget: float, pool_size: int) -> int:
    """Return the number of labeled training records: a share of the pool below 1, a count from 1 up."""
    n_labeled = int(round(pool_size * label_budget)) if label_budget < 1 else int(label_budget)
    if n_labeled < 1:
        raise ConfigError(
            f"task.label_budget={label_budget} labels no record of the {pool_size} on the training side; raise it."
        )
    if n_labeled >= pool_size:
        raise ConfigError(
            f"task.label_budget={label_budget} asks for {n_labeled} labeled records, but the training side has "
            f"{pool_size}; nothing would be left for the transfer pool. Lower it."
        )
    return n_labeled


def apply_label_budget(split: pd.Series, label_budget: float, seed: int) -> pd.Series:
    """Pick exactly the budgeted number of training-side records at random as train; the rest are transfer."""
    pool = np.flatnonzero((split == TRAIN_SIDE).to_numpy())
    n_labeled = budget_size(label_budget, len(pool))
    labeled = np.random.default_rng(seed + 1).choice(pool, size=n_labeled, replace=False)
    names = split.to_numpy(dtype=object).copy()
    names[pool] = "transfer"
    names[labeled] = "train"
    return pd.Series(names, index=split.index)


def rare_classes(labels: pd.Series, split: pd.Series, min_count: int) -> list[str]:
    """Return the labels with fewer than `min_count` labeled training records, most frequent first."""
    if min_count <= 0:
        return []
    counts = labels[split == "train"].value_counts()
    # Transfer records count too: their labels are hidden, but merged or dropped alike.
    all_labels = labels.value_counts()
    return [label for label in all_labels.index if counts.get(label, 0) < min_count]
