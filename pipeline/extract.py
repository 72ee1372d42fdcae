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
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from omegaconf import DictConfig
from sqlalchemy import Engine, MetaData, String, Table, create_engine, inspect, select, type_coerce
from sqlalchemy.engine import URL, make_url
from tqdm.auto import tqdm

from pipeline import paths
from pipeline.config import ConfigError, run_stage, stage_config
from pipeline.erp_schema import TABLES
from pipeline.erp_simulator import generate_erp

log = logging.getLogger(__name__)


class ExtractError(ConfigError):
    """The source cannot be extracted as configured (missing table, empty table, too many bad rows)."""


@dataclass
class TableReport:
    read: int = 0
    written: int = 0
    quarantined: int = 0
    reasons: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict:
        return {"read": self.read, "written": self.written, "quarantined": self.quarantined,
                "quarantine_reasons": dict(sorted(self.reasons.items()))}


def source_url(cfg: DictConfig) -> URL:
    """Build the database URL, taking the password from the environment, never from params."""
    url = make_url(str(cfg.source.url))
    if url.password is not None:
        raise ConfigError(
            f"source.url={url.render_as_string(hide_password=True)} contains a password. "
            f"Remove it from the URL and export it as {cfg.source.password_env} instead, "
            "so it never reaches params.yaml, dvc.lock or logs."
        )
    password = os.environ.get(str(cfg.source.password_env)) if cfg.source.password_env else None
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


def _coerce(table: Table, frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """Convert columns to the schema's types; return the frame and a reason per row (or None)."""
    reasons = pd.Series([None] * len(frame), index=frame.index, dtype=object)

    def mark(bad: pd.Series, reason: str) -> None:
        reasons[bad & reasons.isna()] = reason

    for column in table.columns:
        values = frame[column.name]
        python_type = column.type.python_type
        if python_type in (int, float) or column.type.__class__.__name__ == "Numeric":
            converted = pd.to_numeric(values, errors="coerce")
            mark(values.notna() & converted.isna(), f"invalid_{column.name}")
            frame[column.name] = converted.astype("float64") if python_type is not int else converted.astype("Int64")
        elif column.type.__class__.__name__ == "Date":
            converted = pd.to_datetime(values, errors="coerce")
            mark(values.notna() & converted.isna(), f"invalid_{column.name}")
            frame[column.name] = converted.dt.date
        else:
            frame[column.name] = values.astype("string")
        if not column.nullable:
            mark(frame[column.name].isna(), f"missing_{column.name}")
    return frame, reasons


def _arrow_schema(table: Table) -> pa.Schema:
    fields = []
    for column in table.columns:
        name = column.type.__class__.__name__
        if name == "Integer":
            arrow_type = pa.int64()
        elif name == "Numeric":
            arrow_type = pa.float64()
        elif name == "Date":
            arrow_type = pa.date32()
        else:
            arrow_type = pa.string()
        fields.append(pa.field(column.name, arrow_type))
    return pa.schema(fields)


def extract_table(engine: Engine, table: Table, out_dir: Path, keys: dict[str, set], chunk_size: int) -> TableReport:
    """Stream one table to Parquet, quarantining invalid, duplicate and orphan rows."""
    database_tables = set(inspect(engine).get_table_names())
    if table.name not in database_tables:
        raise ExtractError(
            f"Table {table.name!r} not found in the source database (it has: "
            f"{', '.join(sorted(database_tables)) or 'no tables'}). Check source.url."
        )
    # Reflected from the database, so names come from its metadata, never pasted into SQL.
    source_table = Table(table.name, MetaData(), autoload_with=engine)
    missing = [column.name for column in table.columns if column.name not in source_table.columns]
    if missing:
        raise ExtractError(f"Table {table.name!r} lacks the required column(s) {missing}.")

    primary_key = table.primary_key.columns.keys()[0]
    parents = {fk.parent.name: fk.column.table.name for fk in table.foreign_keys}
    seen: set = set()
    report = TableReport()
    schema = _arrow_schema(table)
    quarantine_schema = schema.append(pa.field("quarantine_reason", pa.string()))

    # Values arrive as the driver returns them, without SQLAlchemy's type processing,
    # so a malformed value ('ten euros' in a numeric column) is quarantined, not fatal.
    query = select(*[type_coerce(source_table.c[column.name], String).label(column.name) for column in table.columns])
    with engine.connect() as connection, \
            pq.ParquetWriter(out_dir / f"{table.name}.parquet", schema) as writer, \
            pq.ParquetWriter(out_dir / "quarantine" / f"{table.name}.parquet", quarantine_schema) as quarantine:
        result = connection.execution_options(stream_results=True, max_row_buffer=chunk_size).execute(query)
        progress = tqdm(desc=f"extract {table.name}", unit=" rows", mininterval=5)
        for rows in result.partitions(chunk_size):
            frame = pd.DataFrame(rows, columns=[column.name for column in table.columns])
            frame, reasons = _coerce(table, frame)

            duplicate = frame[primary_key].isin(seen) | frame[primary_key].duplicated()
            reasons[duplicate & reasons.isna()] = "duplicate_key"
            for column, parent in parents.items():
                orphan = ~frame[column].isin(keys[parent])
                reasons[orphan & reasons.isna()] = f"orphan_{column}"

            good = frame[reasons.isna()]
            bad = frame[reasons.notna()].assign(quarantine_reason=reasons[reasons.notna()])
            seen.update(good[primary_key])
            writer.write_table(pa.Table.from_pandas(good, schema=schema, preserve_index=False))
            if len(bad):
                quarantine.write_table(pa.Table.from_pandas(bad, schema=quarantine_schema, preserve_index=False))

            report.read += len(frame)
            report.written += len(good)
            report.quarantined += len(bad)
            report.reasons.update(bad["quarantine_reason"])
            progress.update(len(frame))
        progress.close()

    keys[table.name] = seen
    if report.read == 0:
        raise ExtractError(f"Table {table.name!r} is empty: the source has no rows to learn from.")
    return report


def extract(cfg: DictConfig, out_dir: Path, report_file: Path) -> dict[str, dict]:
    url = source_url(cfg)
    safe_url = url.render_as_string(hide_password=True)
    if cfg.source.kind == "simulated":
        log.info("Simulating an ERP with %s invoices into %s", cfg.source.n_invoices, safe_url)
        simulate_source(cfg, url)

    log.info("Extracting from %s", safe_url)
    engine = create_engine(url)
    staging = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "quarantine").mkdir(parents=True)

    keys: dict[str, set] = {}
    reports = {}
    try:
        for table in TABLES:
            report = extract_table(engine, table, staging, keys, int(cfg.source.chunk_size))
            share = report.quarantined / report.read
            log.info("%s: read %d, written %d, quarantined %d %s", table.name, report.read,
                     report.written, report.quarantined, dict(report.reasons))
            if share > cfg.source.max_quarantine_share:
                raise ExtractError(
                    f"Table {table.name!r}: {share:.1%} of rows quarantined {dict(report.reasons)}, above "
                    f"source.max_quarantine_share={cfg.source.max_quarantine_share}. Inspect "
                    f"{staging / 'quarantine' / table.name}.parquet, fix the source or raise the limit."
                )
            reports[table.name] = report.as_dict()
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        engine.dispose()

    shutil.rmtree(out_dir, ignore_errors=True)
    staging.rename(out_dir)
    report_file.parent.mkdir(parents=True, exist_ok=True)
    report_file.write_text(json.dumps(reports, indent=2) + "\n")
    return reports


def main(argv: list[str] | None = None) -> None:
    cfg = stage_config(argv)
    extract(cfg, paths.EXTRACTED, paths.REPORTS / "extract.json")


if __name__ == "__main__":
    run_stage(main)
