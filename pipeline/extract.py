"""Stage extract: read ERP tables through SQLAlchemy, validate them and write Parquet.

Rows that fail validation go to a quarantine Parquet file with the reason, so
for every table rows read = rows written + rows quarantined. Outputs are built
in a temporary folder and renamed at the end, so a killed run leaves the
previous output or none.

Usage: python -m pipeline.extract [override ...]
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections import Counter
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from omegaconf import DictConfig, OmegaConf
from sqlalchemy import Table, create_engine
from sqlalchemy.engine import URL, make_url
from tqdm.auto import tqdm

from pipeline import paths
from pipeline.config import ConfigError, run_stage, stage_config
from pipeline.erp_simulator import generate_erp
from pipeline.pseudonymize import Pseudonymizer, make_pseudonymizer
from pipeline.source_schema import load_source_schema
from pipeline.sources import ExtractError, FileSource, SqlSource
from pipeline.validation import (KeySet, TableReport, arrow_schema, as_text, check_keys, coerce_frame,
                                 normalize_text, quarantine_schema)

log = logging.getLogger(__name__)


SOURCE_KINDS = ("simulated", "database", "csv", "parquet")

# Placeholder for the password in source.url, as in postgresql+psycopg://erp:{password}@host/db.
PASSWORD_PLACEHOLDER = "{password}"


def source_url(cfg: DictConfig) -> URL:
    """Build the database URL, taking the password from the environment, never from params."""
    url = make_url(str(cfg.source.url))
    placeholder = url.password == PASSWORD_PLACEHOLDER
    if url.password is not None and not placeholder:
        raise ConfigError(
            f"source.url={url.render_as_string(hide_password=True)} contains a password. "
            f"Remove it from the URL and export it as {cfg.source.password_env} instead, "
            "so it never reaches params.yaml, dvc.lock or logs."
        )
    password = os.environ.get(str(cfg.source.password_env)) if cfg.source.password_env else None
    if placeholder and not password:
        raise ConfigError(
            f"source.url={url.render_as_string(hide_password=True)} has the password placeholder "
            f"{PASSWORD_PLACEHOLDER}, but the environment variable {cfg.source.password_env} is unset. Export it."
        )
    if password:
        url = url.set(password=password)
    return url


def simulate_source(cfg: DictConfig, url: URL) -> None:
    """Write the simulated ERP database to the SQLite file named by source.url."""
    if url.get_backend_name() != "sqlite" or not url.database:
        raise ConfigError(
            f"source.kind=simulated writes a SQLite file, but source.url is "
            f"{url.render_as_string(hide_password=True)}; use sqlite:///PATH."
        )
    database = Path(url.database)
    database.parent.mkdir(parents=True, exist_ok=True)
    partial = database.with_suffix(".partial")
    partial.unlink(missing_ok=True)

    engine = create_engine(url.set(database=str(partial)))
    generate_erp(engine, int(cfg.source.n_invoices), int(cfg.seed), list(cfg.source.fiscal_years))
    engine.dispose()
    partial.replace(database)


def _open_source(cfg: DictConfig, url: URL | None):
    if cfg.source.kind in ("csv", "parquet"):
        return FileSource(cfg), None
    engine = create_engine(url)
    return SqlSource(cfg, engine), engine


def _normalize(raw: pd.DataFrame, rules: dict[str, list[str]]) -> tuple[pd.DataFrame, dict[str, pd.Series]]:
    """Apply source.normalize rules to a chunk's text; return it and, per column, which values changed."""
    if not rules:
        return raw, {}
    normalized = raw.copy()
    changed = {}
    for column, column_rules in rules.items():
        normalized[column] = normalize_text(raw[column], column_rules)
        changed[column] = raw[column].notna() & (normalized[column] != raw[column])
    return normalized, changed


def extract_table(source, table: Table, out_dir: Path, keys: dict[str, KeySet], chunk_size: int,
                  pseudonymizer: Pseudonymizer, normalize: dict[str, list[str]] | None = None) -> TableReport:
    """Stream one table to Parquet, quarantining invalid, duplicate and orphan rows.

    `normalize` maps text columns to source.normalize rules. They apply before
    validation, and quarantined rows keep the values as read.
    """
    primary_key = table.primary_key.columns.keys()[0]
    seen = KeySet()
    report = TableReport(normalized=Counter() if normalize else None)
    schema = arrow_schema(table)
    bad_schema = quarantine_schema(table)

    with pq.ParquetWriter(out_dir / f"{table.name}.parquet", schema) as writer, \
            pq.ParquetWriter(out_dir / "quarantine" / f"{table.name}.parquet", bad_schema) as quarantine:
        progress = tqdm(desc=f"extract {table.name}", unit=" rows", mininterval=5)
        for chunk in source.read_chunks(table, chunk_size):
            raw = pd.DataFrame({name: as_text(chunk[name]) for name in chunk.columns}, index=chunk.index)
            normalized, changed = _normalize(raw, normalize or {})
            frame, reasons = coerce_frame(table, normalized, source.value_format)
            check_keys(table, frame, reasons, seen, keys)

            seen.add(frame.loc[reasons.isna(), primary_key])
            good = pseudonymizer.apply(table.name, frame[reasons.isna()].copy())
            bad = raw[reasons.notna()].assign(quarantine_reason=reasons[reasons.notna()])
            bad = pseudonymizer.apply(table.name, bad)
            writer.write_table(pa.Table.from_pandas(good, schema=schema, preserve_index=False))
            if len(bad):
                quarantine.write_table(pa.Table.from_pandas(bad, schema=bad_schema, preserve_index=False))

            report.read += len(raw)
            report.written += len(good)
            report.quarantined += len(bad)
            report.reasons.update(bad["quarantine_reason"])
            for column, mask in changed.items():
                report.normalized[column] += int((mask & reasons.isna()).sum())
            progress.update(len(raw))
        progress.close()

    keys[table.name] = seen
    return report


def _check_report(cfg: DictConfig, table: Table, report: TableReport, staging: Path) -> None:
    """Stop on an empty table or on a quarantined share above source.max_quarantine_share."""
    if report.read == 0:
        raise ExtractError(
            f"Table {table.name!r} is empty: the source has no rows to learn from. "
            "Check that source.url (or source.path) points at the company's data."
        )
    share = report.quarantined / report.read
    if share > cfg.source.max_quarantine_share:
        hint = ""
        if any(reason.startswith("invalid_encoding") for reason in report.reasons):
            hint = f" Undecodable text suggests a wrong source.encoding (now {cfg.source.get('encoding')!r})."
        raise ExtractError(
            f"Table {table.name!r}: {share:.1%} of rows quarantined {dict(report.reasons)}, above "
            f"source.max_quarantine_share={cfg.source.max_quarantine_share}. Inspect "
            f"{staging / 'quarantine' / table.name}.parquet, fix the source or raise the limit.{hint}"
        )


def extract(cfg: DictConfig, out_dir: Path, report_file: Path) -> dict[str, dict]:
    """Extract every schema table from the configured source into Parquet files in out_dir."""
    url = None
    if cfg.source.kind not in SOURCE_KINDS:
        raise ConfigError(f"source.kind={cfg.source.kind!r} is unknown. Choose one of {', '.join(SOURCE_KINDS)}.")
    # Checked before the simulator runs, so a bad schema or option stops the stage before any work.
    schema = load_source_schema(cfg)
    if cfg.source.kind in ("simulated", "database"):
        url = source_url(cfg)
        safe_url = url.render_as_string(hide_password=True)
    if cfg.source.kind == "simulated":
        log.info("Simulating an ERP with %s invoices into %s", cfg.source.n_invoices, safe_url)
        simulate_source(cfg, url)
    log.info("Extracting from %s", safe_url if url is not None else cfg.source.path)

    if schema.declared:
        log.info("Tables declared in source.schema: %s", ", ".join(table.name for table in schema.tables))
    # Tables whose keys a foreign key of another table refers to.
    parent_tables = {foreign_key.column.table.name for table in schema.tables
                     for foreign_key in table.foreign_keys}
    normalize = OmegaConf.to_container(cfg.source.normalize, resolve=True) if cfg.source.get("normalize") else {}
    pseudonymizer = make_pseudonymizer(cfg, {table.name: table.columns.keys() for table in schema.tables})
    staging = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "quarantine").mkdir(parents=True)

    keys: dict[str, KeySet] = {}
    reports = {}
    engine = None
    try:
        source, engine = _open_source(cfg, url)
        for table in schema.tables:
            if not source.has(table):
                if table.name in schema.required:
                    raise ExtractError(source.describe_missing(table))
                log.warning("Skipping table %s: the source does not have it", table.name)
                continue
            report = extract_table(source, table, staging, keys, int(cfg.source.chunk_size), pseudonymizer,
                                   normalize.get(table.name))
            log.info("%s: read %d, written %d, quarantined %d %s", table.name, report.read,
                     report.written, report.quarantined, dict(report.reasons))
            if report.normalized:
                log.info("%s: values changed by source.normalize %s", table.name, dict(report.normalized))
            _check_report(cfg, table, report, staging)
            reports[table.name] = report.as_dict()
            # Keys are kept only for tables that others reference, to bound memory.
            if table.name not in parent_tables:
                keys.pop(table.name, None)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        if engine is not None:
            engine.dispose()

    shutil.rmtree(out_dir, ignore_errors=True)
    staging.rename(out_dir)
    report_file.parent.mkdir(parents=True, exist_ok=True)
    partial_report = report_file.with_name(report_file.name + ".partial")
    partial_report.write_text(json.dumps(reports, indent=2) + "\n")
    partial_report.replace(report_file)
    return reports


def log_to_mlflow(cfg: DictConfig, reports: dict[str, dict], report_file: Path) -> None:
    """Record row counts per table, and the source settings without credentials, in an MLflow run."""
    # Imported here because mlflow and lightning (through tracking) take seconds
    # to load, and extract() itself needs neither.
    import mlflow

    from pipeline.tracking import section, start_run

    params = section(cfg, "seed", "source")
    if "url" in params["source"]:
        params["source"]["url"] = make_url(str(cfg.source.url)).render_as_string(hide_password=True)
    metrics = {}
    for table, report in reports.items():
        for key in ("read", "written", "quarantined"):
            metrics[f"{table}/{key}"] = report[key]
        for reason, count in report["quarantine_reasons"].items():
            metrics[f"{table}/quarantined/{reason}"] = count
        for column, count in report.get("normalized", {}).items():
            metrics[f"{table}/normalized/{column}"] = count
    with start_run(cfg, "extract", "extract", params):
        mlflow.log_metrics(metrics)
        mlflow.log_artifact(str(report_file))


def record_source(cfg: DictConfig, erp_dir: Path) -> None:
    """Describe a database or file source in erp_dir, the stage output that contains the simulated database.

    DVC requires every declared output to exist, and only the simulated source
    writes a database there. The description names the source without credentials.
    """
    erp_dir.mkdir(parents=True, exist_ok=True)
    if cfg.source.kind == "simulated":
        return
    if cfg.source.kind == "database":
        where = make_url(str(cfg.source.url)).render_as_string(hide_password=True)
    else:
        where = str(cfg.source.path)
    (erp_dir / "source.json").write_text(json.dumps({"kind": str(cfg.source.kind), "source": where}, indent=2) + "\n")


def main(argv: list[str] | None = None) -> None:
    cfg = stage_config(argv)
    report_file = paths.REPORTS / "extract.json"
    reports = extract(cfg, paths.EXTRACTED, report_file)
    record_source(cfg, paths.ERP_DIR)
    log_to_mlflow(cfg, reports, report_file)


if __name__ == "__main__":
    run_stage(main)
