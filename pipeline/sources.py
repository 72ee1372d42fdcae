"""Readers that stream an ERP table as text chunks: a SQL database or exported files.

Both readers map a schema table to the source's own table (or file) and
column names through the source config, check those names against what the
source really has, and yield pandas frames whose columns carry the schema's
names and whose values are still unconverted, so validation receives bad values as they are.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
from omegaconf import DictConfig, OmegaConf
from sqlalchemy import Engine, MetaData, String, Table, inspect, select, type_coerce

from pipeline.config import ConfigError
from pipeline.validation import ValueFormat

log = logging.getLogger(__name__)

# Candidate formats tried, in this order, when a CSV source sets no date_format.
DATE_FORMATS = ("%Y-%m-%d", "%d.%m.%Y", "%d/%m/%Y", "%m/%d/%Y", "%Y%m%d", "%d-%m-%Y")


class ExtractError(ConfigError):
    """The source cannot be extracted as configured (missing table or column, empty table, too many bad rows)."""


def _mapping(cfg: DictConfig, key: str) -> dict:
    value = cfg.source.get(key)
    return OmegaConf.to_container(value, resolve=True) if value else {}


class TableSource:
    """Name mapping shared by the readers: schema table and columns to source names."""

    def __init__(self, cfg: DictConfig):
        self.table_names = _mapping(cfg, "tables")
        self.column_names = _mapping(cfg, "columns")

    def source_name(self, table: Table) -> str:
        return str(self.table_names.get(table.name, table.name))

    def source_columns(self, table: Table) -> dict[str, str]:
        """Map each schema column of `table` to the source's column name."""
        renamed = self.column_names.get(table.name, {}) or {}
        unknown = sorted(set(renamed) - set(table.columns.keys()))
        if unknown:
            raise ExtractError(
                f"source.columns.{table.name} maps {unknown}, which table {table.name!r} does not have. "
                f"Its columns are {list(table.columns.keys())}."
            )
        return {column.name: str(renamed.get(column.name, column.name)) for column in table.columns}

    def resolve_columns(self, table: Table, available: list[str], where: str) -> dict[str, str | None]:
        """Match the mapped columns against the source's columns. None marks an absent optional column."""
        resolved: dict[str, str | None] = {}
        missing = []
        for column in table.columns:
            name = self.source_columns(table)[column.name]
            if name in available:
                resolved[column.name] = name
            elif column.nullable:
                log.warning("%s has no column %r; %s.%s will be null", where, name, table.name, column.name)
                resolved[column.name] = None
            else:
                missing.append(name)
        if missing:
            raise ExtractError(
                f"{where} lacks the required column(s) {missing} for table {table.name!r} "
                f"(it has: {', '.join(available)}). Map them under source.columns.{table.name}."
            )
        return resolved


class SqlSource(TableSource):
    """Stream tables from a database through SQLAlchemy, with server-side cursors where the driver has them."""

    value_format = ValueFormat()

    def __init__(self, cfg: DictConfig, engine: Engine):
        super().__init__(cfg)
        self.engine = engine
        self.database_tables = set(inspect(engine).get_table_names())

    def has(self, table: Table) -> bool:
        return self.source_name(table) in self.database_tables

    def describe_missing(self, table: Table) -> str:
        return (
            f"Table {self.source_name(table)!r} not found in the source database (it has: "
            f"{', '.join(sorted(self.database_tables)) or 'no tables'}). Check source.url, "
            f"or map the table with source.tables.{table.name}."
        )

    def read_chunks(self, table: Table, chunk_size: int) -> Iterator[pd.DataFrame]:
        name = self.source_name(table)
        if name not in self.database_tables:
            raise ExtractError(self.describe_missing(table))

        # Reflected from the database, so every identifier in the query comes from
        # its own metadata; a name from config only selects among them.
        source_table = Table(name, MetaData(), autoload_with=self.engine)
        columns = self.resolve_columns(table, list(source_table.columns.keys()), f"Table {name!r}")

        # type_coerce skips SQLAlchemy's result processing, so a malformed value
        # ('ten euros' in a numeric column) reaches validation instead of failing.
        selected = [type_coerce(source_table.c[source], String).label(target)
                    for target, source in columns.items() if source is not None]
        primary_key = table.primary_key.columns.keys()[0]
        # Ordered by key, so every database yields the same file for the same rows.
        query = select(*selected).order_by(source_table.c[columns[primary_key]])

        with self.engine.connect() as connection:
            result = connection.execution_options(stream_results=True, max_row_buffer=chunk_size).execute(query)
            for rows in result.partitions(chunk_size):
                # Plain tuples: pandas probes Row objects attribute by attribute, which is slow.
                frame = pd.DataFrame([tuple(row) for row in rows], columns=list(result.keys()), dtype=object)
                yield _with_all_columns(table, frame)


class FileSource(TableSource):
    """Stream tables from CSV or Parquet exports in one folder, one file per table."""

    def __init__(self, cfg: DictConfig):
        super().__init__(cfg)
        self.kind = str(cfg.source.kind)
        self.folder = Path(str(cfg.source.path))
        self.files = _mapping(cfg, "files")
        self.delimiter = str(cfg.source.get("delimiter", ","))
        self.encoding = str(cfg.source.get("encoding", "utf-8"))
        date_format = cfg.source.get("date_format")
        self.configured_date_format = str(date_format) if date_format else ""
        self.value_format = ValueFormat(
            decimal=str(cfg.source.get("decimal", ".")),
            thousands=cfg.source.get("thousands"),
            date_format=self.configured_date_format,
        )
        if self.kind == "parquet":
            # Parquet stores typed numbers and dates, so text formats do not apply.
            self.value_format = ValueFormat()
        if not self.folder.is_dir():
            raise ExtractError(f"source.path={str(self.folder)!r} is not a folder. Point it at the exported files.")

    def path(self, table: Table) -> Path:
        """Return the file of `table` inside source.path, rejecting names that leave the folder."""
        default = f"{table.name}.{'csv' if self.kind == 'csv' else 'parquet'}"
        name = str(self.files.get(table.name, default))
        path = (self.folder / name).resolve()
        if not path.is_relative_to(self.folder.resolve()):
            raise ExtractError(
                f"source.files.{table.name}={name!r} points outside source.path={str(self.folder)!r}. "
                "Give a file name inside that folder."
            )
        return path

    def has(self, table: Table) -> bool:
        return self.path(table).is_file()

    def describe_missing(self, table: Table) -> str:
        present = sorted(path.name for path in self.folder.iterdir())
        return (
            f"File {str(self.path(table))!r} for table {table.name!r} not found (the folder has: "
            f"{', '.join(present) or 'no files'}). Set source.files.{table.name}."
        )

    def read_chunks(self, table: Table, chunk_size: int) -> Iterator[pd.DataFrame]:
        path = self.path(table)
        if not path.is_file():
            raise ExtractError(self.describe_missing(table))
        if self.kind == "parquet":
            yield from self._read_parquet(table, path, chunk_size)
        else:
            yield from self._read_csv(table, path, chunk_size)

    def _read_parquet(self, table: Table, path: Path, chunk_size: int) -> Iterator[pd.DataFrame]:
        parquet = pq.ParquetFile(path)
        columns = self.resolve_columns(table, parquet.schema_arrow.names, f"File {path.name!r}")
        wanted = [source for source in columns.values() if source is not None]
        for batch in parquet.iter_batches(batch_size=chunk_size, columns=wanted):
            frame = pd.DataFrame({name: batch.column(name).to_pylist() for name in wanted}, dtype=object)
            frame = frame.rename(columns={source: target for target, source in columns.items() if source})
            yield _with_all_columns(table, frame)

    def _read_csv(self, table: Table, path: Path, chunk_size: int) -> Iterator[pd.DataFrame]:
        # Undecodable bytes become U+FFFD, which validation quarantines per row,
        # so one broken line does not stop the export and is still counted.
        options = dict(sep=self.delimiter, encoding=self.encoding, encoding_errors="replace", dtype=str,
                       keep_default_na=False, na_values=[""])
        header = list(pd.read_csv(path, nrows=0, **options).columns)
        # Each file may come from a different export, so dates are detected per table.
        self.value_format = ValueFormat(self.value_format.decimal, self.value_format.thousands,
                                        self.configured_date_format)
        columns = self.resolve_columns(table, header, f"File {path.name!r}")
        wanted = [source for source in columns.values() if source is not None]
        renames = {source: target for target, source in columns.items() if source}

        for chunk in pd.read_csv(path, usecols=wanted, chunksize=chunk_size, **options):
            frame = _with_all_columns(table, chunk.astype(object).where(chunk.notna(), None).rename(columns=renames))
            self.detect_date_format(table, frame)
            yield frame

    def detect_date_format(self, table: Table, sample: pd.DataFrame) -> None:
        """Pick each date column's format from a first chunk when the config sets none."""
        if self.value_format.date_format:
            return
        detected = []
        for column in table.columns:
            if column.type.__class__.__name__ != "Date":
                continue
            values = sample[column.name].dropna().astype(str).str.strip()
            values = values[values != ""]
            if values.empty:
                continue
            fitting = [candidate for candidate in DATE_FORMATS
                       if pd.to_datetime(values, format=candidate, errors="coerce").notna().all()]
            if len(fitting) != 1:
                examples = ", ".join(values.drop_duplicates().head(3))
                found = f"several formats fit ({', '.join(fitting)})" if fitting else "no known format fits"
                raise ExtractError(
                    f"Cannot detect the date format of {table.name}.{column.name} from values such as "
                    f"{examples}: {found}. Set source.date_format, for example '%d.%m.%Y'."
                )
            log.info("Detected date format %s in %s.%s", fitting[0], table.name, column.name)
            detected.append((column.name, fitting[0]))
        self.value_format = ValueFormat(self.value_format.decimal, self.value_format.thousands,
                                        self.value_format.date_format, tuple(detected))


def _with_all_columns(table: Table, frame: pd.DataFrame) -> pd.DataFrame:
    """Add absent optional columns as nulls and put columns in schema order."""
    for column in table.columns:
        if column.name not in frame.columns:
            frame[column.name] = None
    return frame[[column.name for column in table.columns]]
