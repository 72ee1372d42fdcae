"""Dataset building: task files, split policies, the label budget, rare classes and leakage checks."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from datasets import load_from_disk
from omegaconf import OmegaConf

from conftest import select_task
from pipeline.build_datasets import NO_LABEL, SPLITS, build
from pipeline.config import ConfigError
from pipeline.extract import extract
from pipeline.features import InputEncoder, format_number
from pipeline.paths import TaskPaths
from pipeline.splits import TRAIN_SIDE, apply_label_budget, assign_splits
from pipeline.task_spec import parse_task

SIMULATED_TASKS = ("gl_account", "late_payment", "invoice_block", "ticket_routing")


@pytest.fixture()
def extracted(small_config, tmp_path):
    extract(small_config, tmp_path / "extracted", tmp_path / "extract.json")
    return tmp_path / "extracted"


def build_task(cfg, extracted, tmp_path, task: str):
    cfg = select_task(cfg, task)
    task_paths = TaskPaths(task, tmp_path)
    card = build(cfg, extracted, task_paths, task_paths.reports / "datasets.json")
    return load_from_disk(str(task_paths.splits)), card


def spec_from(**overrides):
    """A task spec for the synthetic frames below; overrides replace its keys."""
    raw = {"name": "synthetic", "entity": "records", "id": "record_id", "label": "label",
           "text_fields": ["note"], "categorical_fields": [], "numeric_fields": [], "group_key": "group",
           "time_key": "day", "leaks": [], "split": {"policy": "auto"}, "label_budget": 0.1}
    raw.update(overrides)
    return parse_task(OmegaConf.create(raw))


def synthetic_frame(n_groups: int = 400, seed: int = 0) -> pd.DataFrame:
    """Groups of 1 to 4 records sharing a day; labels drawn from five classes."""
    rng = np.random.default_rng(seed)
    rows = []
    for group in range(n_groups):
        day = pd.Timestamp("2024-01-01") + pd.Timedelta(days=int(rng.integers(0, 300)))
        for member in range(int(rng.integers(1, 5))):
            rows.append({"record_id": f"r{group:04d}-{member}", "group": f"g{group:04d}", "day": day,
                         "note": f"item {member}", "label": f"c{int(rng.integers(0, 5))}"})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("policy", ["time", "group", "stratified"])
def test_no_group_crosses_splits(policy):
    frame = synthetic_frame()
    spec = spec_from(split={"policy": policy}, group_key=None if policy == "stratified" else "group")

    split = apply_label_budget(assign_splits(frame, spec, seed=3).split, 0.1, seed=3)
    holdout = split.isin(["validation", "test"])

    if policy == "stratified":
        assert split.index.is_unique
    else:
        sides = frame.assign(side=np.where(holdout, split, TRAIN_SIDE)).groupby("group")["side"].nunique()
        assert sides.max() == 1, sides[sides > 1].index.tolist()[:3]
    assert set(split) == {"train", "transfer", "validation", "test"}


def test_time_split_tests_later_records():
    frame = synthetic_frame()
    spec = spec_from(split={"policy": "time"})

    split = assign_splits(frame, spec, seed=0).split
    days = {name: frame.loc[split == name, "day"] for name in (TRAIN_SIDE, "validation", "test")}

    assert days[TRAIN_SIDE].max() < days["validation"].min()
    assert days["validation"].max() < days["test"].min()


def test_auto_policy_prefers_time_then_group():
    assert spec_from().resolved_split_policy() == "time"
    assert spec_from(time_key=None).resolved_split_policy() == "group"
    assert spec_from(time_key=None, group_key=None).resolved_split_policy() == "stratified"


@pytest.mark.parametrize("budget", [0.1, 0.37, 25, 101])
def test_label_budget_exact(budget):
    frame = synthetic_frame()
    split = assign_splits(frame, spec_from(), seed=1).split
    pool = int((split == TRAIN_SIDE).sum())

    labeled = int((apply_label_budget(split, budget, seed=1) == "train").sum())

    expected = round(pool * budget) if budget < 1 else budget
    assert labeled == expected


def test_label_budget_above_pool_rejected():
    split = pd.Series(["train_side"] * 10 + ["test"] * 3)

    with pytest.raises(ConfigError, match="nothing would be left for the transfer pool"):
        apply_label_budget(split, 10, seed=0)


@pytest.mark.parametrize("field", ["text_fields", "categorical_fields", "numeric_fields"])
def test_leaking_column_refused(field):
    fields = {"text_fields": [], "categorical_fields": [], "numeric_fields": []}
    fields[field] = ["days_to_settle"]

    with pytest.raises(ConfigError, match=r"days_to_settle.*task.leaks"):
        spec_from(leaks=["days_to_settle"], **fields)


def test_label_as_feature_refused():
    with pytest.raises(ConfigError, match="they are the label"):
        spec_from(categorical_fields=["label"])


def test_time_policy_without_time_key_rejected():
    with pytest.raises(ConfigError, match="needs task.time_key"):
        spec_from(time_key=None, split={"policy": "time"})


@pytest.mark.parametrize("task", SIMULATED_TASKS)
def test_simulated_task_builds(small_config, extracted, tmp_path, task):
    dataset, card = build_task(small_config, extracted, tmp_path, task)

    assert set(dataset["transfer"]["label"]) == {NO_LABEL}
    assert NO_LABEL not in set(dataset["test"]["label"])
    assert dataset["train"].features["label"].names == sorted(card["classes"])
    assert card["split_policy"] == "time"
    assert card["splits"]["train"]["time_range"][1] < card["splits"]["test"]["time_range"][0]
    counted = sum(card["splits"][split]["examples"] for split in SPLITS)
    set_aside = sum(card["records_set_aside"].values())
    assert counted + set_aside == card["records_read"]
    report = json.loads((TaskPaths(task, tmp_path).reports / "datasets.json").read_text())
    assert report["classes"] == len(card["classes"])


def test_gl_account_keeps_invoices_together(small_config, extracted, tmp_path):
    dataset, _ = build_task(small_config, extracted, tmp_path, "gl_account")
    holdout = {split: set(dataset[split]["group"]) for split in ("validation", "test")}
    training = set(dataset["train"]["group"]) | set(dataset["transfer"]["group"])

    assert not holdout["validation"] & holdout["test"]
    assert not training & (holdout["validation"] | holdout["test"])


def test_rare_classes_merged_into_other(small_config, extracted, tmp_path):
    small_config.tasks.gl_account.rare_classes.min_count = 8
    lines = pd.read_parquet(extracted / "invoice_lines.parquet")

    dataset, card = build_task(small_config, extracted, tmp_path, "gl_account")

    merged = card["rare_classes"]["classes"]
    names = dataset["train"].features["label"].names
    assert merged
    assert "other" in names
    assert not set(merged) & set(names)
    assert card["rare_classes"]["rows"] == int(lines["gl_account_id"].isin(merged).sum())


def test_merging_every_class_rejected(small_config, extracted, tmp_path):
    small_config.tasks.gl_account.rare_classes.min_count = 10_000

    with pytest.raises(ConfigError, match="hold 1 class"):
        build_task(small_config, extracted, tmp_path, "gl_account")


def test_rare_classes_dropped_and_counted(small_config, extracted, tmp_path):
    small_config.tasks.ticket_routing.rare_classes.min_count = 4
    small_config.tasks.ticket_routing.rare_classes.action = "drop"
    _, card = build_task(small_config, extracted, tmp_path, "ticket_routing")

    kept = sum(card["splits"][split]["examples"] for split in SPLITS)
    assert card["rare_classes"]["classes"]
    assert kept + card["rare_classes"]["rows"] == card["records_read"]
    assert not set(card["rare_classes"]["classes"]) & set(card["classes"])


def test_unlabeled_records_counted(small_config, extracted, tmp_path):
    _, card = build_task(small_config, extracted, tmp_path, "late_payment")
    payments = pd.read_parquet(extracted / "payments.parquet")

    assert card["records_set_aside"]["no_label"] == int(payments["paid_date"].isna().sum())


def test_label_unseen_in_train_reported(small_config, extracted, tmp_path):
    small_config.tasks.ticket_routing.label_budget = 3
    small_config.tasks.ticket_routing.rare_classes.action = "keep"
    _, card = build_task(small_config, extracted, tmp_path, "ticket_routing")

    unseen = set(card["classes_not_in_train"]["test"])
    trained = {name for name, count in card["splits"]["train"]["class_counts"].items() if count}
    assert unseen
    assert not unseen & trained


def test_one_to_many_join_rejected(small_config, extracted, tmp_path):
    small_config.tasks.late_payment.joins.append({"table": "invoice_lines", "key": "invoice_id",
                                                  "columns": ["description"]})

    with pytest.raises(ConfigError, match="matches several rows per invoices record"):
        build_task(small_config, extracted, tmp_path, "late_payment")


def test_unknown_column_named(small_config, extracted, tmp_path):
    small_config.tasks.ticket_routing.text_fields = ["title", "subject"]

    with pytest.raises(ConfigError, match=r"\['subject'\]"):
        build_task(small_config, extracted, tmp_path, "ticket_routing")


def test_too_few_records_rejected(small_config, tmp_path):
    small_config.source.n_invoices = 3
    extract(small_config, tmp_path / "extracted", tmp_path / "extract.json")

    with pytest.raises(ConfigError, match="too few"):
        build_task(small_config, tmp_path / "extracted", tmp_path, "gl_account")
    assert not TaskPaths("gl_account", tmp_path).datasets.exists()


def test_input_encoder_renders_each_role():
    frame = pd.DataFrame({"note": ["toner", None], "vendor": ["Acme", None], "amount": [5.0, np.nan]})
    encoder = InputEncoder.fit(pd.DataFrame({"amount": [1.0, 10, 100, 1000]}).assign(note="", vendor=""),
                               ["note"], ["vendor"], ["amount"], n_bins=2)

    assert encoder.render_frame(frame) == ["toner | vendor Acme | amount under 55",
                                           "vendor unknown | amount unknown"]


def test_format_number_two_digits():
    assert [format_number(value) for value in (20245, 0.764, 3.0, -1234.5, 0)] == \
        ["20,000", "0.76", "3", "-1,200", "0"]


def test_dropping_every_class_rejected(small_config, extracted, tmp_path):
    small_config.tasks.ticket_routing.rare_classes.min_count = 10_000
    small_config.tasks.ticket_routing.rare_classes.action = "drop"

    with pytest.raises(ConfigError, match="no record left"):
        build_task(small_config, extracted, tmp_path, "ticket_routing")


def test_null_group_set_aside_and_counted(small_config, extracted, tmp_path):
    task = small_config.tasks.gl_account
    task.derive = {"sometimes_group": "CASE WHEN line_no = 1 THEN NULL ELSE invoice_id END"}
    task.group_key = "sometimes_group"
    lines = pd.read_parquet(extracted / "invoice_lines.parquet")

    _, card = build_task(small_config, extracted, tmp_path, "gl_account")

    assert card["records_set_aside"]["no_group"] == int((lines["line_no"] == 1).sum())
    counted = sum(card["splits"][split]["examples"] for split in SPLITS)
    assert counted + sum(card["records_set_aside"].values()) == card["records_read"]


def test_single_class_rejected(small_config, extracted, tmp_path):
    small_config.tasks.late_payment.derive.late = "CASE WHEN paid_date IS NULL THEN NULL ELSE 'paid' END"

    with pytest.raises(ConfigError, match="hold 1 class"):
        build_task(small_config, extracted, tmp_path, "late_payment")


def test_derive_name_clash_rejected(small_config, extracted, tmp_path):
    OmegaConf.update(small_config, "tasks.late_payment.derive.currency", "'XXX'", force_add=True)

    with pytest.raises(ConfigError, match="derive.currency: a column 'currency' already exists"):
        build_task(small_config, extracted, tmp_path, "late_payment")


def test_text_as_numeric_rejected(small_config, extracted, tmp_path):
    small_config.tasks.gl_account.numeric_fields = ["description"]
    small_config.tasks.gl_account.text_fields = []

    with pytest.raises(ConfigError, match="column 'description' has type .*not a number"):
        build_task(small_config, extracted, tmp_path, "gl_account")


def test_failing_cast_named(small_config, extracted, tmp_path):
    OmegaConf.update(small_config, "tasks.late_payment.derive.currency_code", "CAST(currency AS INTEGER)",
                     force_add=True)

    with pytest.raises(ConfigError, match="failed on the data"):
        build_task(small_config, extracted, tmp_path, "late_payment")


def test_join_matching_nothing_rejected(small_config, extracted, tmp_path):
    small_config.tasks.late_payment.joins[0].key = {"left": "currency", "right": "vendor_id"}

    with pytest.raises(ConfigError, match="matches no record on currency = vendor_id"):
        build_task(small_config, extracted, tmp_path, "late_payment")


def test_duplicating_join_after_inner_join_rejected(small_config, extracted, tmp_path):
    small_config.tasks.late_payment.joins.append(
        {"sql": "SELECT invoice_id, description FROM invoice_lines WHERE line_no <= 2", "key": "invoice_id",
         "how": "inner", "columns": ["description"]})

    with pytest.raises(ConfigError, match="matches several rows per invoices record"):
        build_task(small_config, extracted, tmp_path, "late_payment")


def test_reserved_field_name_rejected():
    with pytest.raises(ConfigError, match=r"reserved name\(s\) \['group'\]"):
        spec_from(categorical_fields=["group"])


def test_label_budget_exact_after_drop(small_config, extracted, tmp_path):
    task = small_config.tasks.gl_account
    task.rare_classes.min_count = 4
    task.rare_classes.action = "drop"
    frame_budget = None

    _, card = build_task(small_config, extracted, tmp_path, "gl_account")

    side = card["splits"]["train"]["examples"] + card["splits"]["transfer"]["examples"]
    frame_budget = card["label_budget"]["labeled_train_records"]
    assert card["rare_classes"]["rows"] > 0
    assert frame_budget == card["splits"]["train"]["examples"]
    assert frame_budget == round((side + card["rare_classes"]["rows_per_split"].get("train", 0)
                                  + card["rare_classes"]["rows_per_split"].get("transfer", 0)) * task.label_budget)


def test_noise_edges_snapped_to_zero():
    values = pd.DataFrame({"difference": [0.0, 2.2e-16, -4.5e-13, 5.0, 6.0, 0.0, 0.0, 9.1e-13]})

    encoder = InputEncoder.fit(values, [], [], ["difference"], n_bins=4)

    assert all(edge == 0 or abs(edge) >= 1 for edge in encoder.numeric_edges["difference"])


@pytest.mark.parametrize("setting", ["test_fraction", "validation_fraction"])
def test_non_numeric_fraction_rejected(setting):
    with pytest.raises(ConfigError, match=f"task.split.{setting}='abc' must be a number"):
        spec_from(split={"policy": "time", setting: "abc"})


def test_rebuild_gives_identical_files(small_config, extracted, tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    for root in (first, second):
        task_paths = TaskPaths("ticket_routing", root)
        build(select_task(small_config, "ticket_routing"), extracted, task_paths, task_paths.reports / "d.json")

    files = sorted(path.relative_to(first) for path in first.rglob("*") if path.is_file())
    assert files
    for relative in files:
        assert (first / relative).read_bytes() == (second / relative).read_bytes(), relative
