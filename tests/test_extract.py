"""Extract: simulate, read back through SQLAlchemy, validate and account for every row."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from sqlalchemy import create_engine, text

from pipeline.config import ConfigError
from pipeline.extract import ExtractError, extract, log_to_mlflow, simulate_source, source_url


@pytest.fixture(autouse=True)
def pseudonym_key(monkeypatch):
    """A key for the personal-data columns, which a source other than the simulator requires."""
    monkeypatch.setenv("ERP_PSEUDONYM_KEY", "test-key-not-a-secret")


def test_simulated_extract_accounts_for_rows(small_config, tmp_path):
    reports = extract(small_config, tmp_path / "extracted", tmp_path / "extract.json")

    for table, report in reports.items():
        assert report["read"] == report["written"] + report["quarantined"], table
        written = pd.read_parquet(tmp_path / "extracted" / f"{table}.parquet")
        assert len(written) == report["written"], table
    assert reports["invoices"]["read"] == 300
    assert json.loads((tmp_path / "extract.json").read_text()) == reports


def test_simulator_is_deterministic(small_config, tmp_path):
    first = extract(small_config, tmp_path / "a", tmp_path / "a.json")
    lines_a = pd.read_parquet(tmp_path / "a" / "invoice_lines.parquet")
    second = extract(small_config, tmp_path / "b", tmp_path / "b.json")
    lines_b = pd.read_parquet(tmp_path / "b" / "invoice_lines.parquet")

    assert first == second
    pd.testing.assert_frame_equal(lines_a, lines_b)


def _corrupt(cfg, statements: list[str]) -> None:
    """Simulate the database, then run SQL against it to plant bad rows."""
    url = source_url(cfg)
    simulate_source(cfg, url)
    cfg.source.kind = "database"
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("PRAGMA foreign_keys=OFF"))
        for statement in statements:
            connection.execute(text(statement))
    engine.dispose()


def test_orphan_and_bad_amount_quarantined(small_config, tmp_path):
    _corrupt(small_config, [
        "INSERT INTO invoice_lines (line_id, invoice_id, line_no, description, quantity, amount, gl_account_id) "
        "VALUES ('X-1', 'INV-MISSING', 1, 'toner', 1, 10.0, '610100')",
        "INSERT INTO invoice_lines (line_id, invoice_id, line_no, description, quantity, amount, gl_account_id) "
        "VALUES ('X-2', 'INV000000001', 9, 'toner', 1, 'ten euros', '610100')",
    ])

    reports = extract(small_config, tmp_path / "extracted", tmp_path / "extract.json")

    lines = reports["invoice_lines"]
    assert lines["quarantine_reasons"] == {"invalid_amount": 1, "orphan_invoice_id": 1}
    assert lines["read"] == lines["written"] + 2
    quarantine = pd.read_parquet(tmp_path / "extracted" / "quarantine" / "invoice_lines.parquet")
    assert sorted(quarantine["line_id"]) == ["X-1", "X-2"]


def test_missing_column_stops_extract(small_config, tmp_path):
    _corrupt(small_config, ["ALTER TABLE vendors DROP COLUMN industry"])

    with pytest.raises(ExtractError, match=r"'vendors' lacks the required column\(s\) \['industry'\]"):
        extract(small_config, tmp_path / "extracted", tmp_path / "extract.json")
    assert not (tmp_path / "extracted").exists()
    assert not (tmp_path / "extracted.partial").exists()


def test_empty_table_stops_extract(small_config, tmp_path):
    _corrupt(small_config, ["DELETE FROM invoice_lines"])

    with pytest.raises(ExtractError, match="'invoice_lines' is empty"):
        extract(small_config, tmp_path / "extracted", tmp_path / "extract.json")


def test_quarantine_limit_stops_extract(small_config, tmp_path):
    _corrupt(small_config, ["UPDATE invoice_lines SET amount = 'n/a' WHERE line_no = 1"])

    with pytest.raises(ExtractError, match=r"quarantined.*max_quarantine_share"):
        extract(small_config, tmp_path / "extracted", tmp_path / "extract.json")


def test_failed_extract_keeps_previous_output(small_config, tmp_path):
    out = tmp_path / "extracted"
    extract(small_config, out, tmp_path / "extract.json")
    before = pd.read_parquet(out / "invoice_lines.parquet")
    _corrupt(small_config, ["DROP TABLE invoice_lines"])

    with pytest.raises(ExtractError, match="'invoice_lines' not found"):
        extract(small_config, out, tmp_path / "extract.json")
    pd.testing.assert_frame_equal(pd.read_parquet(out / "invoice_lines.parquet"), before)


def test_password_taken_from_environment(small_config, monkeypatch):
    small_config.source.url = "postgresql+psycopg://erp@127.0.0.1:5432/erp"
    monkeypatch.setenv("ERP_DB_PASSWORD", "s3cret")

    url = source_url(small_config)

    assert url.password == "s3cret"
    assert "s3cret" not in url.render_as_string(hide_password=True)


def test_simulated_source_needs_sqlite(small_config):
    small_config.source.url = "postgresql+psycopg://erp@127.0.0.1:5432/erp"

    with pytest.raises(ConfigError, match="sqlite:///PATH"):
        simulate_source(small_config, source_url(small_config))


def test_personal_data_pseudonymized(small_config, tmp_path):
    extract(small_config, tmp_path / "extracted", tmp_path / "extract.json")

    vendors = pd.read_parquet(tmp_path / "extracted" / "vendors.parquet")
    tickets = pd.read_parquet(tmp_path / "extracted" / "tickets.parquet")
    assert vendors["contact_email"].str.match(r"^contact_email_[0-9a-f]{16}$").all()
    assert vendors["iban"].dropna().str.match(r"^iban_[0-9a-f]{16}$").all()
    assert tickets["requester_name"].str.match(r"^requester_name_[0-9a-f]{16}$").all()
    assert not vendors["name"].str.startswith("name_").any()


def test_pseudonyms_depend_on_key(small_config, tmp_path, monkeypatch):
    small_config.source.kind = "database"
    simulate_source(small_config, source_url(small_config))
    extract(small_config, tmp_path / "a", tmp_path / "a.json")
    monkeypatch.setenv("ERP_PSEUDONYM_KEY", "another-test-key-here")
    extract(small_config, tmp_path / "b", tmp_path / "b.json")

    first = pd.read_parquet(tmp_path / "a" / "vendors.parquet")["contact_name"]
    second = pd.read_parquet(tmp_path / "b" / "vendors.parquet")["contact_name"]
    assert first.nunique() == second.nunique()
    assert not set(first) & set(second)


def test_report_logged_to_mlflow(small_config, tmp_path, monkeypatch):
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    reports = extract(small_config, tmp_path / "extracted", tmp_path / "extract.json")

    log_to_mlflow(small_config, reports, tmp_path / "extract.json")

    runs = mlflow.search_runs(experiment_names=[small_config.mlflow.experiment_name], output_format="list")
    assert [run.info.run_name for run in runs] == ["extract"]
    assert runs[0].data.metrics["invoice_lines/read"] == reports["invoice_lines"]["read"]
    assert runs[0].data.params["source.url"] == small_config.source.url


def test_record_source_hides_password(default_config, tmp_path):
    from pipeline.extract import record_source

    default_config.source.kind = "database"
    default_config.source.url = "postgresql+psycopg://erp:s3cret@127.0.0.1:5432/erp"

    record_source(default_config, tmp_path / "erp")

    written = (tmp_path / "erp" / "source.json").read_text()
    assert "s3cret" not in written
    assert "127.0.0.1:5432/erp" in written
