"""Simulated ERP: determinism, the business rules behind each label, noise and drift."""

from __future__ import annotations

import pandas as pd
import pytest
from sqlalchemy import create_engine

from pipeline.erp_processes import MIN_VARIANCE_EUR, PRICE_TOLERANCE
from pipeline.erp_schema import TABLES
from pipeline.erp_simulator import (ACCOUNTS, CAPITALISATION_THRESHOLD, NEW_ITEMS, RARE_ACCOUNT_WORDING,
                                    RENAMED_ACCOUNT, generate_erp)

N_INVOICES = 3000
YEARS = [2023, 2024, 2025]


def _simulate(path, seed: int = 7, chunk_size: int = 20000) -> dict[str, pd.DataFrame]:
    engine = create_engine(f"sqlite:///{path}")
    generate_erp(engine, N_INVOICES, seed, YEARS, chunk_size=chunk_size)
    with engine.connect() as connection:
        tables = {table.name: pd.read_sql_table(table.name, connection) for table in TABLES}
    engine.dispose()
    return tables


@pytest.fixture(scope="module")
def erp(tmp_path_factory) -> dict[str, pd.DataFrame]:
    return _simulate(tmp_path_factory.mktemp("erp") / "erp.sqlite")


def test_same_seed_same_database(erp, tmp_path):
    again = _simulate(tmp_path / "again.sqlite")

    for name, frame in erp.items():
        pd.testing.assert_frame_equal(frame, again[name], obj=name)


def test_other_seed_other_lines(erp, tmp_path):
    other = _simulate(tmp_path / "other.sqlite", seed=8)

    assert not erp["invoice_lines"]["description"].equals(other["invoice_lines"]["description"])


def test_every_table_filled(erp):
    for name, frame in erp.items():
        assert len(frame) > 0, name


def test_line_count_per_invoice(erp):
    per_invoice = erp["invoice_lines"].groupby("invoice_id").size()

    assert len(erp["invoices"]) == N_INVOICES
    assert per_invoice.min() >= 1
    assert per_invoice.max() <= 5
    assert 2.7 < per_invoice.mean() < 3.3


def test_gl_labels_follow_rules(erp):
    lines = erp["invoice_lines"].merge(erp["materials"][["material_id", "group_id"]], on="material_id")
    expected = lines["group_id"].map({group: account for group, account in
                                      erp["material_groups"].set_index("group_id")["default_account_id"].items()})
    capitalised = (lines["group_id"] == "it_hardware") & (lines["amount"] >= CAPITALISATION_THRESHOLD)
    expected[capitalised] = "150200"
    agreement = (expected == lines["gl_account_id"]).mean()

    # About 3% miscoded, 0.5% tail accounts.
    assert 0.95 < agreement < 0.99


def test_gl_label_noise_and_tail(erp):
    labels = erp["invoice_lines"]["gl_account_id"]
    tail = labels.isin(list(RARE_ACCOUNT_WORDING))

    assert set(labels) - set(erp["gl_accounts"]["account_id"]) == set()
    assert 0.002 < tail.mean() < 0.01
    assert labels[~tail].isin(list(ACCOUNTS)).all()
    assert len(erp["gl_accounts"]) >= 30


def test_descriptions_look_typed(erp):
    descriptions = erp["invoice_lines"]["description"]

    assert descriptions.str.contains(r"PN-\d+").mean() > 0.1
    assert (descriptions == descriptions.str.upper()).mean() > 0.1
    assert descriptions.str.contains("Druckerpapier|Stahlblech|Kugellager|Frachtkosten|Beratungsleistung").any()


def test_block_follows_variance(erp):
    items = erp["purchase_order_items"]
    lines = erp["invoice_lines"].merge(items, on="po_item_id", suffixes=("", "_po"))
    variance = lines["amount"] - lines["unit_price"] * lines["quantity_po"]
    limit = (PRICE_TOLERANCE * lines["unit_price"] * lines["quantity_po"]).clip(lower=MIN_VARIANCE_EUR)
    price_invoices = set(lines.loc[variance > limit, "invoice_id"])
    invoices = erp["invoices"].set_index("invoice_id")
    rule_blocked = invoices.loc[sorted(price_invoices), "blocked"]

    # Price variances block, except the few invoices a clerk released by hand.
    assert rule_blocked.mean() > 0.9
    assert 0.05 < invoices["blocked"].mean() < 0.35


def test_quantity_variance_has_short_receipt(erp):
    invoices = erp["invoices"]
    short = invoices.loc[invoices["block_reason"] == "quantity_variance", "po_id"]
    items = erp["purchase_order_items"][erp["purchase_order_items"]["po_id"].isin(short)]
    received = erp["goods_receipts"].groupby("po_item_id")["quantity"].sum()
    goods = items[items["material_id"].isin(erp["materials"].loc[erp["materials"]["is_service"] == 0,
                                                                  "material_id"])]
    shortfall = goods["quantity"] > goods["po_item_id"].map(received).fillna(0)
    per_po = shortfall.groupby(goods["po_id"]).any()

    assert len(short) > 0
    assert per_po.mean() > 0.7


def test_late_payment_rules(erp):
    payments = erp["payments"].merge(erp["invoices"][["invoice_id", "blocked"]], on="invoice_id")
    paid = payments[payments["paid_date"].notna()]
    late = paid["paid_date"] > paid["due_date"]
    year = paid["due_date"].dt.year

    assert late[paid["blocked"] == 1].mean() > late[paid["blocked"] == 0].mean() + 0.2
    assert late[year == 2025].mean() < late[year == 2024].mean()
    assert (paid["paid_date"] >= paid["due_date"] - pd.Timedelta(days=5)).all()


def test_newcomer_vendors_invoice_after_onboarding(erp):
    vendors = erp["vendors"].set_index("vendor_id")
    first = erp["invoices"].groupby("vendor_id")["posting_date"].min()
    onboarded = vendors.loc[first.index, "onboarded_on"]

    assert (first > onboarded).all()
    assert (vendors["onboarded_on"].dt.year >= 2023).any()


def test_new_items_only_in_last_year(erp):
    new = {item for items in NEW_ITEMS.values() for item in items}
    materials = erp["materials"][erp["materials"]["description"].isin(new)]
    lines = erp["invoice_lines"][erp["invoice_lines"]["material_id"].isin(materials["material_id"])]
    years = lines.merge(erp["invoices"], on="invoice_id")["posting_date"].dt.year

    assert len(lines) > 0
    assert set(years) == {2025}


def test_renamed_account(erp):
    accounts = erp["gl_accounts"].set_index("account_id")

    assert accounts.loc[RENAMED_ACCOUNT[0], "former_name"] == RENAMED_ACCOUNT[1]
    assert accounts.loc[RENAMED_ACCOUNT[0], "renamed_on"].year == 2025


def test_ticket_team_follows_topic(erp):
    tickets = erp["tickets"]
    blocked = tickets.merge(erp["invoices"][["invoice_id", "block_reason"]], on="invoice_id")
    price = blocked[blocked["title"].str.contains("block|gesperrt|release", case=False)
                    & (blocked["block_reason"] == "price_variance")]
    access = tickets[tickets["title"].str.contains("SAP login|Passwort", case=False)]

    assert len(tickets) == N_INVOICES // 4
    assert (price["resolving_team"] == "procurement").mean() > 0.8
    assert (access["resolving_team"] == "it_support").mean() > 0.8


def test_personal_data_present(erp):
    vendors = erp["vendors"]

    assert vendors["contact_email"].str.contains("@").all()
    assert vendors["iban"].dropna().str.match(r"^[A-Z]{2}\d+$").all()
    assert erp["tickets"]["requester_name"].notna().all()
