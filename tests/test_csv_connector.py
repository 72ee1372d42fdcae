"""CSV connector options and config-declared tables, on small synthetic files written in tmp_path."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pandas as pd
import pytest
from omegaconf import DictConfig, OmegaConf, open_dict

from pipeline.compose_params import compose_config
from pipeline.config import ConfigError
from pipeline.extract import ExtractError, extract

# A card-transaction table without a natural key, so extract adds row_id.
SCHEMA = {
    "transactions": {
        "primary_key": None,
        "columns": {
            "trans_date": {"type": "date", "nullable": False},
            "amount": {"type": "number", "nullable": False},
            "merchant_name": {"type": "string", "nullable": False},
            "currency": {"type": "string", "length": 3},
        },
    },
}
COLUMNS = {"transactions": {"trans_date": "TRANS DATE", "amount": "AMOUNT", "merchant_name": "MERCHANT NAME",
                            "currency": "CURRENCY"}}
HEADER = "TRANS DATE,AMOUNT,MERCHANT NAME,CURRENCY"


@pytest.fixture(autouse=True)
def pseudonym_key(monkeypatch):
    monkeypatch.setenv("ERP_PSEUDONYM_KEY", "test-key-not-a-secret")


def _config(folder: Path, schema: dict | None = None, **settings) -> DictConfig:
    cfg = compose_config(["source=csv"])
    with open_dict(cfg):
        cfg.source.path = str(folder)
        cfg.source.schema = SCHEMA if schema is None else schema
        cfg.source.columns = COLUMNS
        cfg.source.files = {"transactions": "transactions.csv"}
        cfg.source.date_format = "%Y-%m-%d"
        for key, value in settings.items():
            OmegaConf.update(cfg, f"source.{key}", value, merge=False)
    return cfg


def _write(folder: Path, name: str, lines: list[str], encoding: str = "utf-8") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(("\n".join(lines) + "\n").encode(encoding))
    return path


def _run(cfg: DictConfig, tmp_path: Path) -> dict:
    return extract(cfg, tmp_path / "extracted", tmp_path / "extract.json")


def _table(tmp_path: Path, name: str = "transactions", quarantine: bool = False) -> pd.DataFrame:
    folder = tmp_path / "extracted" / ("quarantine" if quarantine else "")
    return pd.read_parquet(folder / f"{name}.parquet")


def _assert_accounted(report: dict) -> None:
    assert report["read"] == report["written"] + report["quarantined"]


def test_declared_table_types(tmp_path):
    _write(tmp_path / "in", "transactions.csv", [HEADER, "2024-03-01,12.50,shell kings,GBP"])

    reports = _run(_config(tmp_path / "in"), tmp_path)

    table = _table(tmp_path)
    assert reports["transactions"] == {"read": 1, "written": 1, "quarantined": 0, "quarantine_reasons": {}}
    assert list(table.columns) == ["row_id", "trans_date", "amount", "merchant_name", "currency"]
    assert table.loc[0, "trans_date"] == datetime.date(2024, 3, 1)
    assert table.loc[0, "amount"] == 12.5
    assert table.loc[0, "row_id"] == "transactions.csv:2"


def test_declared_table_report_file(tmp_path):
    _write(tmp_path / "in", "transactions.csv", [HEADER, "2024-03-01,12.50,shell kings,GBP", ",1,x,GBP"])

    _run(_config(tmp_path / "in", max_quarantine_share=0.5), tmp_path)

    report = json.loads((tmp_path / "extract.json").read_text())["transactions"]
    assert report["read"] == 2
    assert report["quarantine_reasons"] == {"missing_trans_date": 1}
    _assert_accounted(report)


def test_row_ids_stable_across_runs(tmp_path):
    rows = [f"2024-03-0{day},{day},shop {day},GBP" for day in range(1, 6)]
    _write(tmp_path / "in", "transactions.csv", [HEADER] + rows)
    cfg = _config(tmp_path / "in", chunk_size=2)

    _run(cfg, tmp_path)
    first = _table(tmp_path)["row_id"].tolist()
    _run(cfg, tmp_path)
    second = _table(tmp_path)["row_id"].tolist()

    assert first == [f"transactions.csv:{line}" for line in range(2, 7)]
    assert second == first


def test_declared_key_duplicates_quarantined(tmp_path):
    schema = {"invoices": {"primary_key": "invoice_number",
                           "columns": {"invoice_number": {"type": "string"}, "amount": {"type": "number"}}}}
    _write(tmp_path / "in", "invoices.csv", ["invoice_number,amount", "0001,1.5", "0002,2", "0001,3"])
    cfg = _config(tmp_path / "in", schema, columns={}, files={}, max_quarantine_share=0.5)

    reports = _run(cfg, tmp_path)

    assert reports["invoices"]["quarantine_reasons"] == {"duplicate_key": 1}
    assert _table(tmp_path, "invoices")["invoice_number"].tolist() == ["0001", "0002"]


def test_glob_files_concatenated_in_order(tmp_path):
    folder = tmp_path / "in"
    _write(folder, "export-201702.csv", [HEADER, "2017-02-01,2,second,GBP"])
    _write(folder, "export-201701.csv", [HEADER, "2017-01-01,1,first,GBP", "2017-01-02,1.5,first b,GBP"])
    _write(folder, "other.csv", [HEADER, "2017-03-01,3,not matched,GBP"])
    cfg = _config(folder, files={"transactions": "export-*.csv"}, file_column="source_file")

    reports = _run(cfg, tmp_path)

    table = _table(tmp_path)
    assert reports["transactions"]["read"] == 3
    assert table["merchant_name"].tolist() == ["first", "first b", "second"]
    assert table["source_file"].tolist() == ["export-201701.csv", "export-201701.csv", "export-201702.csv"]
    assert table["row_id"].tolist() == ["export-201701.csv:2", "export-201701.csv:3", "export-201702.csv:2"]


def test_file_list_sorted(tmp_path):
    folder = tmp_path / "in"
    _write(folder, "b.csv", [HEADER, "2017-02-01,2,from b,GBP"])
    _write(folder, "a.csv", [HEADER, "2017-01-01,1,from a,GBP"])

    _run(_config(folder, files={"transactions": ["b.csv", "a.csv"]}), tmp_path)

    assert _table(tmp_path)["merchant_name"].tolist() == ["from a", "from b"]


def test_glob_outside_folder_rejected(tmp_path):
    _write(tmp_path / "in", "transactions.csv", [HEADER, "2024-03-01,1,x,GBP"])

    with pytest.raises(ExtractError, match="points outside source.path"):
        _run(_config(tmp_path / "in", files={"transactions": "../*/transactions.csv"}), tmp_path)


def test_glob_without_match_stops_extract(tmp_path):
    _write(tmp_path / "in", "transactions.csv", [HEADER, "2024-03-01,1,x,GBP"])

    with pytest.raises(ExtractError, match="for table 'transactions' not found"):
        _run(_config(tmp_path / "in", files={"transactions": "export-*.csv"}), tmp_path)


def test_mixed_delimiters_detected(tmp_path):
    folder = tmp_path / "in"
    _write(folder, "part-1.csv", ["TRANS DATE;AMOUNT;MERCHANT NAME;CURRENCY", "2024-01-01;1,234.50;semi, colon;GBP"])
    _write(folder, "part-2.csv", [HEADER, '2024-01-02,"1,000.00","comma; file",GBP'])
    _write(folder, "part-3.csv", ["TRANS DATE\tAMOUNT\tMERCHANT NAME\tCURRENCY", "2024-01-03\t3\ttab, file\tGBP"])
    cfg = _config(folder, files={"transactions": "part-*.csv"}, delimiter="auto", thousands=",")

    reports = _run(cfg, tmp_path)

    table = _table(tmp_path)
    assert reports["transactions"]["quarantined"] == 0
    assert table["merchant_name"].tolist() == ["semi, colon", "comma; file", "tab, file"]
    assert table["amount"].tolist() == [1234.5, 1000.0, 3.0]


def test_ambiguous_delimiter_stops_extract(tmp_path):
    # Both "," and ";" split every line into the same number of fields.
    _write(tmp_path / "in", "transactions.csv", ["TRANS DATE,AMOUNT;MERCHANT NAME", "2024-01-01,1;x"])

    with pytest.raises(ExtractError, match=r"several delimiters fit \(',', ';'\).*Set source.delimiter"):
        _run(_config(tmp_path / "in", delimiter="auto"), tmp_path)


def test_undetectable_delimiter_stops_extract(tmp_path):
    _write(tmp_path / "in", "transactions.csv", ["TRANS DATE", "2024-01-01"])

    with pytest.raises(ExtractError, match="no delimiter fits"):
        _run(_config(tmp_path / "in", delimiter="auto"), tmp_path)


def test_header_spacing_and_case_matched(tmp_path):
    _write(tmp_path / "in", "transactions.csv",
           ["  trans  date ; Amount;MERCHANT   NAME ;currency", "2024-01-01;5;shop;GBP"])

    reports = _run(_config(tmp_path / "in", delimiter=";"), tmp_path)

    assert reports["transactions"]["written"] == 1
    assert _table(tmp_path).loc[0, "merchant_name"] == "shop"


def test_headers_equal_after_normalizing_rejected(tmp_path):
    _write(tmp_path / "in", "transactions.csv", [HEADER + ",Amount ", "2024-01-01,5,shop,GBP,6"])

    with pytest.raises(ExtractError, match="'AMOUNT' and 'Amount ', which differ only in case or spacing"):
        _run(_config(tmp_path / "in"), tmp_path)


def test_missing_nullable_column_null(tmp_path):
    folder = tmp_path / "in"
    _write(folder, "a.csv", ["TRANS DATE,AMOUNT,MERCHANT NAME", "2024-01-01,5,no currency"])
    _write(folder, "b.csv", [HEADER, "2024-01-02,6,with currency,EUR"])

    reports = _run(_config(folder, files={"transactions": "*.csv"}), tmp_path)

    table = _table(tmp_path)
    assert reports["transactions"]["written"] == 2
    assert pd.isna(table.loc[0, "currency"])
    assert table.loc[1, "currency"] == "EUR"


def test_missing_required_column_stops_extract(tmp_path):
    folder = tmp_path / "in"
    _write(folder, "a.csv", [HEADER, "2024-01-01,5,shop,GBP"])
    _write(folder, "b.csv", ["TRANS DATE,MERCHANT NAME,CURRENCY", "2024-01-02,shop,GBP"])

    with pytest.raises(ExtractError, match=r"File 'b.csv' lacks the required column\(s\) \['AMOUNT'\]"):
        _run(_config(folder, files={"transactions": "*.csv"}), tmp_path)


@pytest.mark.parametrize("text, expected", [
    ("1,234.50", 1234.5),
    ("-1,120.81", -1120.81),
    ("£1,234.50", 1234.5),
    ("£ 12", 12.0),
    ("-£5.00", -5.0),
    ("(12.50)", -12.5),
    ("(£1,000.00)", -1000.0),
    ("999,999.99", 999999.99),
])
def test_amount_notation_parsed(tmp_path, text, expected):
    _write(tmp_path / "in", "transactions.csv", [HEADER, f'2024-01-01,"{text}",shop,GBP'])
    cfg = _config(tmp_path / "in", thousands=",", strict_thousands=True, currency_symbols=["£"],
                  parenthesized_negatives=True)

    reports = _run(cfg, tmp_path)

    assert reports["transactions"]["quarantined"] == 0
    assert _table(tmp_path).loc[0, "amount"] == pytest.approx(expected)


@pytest.mark.parametrize("text, settings", [
    ("12,50", {"strict_thousands": True}),
    ("1,23,456.00", {"strict_thousands": True}),
    ("$5.00", {"currency_symbols": ["£"]}),
    ("(12.50)", {"parenthesized_negatives": False}),
    ("12.50 GBP", {}),
])
def test_bad_amount_notation_quarantined(tmp_path, text, settings):
    _write(tmp_path / "in", "transactions.csv", [HEADER, f'2024-01-01,"{text}",shop,GBP', "2024-01-02,1,ok,GBP"])
    cfg = _config(tmp_path / "in", thousands=",", max_quarantine_share=0.5, **settings)

    reports = _run(cfg, tmp_path)

    assert reports["transactions"]["quarantine_reasons"] == {"invalid_amount": 1}
    assert _table(tmp_path, quarantine=True).loc[0, "amount"] == text


def test_day_first_dates(tmp_path):
    _write(tmp_path / "in", "transactions.csv", [HEADER, "03/04/2024,1,shop,GBP", "31/12/2024,1,shop,GBP"])

    _run(_config(tmp_path / "in", date_format="%d/%m/%Y"), tmp_path)

    assert _table(tmp_path)["trans_date"].tolist() == [datetime.date(2024, 4, 3), datetime.date(2024, 12, 31)]


def test_per_column_date_formats(tmp_path):
    schema = {"payments": {"primary_key": None, "columns": {
        "paid_on": {"type": "date"}, "due_on": {"type": "date"}, "booked_on": {"type": "date"}}}}
    _write(tmp_path / "in", "payments.csv", ["paid_on,due_on,booked_on", "22/12/16,20161231,2016-12-01"])
    cfg = _config(tmp_path / "in", schema, columns={}, files={}, date_format=None,
                  date_formats={"payments": {"paid_on": "%d/%m/%y", "due_on": "%Y%m%d"}})

    _run(cfg, tmp_path)

    payments = _table(tmp_path, "payments")
    assert payments.loc[0, "paid_on"] == datetime.date(2016, 12, 22)
    assert payments.loc[0, "due_on"] == datetime.date(2016, 12, 31)
    # No format configured: detected from the values.
    assert payments.loc[0, "booked_on"] == datetime.date(2016, 12, 1)


def test_day_first_date_in_month_first_format_quarantined(tmp_path):
    _write(tmp_path / "in", "transactions.csv", [HEADER, "22/12/2016,1,shop,GBP", "12/22/2016,1,shop,GBP"])

    reports = _run(_config(tmp_path / "in", date_format="%m/%d/%Y", max_quarantine_share=0.5), tmp_path)

    assert reports["transactions"]["quarantine_reasons"] == {"invalid_trans_date": 1}


def test_label_normalization_counted(tmp_path):
    _write(tmp_path / "in", "transactions.csv", [
        HEADER,
        "2024-01-01,1,CYP&F SCHOOLS,GBP",
        "2024-01-02,1,CYP&F  Schools ,GBP",
        "2024-01-03,1,cyp&f schools,GBP",
        ",1,Broken  Row,GBP",
    ])
    cfg = _config(tmp_path / "in", max_quarantine_share=0.5,
                  normalize={"transactions": {"merchant_name": ["strip", "collapse_whitespace", "casefold"]}})

    reports = _run(cfg, tmp_path)

    assert set(_table(tmp_path)["merchant_name"]) == {"cyp&f schools"}
    # Only written rows count; the quarantined row keeps its value as read.
    assert reports["transactions"]["normalized"] == {"merchant_name": 2}
    assert _table(tmp_path, quarantine=True).loc[0, "merchant_name"] == "Broken  Row"


def test_report_without_normalization_unchanged(tmp_path):
    _write(tmp_path / "in", "transactions.csv", [HEADER, "2024-01-01,1,shop,GBP"])

    reports = _run(_config(tmp_path / "in"), tmp_path)

    assert "normalized" not in reports["transactions"]


def test_broken_encoding_quarantined(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    # 0x96 is an en dash in Windows-1252 but not valid UTF-8 on its own.
    (folder / "transactions.csv").write_bytes(
        f"{HEADER}\n2024-01-01,1,Pulse \x96 Horizon,GBP\n2024-01-02,1\x96,shop,GBP\n2024-01-03,1,shop,GBP\n"
        .encode("latin-1"))

    reports = _run(_config(folder, max_quarantine_share=0.9), tmp_path)

    report = reports["transactions"]
    assert report["quarantine_reasons"] == {"invalid_encoding_merchant_name": 1, "invalid_encoding_amount": 1}
    assert report["read"] == 3
    _assert_accounted(report)


def test_encoding_setting_decodes_en_dash(tmp_path):
    _write(tmp_path / "in", "transactions.csv", [HEADER, "2024-01-01,1,Pulse \u2013 Horizon,GBP"], encoding="cp1252")

    _run(_config(tmp_path / "in", encoding="cp1252"), tmp_path)

    assert _table(tmp_path).loc[0, "merchant_name"] == "Pulse \u2013 Horizon"


def test_declared_column_pseudonymized(tmp_path):
    _write(tmp_path / "in", "transactions.csv", [HEADER, "2024-01-01,1,Jane Doe,GBP", "2024-01-02,2,Jane Doe,GBP"])

    _run(_config(tmp_path / "in", pseudonymize={"transactions": ["merchant_name"]}), tmp_path)

    names = _table(tmp_path)["merchant_name"]
    assert names.str.fullmatch(r"merchant_name_[0-9a-f]{16}").all()
    assert names.nunique() == 1


@pytest.mark.parametrize("settings, message", [
    ({"schema": {"transactions": {"primary_key": None, "columns": {"amount": {"type": "money"}}}}},
     r"type='money' is unknown"),
    ({"schema": {"../escape": {"primary_key": None, "columns": {"amount": "number"}}}},
     r"'../escape' is not a valid name"),
    ({"schema": {"transactions": {"primary_key": "id", "columns": {"amount": "number"}}}},
     r"primary_key='id' is not one of its columns"),
    ({"schema": {"transactions": {"primary_key": None, "columns": {"row_id": "string"}}}},
     r"'row_id' is reserved"),
    ({"schema": {"transactions": {"primary_key": None, "columns": {"amount": {"type": "number", "width": 3}}}}},
     r"unknown key\(s\) \['width'\]"),
    ({"normalize": {"transactions": {"amount": ["strip"]}}}, r"normalize.transactions.amount is set, but"),
    ({"normalize": {"transactions": {"merchant_name": ["titlecase"]}}}, r"list rules among"),
    ({"normalize": {"invoices": {"name": ["strip"]}}}, r"names table 'invoices'"),
    ({"date_formats": {"transactions": {"trans_date": "dd/mm/yyyy"}}}, r"is not a strftime format"),
    ({"delimiter": ";;"}, r"give one character, or 'auto'"),
    ({"currency_symbols": ["£", "-"]}, r"contains digits, signs or separators"),
])
def test_invalid_settings_rejected(tmp_path, settings, message):
    _write(tmp_path / "in", "transactions.csv", [HEADER, "2024-01-01,1,shop,GBP"])
    cfg = _config(tmp_path / "in", **settings)

    with pytest.raises(ConfigError, match=message):
        _run(cfg, tmp_path)


def test_generated_row_id_needs_files(tmp_path):
    cfg = compose_config(["source=database"])
    with open_dict(cfg):
        cfg.source.schema = SCHEMA

    with pytest.raises(ConfigError, match=r"primary_key is null, but a generated row id needs file rows"):
        _run(cfg, tmp_path)


def test_schema_with_simulator_rejected(tmp_path):
    cfg = compose_config(["source=simulated"])
    with open_dict(cfg):
        cfg.source.schema = SCHEMA

    with pytest.raises(ConfigError, match="source.kind=simulated writes the fixed ERP schema"):
        _run(cfg, tmp_path)


def test_declared_reference_orphans_quarantined(tmp_path):
    schema = {
        "accounts": {"primary_key": "code", "columns": {"code": "string", "name": "string"}},
        "postings": {"primary_key": None, "columns": {
            "amount": "number", "code": {"type": "string", "references": "accounts.code"}}},
    }
    folder = tmp_path / "in"
    _write(folder, "accounts.csv", ["code,name", "K020,Vehicle Fuel"])
    _write(folder, "postings.csv", ["amount,code", "1,K020", "2,K999", "3,"])
    cfg = _config(folder, schema, columns={}, files={}, max_quarantine_share=0.5)

    reports = _run(cfg, tmp_path)

    assert reports["postings"]["quarantine_reasons"] == {"orphan_code": 1}
    assert _table(tmp_path, "postings")["amount"].tolist() == [1.0, 3.0]


def test_reference_to_later_table_rejected(tmp_path):
    schema = {
        "postings": {"primary_key": None, "columns": {"code": {"type": "string", "references": "accounts.code"}}},
        "accounts": {"primary_key": "code", "columns": {"code": "string"}},
    }
    cfg = _config(tmp_path, schema, columns={}, files={})

    with pytest.raises(ConfigError, match="declare parent tables first"):
        _run(cfg, tmp_path)


def test_parquet_files_get_row_ids(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    frame = pd.DataFrame({"TRANS DATE": ["2024-01-01", "2024-01-02"], "AMOUNT": ["1", "2"],
                          "MERCHANT NAME": ["a", "b"], "CURRENCY": ["GBP", None]})
    frame.to_parquet(folder / "part-2.parquet")
    frame.iloc[:1].to_parquet(folder / "part-1.parquet")
    cfg = _config(folder, files={"transactions": "part-*.parquet"}, file_column="source_file")
    cfg.source.kind = "parquet"

    reports = _run(cfg, tmp_path)

    table = _table(tmp_path)
    assert reports["transactions"]["written"] == 3
    assert table["row_id"].tolist() == ["part-1.parquet:1", "part-2.parquet:1", "part-2.parquet:2"]
    assert table["source_file"].tolist() == ["part-1.parquet", "part-2.parquet", "part-2.parquet"]
