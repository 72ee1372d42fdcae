"""Bad input to extract: each case gets a clear error or a counted quarantine, never a silent drop."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from omegaconf import DictConfig, OmegaConf, open_dict
from sqlalchemy import create_engine, text

from pipeline.compose_params import compose_config
from pipeline.config import ConfigError
from pipeline.erp_schema import REQUIRED_TABLES
from pipeline.erp_simulator import generate_erp
from pipeline.extract import ExtractError, extract, simulate_source, source_url

N_INVOICES = 120


@pytest.fixture(autouse=True)
def pseudonym_key(monkeypatch):
    """A key for the personal-data columns, which a source other than the simulator requires."""
    monkeypatch.setenv("ERP_PSEUDONYM_KEY", "test-key-not-a-secret")


def _run(cfg: DictConfig, tmp_path: Path) -> dict:
    return extract(cfg, tmp_path / "extracted", tmp_path / "extract.json")


def _simulated_database(cfg: DictConfig, statements: list[str]) -> None:
    """Simulate the ERP into SQLite, then plant bad rows with SQL, as a real source would have them."""
    url = source_url(cfg)
    simulate_source(cfg, url)
    cfg.source.kind = "database"
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("PRAGMA foreign_keys=OFF"))
        for statement in statements:
            connection.execute(text(statement))
    engine.dispose()


@pytest.fixture()
def database_config(small_config) -> DictConfig:
    small_config.source.n_invoices = N_INVOICES
    return small_config


@pytest.fixture()
def exported_tables(tmp_path) -> dict[str, pd.DataFrame]:
    """The simulated ERP's tables as frames of text, ready to write as CSV."""
    engine = create_engine(f"sqlite:///{tmp_path / 'export.sqlite'}")
    generate_erp(engine, N_INVOICES, 42, [2024, 2025])
    with engine.connect() as connection:
        tables = {name: pd.read_sql_table(name, connection).astype(str) for name in REQUIRED_TABLES}
    engine.dispose()
    return tables


def _set(cfg: DictConfig, key: str, value) -> None:
    """Set a source setting, adding keys that the composed (struct) config lacks."""
    with open_dict(cfg):
        OmegaConf.update(cfg, key, value, merge=False)


def _csv_config(folder: Path, **settings) -> DictConfig:
    cfg = compose_config(["experiment=smoke", "source=csv"])
    OmegaConf.update(cfg, "source.path", str(folder))
    for key, value in settings.items():
        _set(cfg, f"source.{key}", value)
    return cfg


def _write_csv(tables: dict[str, pd.DataFrame], folder: Path, encoding: str = "utf-8", sep: str = ",") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        frame.to_csv(folder / f"{name}.csv", index=False, sep=sep, encoding=encoding)
    return folder


# Wrong types and unparseable values in a database: each is quarantined with its reason.
@pytest.mark.parametrize("statement, reason", [
    ("UPDATE invoice_lines SET line_no = 'first' WHERE line_id = 'INV000000001-001'", "invalid_line_no"),
    ("UPDATE invoice_lines SET line_no = 2.5 WHERE line_id = 'INV000000001-001'", "invalid_line_no"),
    ("UPDATE invoice_lines SET amount = 'ten euros' WHERE line_id = 'INV000000001-001'", "invalid_amount"),
    ("UPDATE invoice_lines SET amount = 'inf' WHERE line_id = 'INV000000001-001'", "invalid_amount"),
    ("UPDATE invoice_lines SET description = '   ' WHERE line_id = 'INV000000001-001'", "missing_description"),
    ("UPDATE invoice_lines SET gl_account_id = '999999' WHERE line_id = 'INV000000001-001'",
     "orphan_gl_account_id"),
    ("UPDATE invoices SET posting_date = '2024-02-30' WHERE invoice_id = 'INV000000002'", "invalid_posting_date"),
    ("UPDATE invoices SET posting_date = 'yesterday' WHERE invoice_id = 'INV000000002'", "invalid_posting_date"),
    ("UPDATE invoices SET vendor_id = 'V-GONE' WHERE invoice_id = 'INV000000002'", "orphan_vendor_id"),
    ("UPDATE vendors SET country = 'Germany' WHERE vendor_id = 'V000001'", "too_long_country"),
    ("UPDATE vendors SET payment_terms_days = 'net 30' WHERE vendor_id = 'V000001'", "invalid_payment_terms_days"),
])
def test_bad_value_quarantined(database_config, tmp_path, statement, reason):
    _simulated_database(database_config, [statement])
    table = statement.split()[1]

    reports = _run(database_config, tmp_path)

    assert reports[table]["quarantine_reasons"] == {reason: 1}
    assert reports[table]["read"] == reports[table]["written"] + 1
    quarantine = pd.read_parquet(tmp_path / "extracted" / "quarantine" / f"{table}.parquet")
    assert list(quarantine["quarantine_reason"]) == [reason]


def test_quarantine_keeps_raw_value(database_config, tmp_path):
    _simulated_database(database_config, [
        "UPDATE invoice_lines SET amount = 'ten euros' WHERE line_id = 'INV000000001-001'"])

    _run(database_config, tmp_path)

    quarantine = pd.read_parquet(tmp_path / "extracted" / "quarantine" / "invoice_lines.parquet")
    assert list(quarantine["amount"]) == ["ten euros"]


def test_invoice_lines_of_quarantined_invoice_are_orphans(database_config, tmp_path):
    _simulated_database(database_config, [
        "UPDATE invoices SET posting_date = 'soon' WHERE invoice_id = 'INV000000001'"])
    lines_of_invoice = "SELECT COUNT(*) FROM invoice_lines WHERE invoice_id = 'INV000000001'"
    engine = create_engine(source_url(database_config))
    with engine.connect() as connection:
        expected = connection.execute(text(lines_of_invoice)).scalar_one()
    engine.dispose()

    reports = _run(database_config, tmp_path)

    assert reports["invoices"]["quarantine_reasons"] == {"invalid_posting_date": 1}
    assert reports["invoice_lines"]["quarantine_reasons"] == {"orphan_invoice_id": expected}


def test_duplicate_key_quarantined(database_config, tmp_path):
    # SQLite enforces the primary key, so the table is rebuilt without one, as a
    # CSV import or a view over several systems would leave it.
    _simulated_database(database_config, [
        "CREATE TABLE vendors_copy AS SELECT * FROM vendors",
        "DROP TABLE vendors",
        "ALTER TABLE vendors_copy RENAME TO vendors",
        "INSERT INTO vendors SELECT * FROM vendors WHERE vendor_id = 'V000003'",
    ])

    reports = _run(database_config, tmp_path)

    assert reports["vendors"]["quarantine_reasons"] == {"duplicate_key": 1}
    assert reports["vendors"]["written"] == reports["vendors"]["read"] - 1


def test_hostile_table_name_rejected(database_config, tmp_path):
    _simulated_database(database_config, [])
    _set(database_config, "source.tables.vendors", "vendors; DROP TABLE invoices; --")

    with pytest.raises(ExtractError, match=r"'vendors; DROP TABLE invoices; --' not found"):
        _run(database_config, tmp_path)
    engine = create_engine(source_url(database_config))
    with engine.connect() as connection:
        invoices = connection.execute(text("SELECT COUNT(*) FROM invoices")).scalar_one()
    engine.dispose()
    assert invoices == N_INVOICES


def test_hostile_column_name_rejected(database_config, tmp_path):
    _simulated_database(database_config, [])
    _set(database_config, "source.columns.vendors", {"industry": "1); DROP TABLE vendors; --"})

    with pytest.raises(ExtractError, match=r"lacks the required column\(s\) \['1\); DROP TABLE vendors; --'\]"):
        _run(database_config, tmp_path)


def test_mapped_table_and_column_read(database_config, tmp_path):
    _simulated_database(database_config, [
        "ALTER TABLE vendors RENAME TO LFA1",
        "ALTER TABLE LFA1 RENAME COLUMN name TO NAME1",
    ])
    _set(database_config, "source.tables.vendors", "LFA1")
    _set(database_config, "source.columns.vendors", {"name": "NAME1"})

    reports = _run(database_config, tmp_path)

    vendors = pd.read_parquet(tmp_path / "extracted" / "vendors.parquet")
    assert reports["vendors"]["quarantined"] == 0
    assert vendors["name"].notna().all()


def test_mapping_unknown_column_rejected(database_config, tmp_path):
    _simulated_database(database_config, [])
    _set(database_config, "source.columns.vendors", {"vat_id": "STCEG"})

    with pytest.raises(ExtractError, match=r"source.columns.vendors maps \['vat_id'\]"):
        _run(database_config, tmp_path)


def test_empty_vendors_stops_extract(database_config, tmp_path):
    _simulated_database(database_config, ["DELETE FROM invoice_lines", "DELETE FROM invoices",
                                          "DELETE FROM vendors"])

    with pytest.raises(ExtractError, match="'vendors' is empty"):
        _run(database_config, tmp_path)
    assert not (tmp_path / "extracted").exists()


def test_password_in_url_not_echoed(database_config):
    database_config.source.url = "postgresql+psycopg://erp:hunter2-secret@127.0.0.1:5432/erp"

    with pytest.raises(ConfigError) as error:
        source_url(database_config)
    assert "contains a password" in str(error.value)
    assert "hunter2-secret" not in str(error.value)


def test_password_placeholder_needs_environment(database_config, monkeypatch):
    monkeypatch.delenv("ERP_DB_PASSWORD", raising=False)
    database_config.source.url = "postgresql+psycopg://erp:{password}@127.0.0.1:5432/erp"

    with pytest.raises(ConfigError, match="ERP_DB_PASSWORD is unset"):
        source_url(database_config)


def test_unknown_source_kind_rejected(database_config, tmp_path):
    database_config.source.kind = "oracle"

    with pytest.raises(ConfigError, match="source.kind='oracle' is unknown"):
        _run(database_config, tmp_path)


# Exported files.

def test_csv_extract_matches_database(database_config, exported_tables, tmp_path):
    folder = _write_csv(exported_tables, tmp_path / "export")

    reports = _run(_csv_config(folder), tmp_path)

    assert reports["invoices"]["written"] == N_INVOICES
    assert all(report["quarantined"] == 0 for report in reports.values())


def test_csv_broken_encoding_quarantined(exported_tables, tmp_path):
    folder = _write_csv(exported_tables, tmp_path / "export")
    path = folder / "invoice_lines.csv"
    lines = path.read_bytes().split(b"\n")
    # 0xE9 is 'é' in Latin-1 but not valid UTF-8 on its own.
    lines[1] = lines[1].replace(b",", b",caf\xe9 ", 1)
    path.write_bytes(b"\n".join(lines))

    reports = _run(_csv_config(folder), tmp_path)

    lines_report = reports["invoice_lines"]
    assert lines_report["quarantine_reasons"] == {"invalid_encoding_invoice_id": 1}
    assert lines_report["read"] == lines_report["written"] + 1


def test_csv_wrong_encoding_stops_extract(exported_tables, tmp_path):
    exported_tables["invoice_lines"]["description"] = "Kugellager für Förderband"
    folder = _write_csv(exported_tables, tmp_path / "export", encoding="cp1252")

    with pytest.raises(ExtractError, match="wrong source.encoding"):
        _run(_csv_config(folder), tmp_path)


def test_csv_encoding_setting_decodes(exported_tables, tmp_path):
    exported_tables["invoice_lines"]["description"] = "Kugellager für Förderband"
    folder = _write_csv(exported_tables, tmp_path / "export", encoding="cp1252")

    _run(_csv_config(folder, encoding="cp1252"), tmp_path)

    lines = pd.read_parquet(tmp_path / "extracted" / "invoice_lines.parquet")
    assert set(lines["description"]) == {"Kugellager für Förderband"}


def test_csv_missing_column_stops_extract(exported_tables, tmp_path):
    exported_tables["invoices"] = exported_tables["invoices"].drop(columns=["posting_date"])
    folder = _write_csv(exported_tables, tmp_path / "export")

    with pytest.raises(ExtractError, match=r"'invoices.csv' lacks the required column\(s\) \['posting_date'\]"):
        _run(_csv_config(folder), tmp_path)


def test_csv_missing_file_stops_extract(exported_tables, tmp_path):
    folder = _write_csv(exported_tables, tmp_path / "export")
    (folder / "vendors.csv").unlink()

    with pytest.raises(ExtractError, match=r"vendors.csv' for table 'vendors' not found"):
        _run(_csv_config(folder), tmp_path)


def test_csv_file_outside_folder_rejected(exported_tables, tmp_path):
    folder = _write_csv(exported_tables, tmp_path / "export")
    cfg = _csv_config(folder, files={"vendors": "../../etc/passwd"})

    with pytest.raises(ExtractError, match="points outside source.path"):
        _run(cfg, tmp_path)


def test_csv_ambiguous_dates_stop_extract(exported_tables, tmp_path):
    exported_tables["invoices"]["posting_date"] = "03/04/2024"
    folder = _write_csv(exported_tables, tmp_path / "export")

    with pytest.raises(ExtractError, match="several formats fit.*Set source.date_format"):
        _run(_csv_config(folder), tmp_path)


def test_csv_dates_detected(exported_tables, tmp_path):
    dates = pd.to_datetime(exported_tables["invoices"]["posting_date"])
    exported_tables["invoices"]["posting_date"] = dates.dt.strftime("%d.%m.%Y")
    folder = _write_csv(exported_tables, tmp_path / "export")

    _run(_csv_config(folder), tmp_path)

    invoices = pd.read_parquet(tmp_path / "extracted" / "invoices.parquet")
    assert list(invoices["posting_date"]) == list(dates.dt.date)


def test_csv_unparseable_amount_quarantined(exported_tables, tmp_path):
    exported_tables["invoice_lines"].loc[0, "amount"] = "12,50 EUR"
    folder = _write_csv(exported_tables, tmp_path / "export")

    reports = _run(_csv_config(folder), tmp_path)

    assert reports["invoice_lines"]["quarantine_reasons"] == {"invalid_amount": 1}


def test_sap_style_export_read(exported_tables, tmp_path):
    sap_names = compose_config(["source=sap_csv"]).source
    lines = exported_tables["invoice_lines"]
    amounts = lines["amount"].astype(float)
    lines["amount"] = [f"{value:,.2f}".replace(",", " ").replace(".", ",").replace(" ", ".") for value in amounts]
    for frame in exported_tables.values():
        for column in {"posting_date", "invoice_date", "due_date", "onboarded_on", "renamed_on"} & set(frame):
            frame[column] = pd.to_datetime(frame[column]).dt.strftime("%d.%m.%Y")
    folder = tmp_path / "sap"
    folder.mkdir()
    for table, frame in exported_tables.items():
        renamed = frame.rename(columns=dict(sap_names.columns[table]))
        renamed.to_csv(folder / sap_names.files[table], sep=";", index=False, encoding="cp1252")
    cfg = compose_config(["experiment=smoke", "source=sap_csv"])
    cfg.source.path = str(folder)

    reports = _run(cfg, tmp_path)

    extracted = pd.read_parquet(tmp_path / "extracted" / "invoice_lines.parquet")
    assert reports["invoice_lines"]["quarantined"] == 0
    assert extracted["amount"].tolist() == pytest.approx(amounts.tolist())


def test_parquet_export_read(exported_tables, tmp_path):
    folder = tmp_path / "export"
    folder.mkdir()
    for name, frame in exported_tables.items():
        frame.to_parquet(folder / f"{name}.parquet")
    cfg = compose_config(["experiment=smoke", "source=parquet"])
    cfg.source.path = str(folder)

    reports = _run(cfg, tmp_path)

    assert reports["invoices"]["written"] == N_INVOICES
    assert all(report["quarantined"] == 0 for report in reports.values())


def test_pseudonym_key_required_for_real_source(exported_tables, tmp_path, monkeypatch):
    monkeypatch.delenv("ERP_PSEUDONYM_KEY", raising=False)
    folder = _write_csv(exported_tables, tmp_path / "export")
    cfg = _csv_config(folder, pseudonymize={"vendors": ["name"]})

    with pytest.raises(ConfigError, match="ERP_PSEUDONYM_KEY is unset"):
        _run(cfg, tmp_path)


def test_pseudonymized_column_replaced(exported_tables, tmp_path, monkeypatch):
    monkeypatch.setenv("ERP_PSEUDONYM_KEY", "a-test-key-of-enough-length")
    folder = _write_csv(exported_tables, tmp_path / "export")
    cfg = _csv_config(folder, pseudonymize={"vendors": ["name"]})

    _run(cfg, tmp_path)

    vendors = pd.read_parquet(tmp_path / "extracted" / "vendors.parquet")
    originals = set(exported_tables["vendors"]["name"])
    assert vendors["name"].str.match(r"^name_[0-9a-f]{16}$").all()
    assert not originals & set(vendors["name"])
    assert vendors["name"].nunique() == len(originals)
