"""Readers that stream an ERP table as text chunks: a SQL database or exported files.

Both readers map a schema table to the source's own table (or file) and
column names through the source config, check those names against what the
source really has, and yield pandas frames whose columns carry the schema's
names and whose values are still unconverted, so validation receives bad values as they are.
"""

from __future__ import annotations

import csv
import glob
import itertools
import logging
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path, PurePath

import pandas as pd
import pyarrow.parquet as pq
from omegaconf import DictConfig, OmegaConf
from sqlalchemy import Engine, MetaData, String, Table, inspect, select, type_coerce

from pipeline.config import ConfigError
from pipeline.source_schema import DELIMITER_AUTO, GENERATED, GENERATED_FILE_NAME, GENERATED_ROW_ID
from pipeline.validation import ValueFormat

log = logging.getLogger(__name__)

# Candidate formats tried, in this order, when a CSV source sets no date_format.
DATE_FORMATS = ("%Y-%m-%d", "%d.%m.%Y", "%d/%m/%Y", "%m/%d/%Y", "%Y%m%d", "%d-%m-%Y")

# Delimiters tried when source.delimiter is "auto", and the records compared after the header.
DELIMITER_CANDIDATES = (",", ";", "\t", "|")
DELIMITER_SAMPLE_RECORDS = 200


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

    def resolve_columns(self, table: Table, available: list[str], where: str,
                        normalized: bool = False) -> dict[str, str | None]:
        """Match the mapped columns against the source's columns. None marks an absent optional column.

        With `normalized`, names match after stripping, collapsing whitespace and
        casefolding, so " TRANS VAT DESC" in a file header matches "trans vat desc".
        Columns that the reader generates (row id, file name) are left out.
        """
        lookup = {name: name for name in available}
        if normalized:
            lookup = _normalized_names(available, where)
        resolved: dict[str, str | None] = {}
        missing = []
        for column in table.columns:
            if column.info.get(GENERATED):
                continue
            name = self.source_columns(table)[column.name]
            key = normalize_name(name) if normalized else name
            if key in lookup:
                resolved[column.name] = lookup[key]
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
    """Stream tables from CSV or Parquet exports in one folder, one or more files per table."""

    def __init__(self, cfg: DictConfig):
        super().__init__(cfg)
        self.kind = str(cfg.source.kind)
        self.folder = Path(str(cfg.source.path))
        self.files = _mapping(cfg, "files")
        self.delimiter = str(cfg.source.get("delimiter") or ",")
        self.encoding = str(cfg.source.get("encoding", "utf-8"))
        date_format = cfg.source.get("date_format")
        self.configured_date_format = str(date_format) if date_format else ""
        self.column_date_formats = _mapping(cfg, "date_formats")
        self.base_format = ValueFormat(
            decimal=str(cfg.source.get("decimal", ".")),
            thousands=cfg.source.get("thousands"),
            date_format=self.configured_date_format,
            currency_symbols=tuple(_mapping_list(cfg, "currency_symbols")),
            parenthesized_negatives=bool(cfg.source.get("parenthesized_negatives", False)),
            strict_thousands=bool(cfg.source.get("strict_thousands", False)),
        )
        self.value_format = self.base_format
        if self.kind == "parquet":
            # Parquet stores typed numbers and dates, so text formats do not apply.
            self.base_format = self.value_format = ValueFormat()
        if not self.folder.is_dir():
            raise ExtractError(f"source.path={str(self.folder)!r} is not a folder. Point it at the exported files.")

    def _patterns(self, table: Table) -> list[str]:
        default = f"{table.name}.{'csv' if self.kind == 'csv' else 'parquet'}"
        configured = self.files.get(table.name, default)
        return [str(name) for name in configured] if isinstance(configured, list) else [str(configured)]

    def _outside(self, table: Table, name: str) -> ExtractError:
        return ExtractError(
            f"source.files.{table.name}={name!r} points outside source.path={str(self.folder)!r}. "
            "Give a file name or glob pattern inside that folder."
        )

    def paths(self, table: Table) -> list[Path]:
        """Return the files of `table` inside source.path in sorted order, rejecting names that leave the folder.

        source.files.<table> is a file name, a glob pattern such as "export-*.csv",
        or a list of them.
        """
        folder = self.folder.resolve()
        found: set[Path] = set()
        for name in self._patterns(table):
            if glob.has_magic(name):
                if PurePath(name).is_absolute() or ".." in PurePath(name).parts:
                    raise self._outside(table, name)
                matches = [path.resolve() for path in self.folder.glob(name) if path.is_file()]
            else:
                matches = [(self.folder / name).resolve()]
            for path in matches:
                if not path.is_relative_to(folder):
                    raise self._outside(table, name)
            found.update(path for path in matches if path.is_file())
        return sorted(found)

    def has(self, table: Table) -> bool:
        return bool(self.paths(table))

    def describe_missing(self, table: Table) -> str:
        present = sorted(path.name for path in self.folder.iterdir())
        wanted = ", ".join(repr(str((self.folder / name).resolve())) for name in self._patterns(table))
        return (
            f"File {wanted} for table {table.name!r} not found (the folder has: "
            f"{', '.join(present) or 'no files'}). Set source.files.{table.name}."
        )

    def read_chunks(self, table: Table, chunk_size: int) -> Iterator[pd.DataFrame]:
        paths = self.paths(table)
        if not paths:
            raise ExtractError(self.describe_missing(table))
        for path in paths:
            file_name = path.relative_to(self.folder.resolve()).as_posix()
            if len(paths) > 1:
                log.info("Reading %s for table %s", file_name, table.name)
            if self.kind == "parquet":
                yield from self._read_parquet(table, path, file_name, chunk_size)
            else:
                yield from self._read_csv(table, path, file_name, chunk_size)

    def _read_parquet(self, table: Table, path: Path, file_name: str, chunk_size: int) -> Iterator[pd.DataFrame]:
        parquet = pq.ParquetFile(path)
        columns = self.resolve_columns(table, parquet.schema_arrow.names, f"File {file_name!r}", normalized=True)
        wanted = [source for source in columns.values() if source is not None]
        first_row = 1
        for batch in parquet.iter_batches(batch_size=chunk_size, columns=wanted):
            frame = pd.DataFrame({name: batch.column(name).to_pylist() for name in wanted}, dtype=object)
            frame = frame.rename(columns={source: target for target, source in columns.items() if source})
            # Row numbers count from 1, so a row id reads <file>:<row>.
            rows = range(first_row, first_row + len(frame))
            first_row += len(frame)
            yield _with_all_columns(table, _fill_generated(table, frame, file_name, rows))

    def _read_csv(self, table: Table, path: Path, file_name: str, chunk_size: int) -> Iterator[pd.DataFrame]:
        delimiter = self.delimiter
        if delimiter == DELIMITER_AUTO:
            delimiter = detect_delimiter(path, self.encoding)
            log.info("Detected delimiter %r in %s", delimiter, file_name)
        # Undecodable bytes become U+FFFD, which validation quarantines per row,
        # so one broken line does not stop the export and is still counted.
        options = dict(sep=delimiter, encoding=self.encoding, encoding_errors="replace", dtype=str,
                       keep_default_na=False, na_values=[""])
        header = list(pd.read_csv(path, nrows=0, **options).columns)
        # Each file may come from a different export, so dates are detected per file.
        self.value_format = replace(self.base_format, column_date_formats=self._configured_date_formats(table))
        columns = self.resolve_columns(table, header, f"File {file_name!r}", normalized=True)
        wanted = [source for source in columns.values() if source is not None]
        renames = {source: target for target, source in columns.items() if source}

        for chunk in pd.read_csv(path, usecols=wanted, chunksize=chunk_size, **options):
            frame = chunk.astype(object).where(chunk.notna(), None).rename(columns=renames)
            # The index counts data rows from 0 across chunks; line 1 is the header.
            # NOTE: blank lines and line breaks inside quoted fields are not counted,
            # so the number can run behind the editor's line number in such files.
            lines = chunk.index + 2
            frame = _with_all_columns(table, _fill_generated(table, frame, file_name, lines))
            self.detect_date_format(table, frame)
            yield frame

    def _configured_date_formats(self, table: Table) -> tuple[tuple[str, str], ...]:
        configured = self.column_date_formats.get(table.name, {}) or {}
        return tuple((str(column), str(date_format)) for column, date_format in configured.items())

    def detect_date_format(self, table: Table, sample: pd.DataFrame) -> None:
        """Pick each date column's format from a first chunk when the config sets none."""
        if self.value_format.date_format:
            return
        configured = dict(self.value_format.column_date_formats)
        detected = []
        for column in table.columns:
            if column.type.__class__.__name__ != "Date" or column.name in configured:
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
                    f"{examples}: {found}. Set source.date_format, for example '%d.%m.%Y', or "
                    f"source.date_formats.{table.name}.{column.name}."
                )
            log.info("Detected date format %s in %s.%s", fitting[0], table.name, column.name)
            detected.append((column.name, fitting[0]))
        # Detected columns join the per-column formats, so later chunks detect only the columns still empty.
        self.value_format = replace(self.value_format,
                                    column_date_formats=tuple(configured.items()) + tuple(detected))


def detect_delimiter(path: Path, encoding: str, sample_records: int = DELIMITER_SAMPLE_RECORDS) -> str:
    """Detect a CSV file's delimiter among DELIMITER_CANDIDATES from its header and first records.

    A candidate fits when it splits the header into at least two fields and every
    sampled record into as many fields as the header. Exactly one must fit.
    """
    with path.open(encoding=encoding, errors="replace", newline="") as file:
        sample = list(itertools.islice(file, sample_records + 1))
    if not sample:
        raise ExtractError(f"File {str(path)!r} is empty, so its delimiter cannot be detected. "
                           "Remove the file or set source.delimiter.")
    fitting = []
    for candidate in DELIMITER_CANDIDATES:
        records = [record for record in csv.reader(sample, delimiter=candidate) if record]
        # The last sampled record may be cut inside a quoted field, so it is not compared.
        header, body = records[0], records[1:-1] if len(records) > 2 else records[1:]
        if len(header) > 1 and all(len(record) == len(header) for record in body):
            fitting.append(candidate)
    if len(fitting) != 1:
        found = f"several delimiters fit ({', '.join(map(repr, fitting))})" if fitting else "no delimiter fits"
        raise ExtractError(
            f"Cannot detect the delimiter of {str(path)!r} from its header {sample[0].strip()[:120]!r} and the "
            f"next {len(sample) - 1} lines: {found} (tried {', '.join(map(repr, DELIMITER_CANDIDATES))}). "
            "Set source.delimiter to the file's delimiter."
        )
    return fitting[0]


def _fill_generated(table: Table, frame: pd.DataFrame, file_name: str, rows) -> pd.DataFrame:
    """Fill the columns that the reader generates: the row id and the source file name."""
    for column in table.columns:
        generated = column.info.get(GENERATED)
        if generated == GENERATED_ROW_ID:
            frame[column.name] = [f"{file_name}:{row}" for row in rows]
        elif generated == GENERATED_FILE_NAME:
            frame[column.name] = file_name
    return frame


def normalize_name(name: str) -> str:
    """Normalize a column name for matching: strip, collapse whitespace, casefold."""
    return " ".join(str(name).split()).casefold()


def _normalized_names(available: list[str], where: str) -> dict[str, str]:
    """Map each normalized header name to the header name, rejecting names that normalize alike."""
    lookup: dict[str, str] = {}
    for name in available:
        key = normalize_name(name)
        if key in lookup:
            raise ExtractError(
                f"{where} has the columns {lookup[key]!r} and {name!r}, which differ only in case or "
                "spacing, so a column mapping cannot tell them apart. Rename one in the export."
            )
        lookup[key] = name
    return lookup


def _mapping_list(cfg: DictConfig, key: str) -> list:
    value = cfg.source.get(key)
    return list(OmegaConf.to_container(value, resolve=True)) if value else []


def _with_all_columns(table: Table, frame: pd.DataFrame) -> pd.DataFrame:
    """Add absent optional columns as nulls and put columns in schema order."""
    for column in table.columns:
        if column.name not in frame.columns:
            frame[column.name] = None
    return frame[[column.name for column in table.columns]]
