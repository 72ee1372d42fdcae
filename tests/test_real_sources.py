"""The three public data sets through extract and build_datasets, each on the first lines of its files.

Each test copies the first HEAD_LINES lines of every file into tmp_path and
runs extract with the data set's config from conf/source/ (and build_datasets
with its task from conf/task/), so a run takes about a second. The data lies outside the repository, in ../shared/data/real;
without it these tests are skipped.
"""

from __future__ import annotations

import datetime
import os
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from datasets import load_from_disk
from omegaconf import DictConfig

from conftest import select_task
from pipeline.build_datasets import SPLITS, build
from pipeline.compose_params import compose_config
from pipeline.extract import extract
from pipeline.paths import TaskPaths

REPO_ROOT = Path(__file__).resolve().parent.parent
# ERP_REAL_DATA points elsewhere when the checkout does not sit next to shared/.
REAL_DATA = Path(os.environ.get("ERP_REAL_DATA", REPO_ROOT.parent / "shared" / "data" / "real"))
HEAD_LINES = 300

pytestmark = pytest.mark.skipif(
    not REAL_DATA.is_dir(),
    reason=f"real data sets not found at {REAL_DATA}; place bham_pcard, endava_tickets and "
           "ibm_ar_late_payment there to run these tests",
)


@pytest.fixture(autouse=True)
def pseudonym_key(monkeypatch):
    monkeypatch.setenv("ERP_PSEUDONYM_KEY", "test-key-not-a-secret")


def _copy_head(source: Path, target: Path) -> dict[str, int]:
    """Copy the first HEAD_LINES lines of each CSV file, byte for byte; return data rows per file."""
    target.mkdir(parents=True)
    rows = {}
    for path in sorted(source.glob("*.csv")):
        with path.open("rb") as file:
            lines = [line for _, line in zip(range(HEAD_LINES), file)]
        (target / path.name).write_bytes(b"".join(lines))
        rows[path.name] = len(lines) - 1
    return rows


def _extract(name: str, tmp_path: Path) -> tuple[dict, dict[str, int], DictConfig]:
    cfg = compose_config([f"source={name}"])
    assert cfg.source.path == f"../shared/data/real/{name}"
    rows = _copy_head(REAL_DATA / name, tmp_path / name)
    cfg.source.path = str(tmp_path / name)
    reports = extract(cfg, tmp_path / "extracted", tmp_path / "extract.json")
    return reports, rows, cfg


def _read(tmp_path: Path, table: str) -> pd.DataFrame:
    return pd.read_parquet(tmp_path / "extracted" / f"{table}.parquet")


def _assert_accounted(report: dict, expected_read: int) -> None:
    assert report["read"] == expected_read
    assert report["read"] == report["written"] + report["quarantined"]


def test_bham_pcard_slice(tmp_path):
    reports, rows, _ = _extract("bham_pcard", tmp_path)

    assert len(rows) == 12
    _assert_accounted(reports["transactions"], sum(rows.values()))
    assert reports["transactions"]["quarantined"] == 0
    table = _read(tmp_path, "transactions")
    assert str(table["original_amount"].dtype) == "float64"
    assert isinstance(table.loc[0, "trans_date"], datetime.date)
    # Files are concatenated in month order, starting with December 2016.
    assert table["source_file"].drop_duplicates().tolist() == sorted(rows)


def test_bham_pcard_known_values(tmp_path):
    _extract("bham_pcard", tmp_path)
    table = _read(tmp_path, "transactions").set_index("row_id")

    # The first data row of 201612, a file with 11 columns and no currency columns.
    first = table.loc["purchase-card-transactions-201612.csv:2"]
    assert first["trans_date"] == datetime.date(2016, 12, 22)
    assert first["original_amount"] == 20.0
    assert first["merchant_name"] == "shell kings 587"
    assert first["account_code"] == "K020"
    assert first["account_desc"] == "Vehicle Fuel"
    assert pd.isna(first["original_currency"])
    assert pd.isna(first["billing_amount"])
    # 201701's header has a space after each ";", and its columns still match.
    january = table.loc["purchase-card-transactions-201701.csv:2"]
    assert january["trans_date"] == datetime.date(2017, 1, 3)
    assert january["original_currency"] == "GBP"
    assert january["billing_amount"] == 72.61
    assert january["vat_code"] == "VR"
    # 201709 is comma-separated.
    september = table.loc["purchase-card-transactions-201709.csv:2"]
    assert september["trans_date"] == datetime.date(2017, 9, 15)
    assert september["merchant_name"] == "mrh six ways"


def test_bham_pcard_amounts_and_labels(tmp_path):
    reports, _, _ = _extract("bham_pcard", tmp_path)
    table = _read(tmp_path, "transactions")

    # Refunds stay negative, and no amount is lost to its thousands separator.
    assert (table["original_amount"] < 0).any()
    assert table["original_amount"].notna().all()
    assert table["card_number"].str.fullmatch(r"card_number_[0-9a-f]{16}").all()
    directorates = table["directorate"].dropna()
    assert (directorates == directorates.str.casefold()).all()
    assert reports["transactions"]["normalized"]["directorate"] > 0


def test_endava_tickets_slice(tmp_path):
    reports, rows, _ = _extract("endava_tickets", tmp_path)

    _assert_accounted(reports["tickets"], rows["all_tickets.csv"])
    table = _read(tmp_path, "tickets")
    assert str(table["category"].dtype) == "int64"
    assert table["row_id"].is_unique
    # A published example row.
    example = table[table["title"] == "connection with icon"].iloc[0]
    assert example["body"].startswith("icon dear please setup icon per icon engineers")
    assert example["ticket_type"] == 1
    assert example["category"] == 6
    assert example["business_service"] == 26
    # The first ticket has no title.
    assert pd.isna(table.loc[0, "title"])


def test_ibm_ar_late_payment_slice(tmp_path):
    reports, rows, _ = _extract("ibm_ar_late_payment", tmp_path)

    _assert_accounted(reports["ar_invoices"], rows["WA_Fn-UseC_-Accounts-Receivable.csv"])
    assert reports["ar_invoices"]["quarantined"] == 0
    table = _read(tmp_path, "ar_invoices").set_index("invoice_number")
    assert str(table["invoice_amount"].dtype) == "float64"
    assert str(table["days_late"].dtype) == "int64"
    # A published example row; the invoice number keeps its leading zeros.
    example = table.loc["0007900770"]
    assert example["country_code"] == "406"
    assert example["paperless_date"] == datetime.date(2012, 3, 3)
    assert example["invoice_date"] == datetime.date(2013, 1, 26)
    assert example["due_date"] == datetime.date(2013, 2, 25)
    assert example["invoice_amount"] == 61.74
    assert example["disputed"] == "Yes"
    assert example["settled_date"] == datetime.date(2013, 3, 3)
    assert example["paperless_bill"] == "Electronic"
    assert example["days_to_settle"] == 36
    assert example["days_late"] == 6
    assert example["customer_id"].startswith("customer_id_")


@pytest.mark.parametrize(("source", "task", "table", "label"), [
    ("bham_pcard", "card_expense_account", "transactions", "account_desc"),
    ("endava_tickets", "ticket_category", "tickets", "category"),
    ("ibm_ar_late_payment", "ar_late_payment", "ar_invoices", None),
])
def test_real_slice_builds_dataset(tmp_path, source, task, table, label):
    reports, _, _ = _extract(source, tmp_path)
    cfg = select_task(compose_config([f"experiment={source}"]), task)
    cfg.tasks[task].label_budget = 0.3
    task_paths = TaskPaths(task, tmp_path)

    card = build(cfg, tmp_path / "extracted", task_paths, task_paths.reports / "datasets.json")

    extracted = _read(tmp_path, table)
    counted = sum(card["splits"][split]["examples"] for split in SPLITS)
    assert card["records_read"] == reports[table]["written"]
    assert counted + sum(card["records_set_aside"].values()) == card["records_read"]
    # Every labeled record is counted under its class (or under "other" after merging rare classes).
    labeled = {split: sum(card["splits"][split]["class_counts"].values()) for split in ("train", "validation", "test")}
    assert labeled == {split: card["splits"][split]["examples"] for split in labeled}
    if label is not None:
        expected = extracted[label].dropna().astype(str).value_counts()
        merged = set(card["rare_classes"]["classes"])
        for name, count in expected.items():
            if name in merged:
                continue
            in_splits = sum(card["splits"][split]["class_counts"].get(name, 0) for split in ("train", "validation", "test"))
            assert in_splits <= count, name
        assert set(card["classes"]) - {"other"} <= set(expected.index)
    dataset = load_from_disk(str(task_paths.splits))
    for split in ("train", "validation", "test"):
        names = dataset[split].features["label"].names
        stored = Counter(names[index] for index in dataset[split]["label"])
        assert stored == {name: count for name, count in card["splits"][split]["class_counts"].items() if count}
