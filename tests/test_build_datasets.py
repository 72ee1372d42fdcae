"""Dataset building: splits by invoice, the label budget and the hidden transfer labels."""

from __future__ import annotations

import pytest
from datasets import load_from_disk

from pipeline.build_datasets import NO_LABEL, SPLITS, build
from pipeline.config import ConfigError
from pipeline.extract import extract
from pipeline.features import amount_bucket, format_invoice_line


@pytest.fixture()
def built(small_config, tmp_path):
    extract(small_config, tmp_path / "extracted", tmp_path / "extract.json")
    card = build(small_config, tmp_path / "extracted", tmp_path / "datasets", tmp_path / "datasets.json")
    return load_from_disk(str(tmp_path / "datasets" / "gl_account")), card


def test_no_invoice_crosses_splits(built):
    dataset, _ = built
    invoices = {split: set(dataset[split]["invoice_id"]) for split in SPLITS}

    for first in SPLITS:
        for second in SPLITS:
            if first < second:
                assert not invoices[first] & invoices[second], (first, second)


def test_transfer_labels_hidden(built):
    dataset, _ = built

    assert set(dataset["transfer"]["label"]) == {NO_LABEL}
    assert NO_LABEL not in set(dataset["train"]["label"])


def test_label_budget_share_of_invoices(built, small_config):
    dataset, card = built
    train = card["splits"]["train"]["invoices"]
    pool = train + card["splits"]["transfer"]["invoices"]

    assert train == round(pool * small_config.task.label_budget)
    assert sum(card["splits"][split]["examples"] for split in SPLITS) == sum(len(dataset[s]) for s in SPLITS)


def test_class_names_are_accounts(built):
    dataset, card = built

    assert dataset["train"].features["label"].names == sorted(card["classes"])


def test_too_few_invoices_rejected(small_config, tmp_path):
    small_config.source.n_invoices = 3
    extract(small_config, tmp_path / "extracted", tmp_path / "extract.json")

    with pytest.raises(ConfigError, match="too few"):
        build(small_config, tmp_path / "extracted", tmp_path / "datasets", tmp_path / "datasets.json")


def test_amount_buckets():
    assert amount_bucket(5) == "amount under 10"
    assert amount_bucket(999.99) == "amount 500 to 1000"
    assert amount_bucket(1000) == "amount 1000 to 5000"
    assert amount_bucket(-250) == "credit amount 100 to 500"
    assert amount_bucket(float("nan")) == "amount unknown"
    assert format_invoice_line("toner", "Acme GmbH", 20) == "toner | vendor Acme GmbH | amount 10 to 100"
