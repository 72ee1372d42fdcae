"""Tables declared in a source config, and checks of the source settings that extract adds to conf/source/.

A source config may carry a `schema:` section that declares its tables in
place of the fixed ERP schema of `pipeline/erp_schema.py`:

    schema:
      transactions:
        primary_key: null          # or the name of a column
        columns:
          trans_date: {type: date, nullable: false}
          amount: {type: number, nullable: false}
          merchant_name: {type: string, length: 120}

The declared tables become SQLAlchemy `Table` objects, so validation,
quarantine, type conversion, reports, the Parquet schema and pseudonymization
treat them like the built-in ones. A table without a natural key gets a
generated `row_id` column (`<file>:<line>`), so duplicates and row order stay
deterministic across runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from omegaconf import DictConfig, OmegaConf
from sqlalchemy import Column, Date, ForeignKey, Integer, MetaData, Numeric, String, Table, Text

from pipeline.config import ConfigError
from pipeline.erp_schema import REQUIRED_TABLES, TABLES
from pipeline.validation import type_kind

# Generated column that identifies a row of a table without a natural key.
ROW_ID = "row_id"

# Column.info keys that mark columns filled by the reader instead of read from the source.
GENERATED = "generated"
GENERATED_ROW_ID = "row_id"
GENERATED_FILE_NAME = "file_name"

COLUMN_TYPES = ("string", "text", "integer", "number", "date")
COLUMN_KEYS = ("type", "nullable", "length", "references")
TABLE_KEYS = ("primary_key", "columns")

# Text rules for source.normalize, applied in the order listed.
NORMALIZE_RULES = ("strip", "collapse_whitespace", "casefold", "lower", "upper")

DELIMITER_AUTO = "auto"

# Table and column names become file names and Parquet fields, so they stay plain identifiers.
NAME_PATTERN = re.compile(r"^[a-z_][a-z0-9_]*$")


@dataclass(frozen=True)
class SourceSchema:
    """Tables that extract reads from one source, parents before children."""

    tables: tuple[Table, ...]
    # Tables whose absence stops extract; the others are skipped with a warning.
    required: tuple[str, ...]
    declared: bool


def _container(cfg: DictConfig, key: str):
    value = cfg.source.get(key)
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def _check_name(name, where: str) -> str:
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise ConfigError(
            f"{where}={name!r} is not a valid name. Use snake_case letters, digits and underscores, "
            "starting with a letter or underscore (it becomes a file name and a Parquet column)."
        )
    return name


def _column_type(spec: dict, where: str):
    kind = spec.get("type", "string")
    if kind not in COLUMN_TYPES:
        raise ConfigError(f"{where}.type={kind!r} is unknown. Choose one of {', '.join(COLUMN_TYPES)}.")
    length = spec.get("length")
    if length is not None and (kind != "string" or not isinstance(length, int) or length < 1):
        raise ConfigError(f"{where}.length={length!r} is invalid: set a positive integer, on string columns only.")
    if kind == "string":
        return String(length) if length else String()
    return {"text": Text(), "integer": Integer(), "number": Numeric(), "date": Date()}[kind]


def _declared_column(table_name: str, name: str, spec, primary_key: str | None,
                     declared: dict[str, set[str]]) -> Column:
    where = f"source.schema.{table_name}.columns.{name}"
    _check_name(name, f"source.schema.{table_name}.columns key")
    if name == ROW_ID:
        raise ConfigError(f"{where}: {ROW_ID!r} is reserved for the generated row id. Rename the column.")
    if spec is None:
        spec = {}
    if isinstance(spec, str):
        spec = {"type": spec}
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}={spec!r} is invalid: give a type name or a mapping with keys {COLUMN_KEYS}.")
    unknown = sorted(set(spec) - set(COLUMN_KEYS))
    if unknown:
        raise ConfigError(f"{where} has unknown key(s) {unknown}. Allowed keys: {', '.join(COLUMN_KEYS)}.")

    arguments = []
    reference = spec.get("references")
    if reference is not None:
        parent, _, parent_column = str(reference).partition(".")
        if parent_column not in declared.get(parent, set()):
            raise ConfigError(
                f"{where}.references={reference!r} names no column of a table declared before "
                f"{table_name!r}. Write <table>.<column> and declare parent tables first."
            )
        arguments.append(ForeignKey(f"{parent}.{parent_column}"))
    is_key = name == primary_key
    # A primary key is always required, whatever the nullable setting.
    nullable = bool(spec.get("nullable", True)) and not is_key
    return Column(name, _column_type(spec, where), *arguments, primary_key=is_key, nullable=nullable)


def _declared_table(metadata: MetaData, name: str, spec, kind: str, declared: dict[str, set[str]]) -> Table:
    where = f"source.schema.{name}"
    _check_name(name, "source.schema key")
    if not isinstance(spec, dict) or not isinstance(spec.get("columns"), dict) or not spec["columns"]:
        raise ConfigError(f"{where} needs a non-empty `columns:` mapping of column name to type.")
    unknown = sorted(set(spec) - set(TABLE_KEYS))
    if unknown:
        raise ConfigError(f"{where} has unknown key(s) {unknown}. Allowed keys: {', '.join(TABLE_KEYS)}.")
    primary_key = spec.get("primary_key")
    if primary_key is not None and primary_key not in spec["columns"]:
        raise ConfigError(
            f"{where}.primary_key={primary_key!r} is not one of its columns {list(spec['columns'])}. "
            "Name a declared column, or set null to generate a row id."
        )
    if primary_key is None and kind not in ("csv", "parquet"):
        raise ConfigError(
            f"{where}.primary_key is null, but a generated row id needs file rows (source.kind csv or "
            f"parquet), and source.kind is {kind!r}. Name the table's key column."
        )

    columns = [_declared_column(name, column, column_spec, primary_key, declared)
               for column, column_spec in spec["columns"].items()]
    if primary_key is None:
        # <file>:<line>: stable across runs and unique across the files of one table.
        columns.insert(0, Column(ROW_ID, String(), primary_key=True, nullable=False,
                                 info={GENERATED: GENERATED_ROW_ID}))
    declared[name] = {column.name for column in columns}
    return Table(name, metadata, *columns)


def _with_file_column(tables: tuple[Table, ...], column_name: str) -> tuple[Table, ...]:
    """Copy the tables with an added text column holding each row's source file name."""
    metadata = MetaData()
    copies = []
    for table in tables:
        if column_name in table.columns:
            raise ConfigError(
                f"source.file_column={column_name!r} clashes with column {column_name!r} of table "
                f"{table.name!r}. Pick another name."
            )
        copy = table.to_metadata(metadata)
        copy.append_column(Column(column_name, String(), nullable=False, info={GENERATED: GENERATED_FILE_NAME}))
        copies.append(copy)
    return tuple(copies)


def load_source_schema(cfg: DictConfig) -> SourceSchema:
    """Return the tables to extract: those under source.schema when present, else the ERP schema."""
    kind = str(cfg.source.kind)
    declared_spec = _container(cfg, "schema")
    if declared_spec:
        if kind == "simulated":
            raise ConfigError("source.schema declares tables, but source.kind=simulated writes the fixed ERP "
                              "schema. Remove source.schema or pick another source.")
        if not isinstance(declared_spec, dict):
            raise ConfigError(f"source.schema={declared_spec!r} is invalid: map each table name to its settings.")
        metadata = MetaData()
        declared: dict[str, set[str]] = {}
        tables = tuple(_declared_table(metadata, name, spec, kind, declared) for name, spec in declared_spec.items())
        schema = SourceSchema(tables, tuple(table.name for table in tables), declared=True)
    else:
        schema = SourceSchema(TABLES, REQUIRED_TABLES, declared=False)

    file_column = cfg.source.get("file_column")
    if file_column:
        if kind not in ("csv", "parquet"):
            raise ConfigError(f"source.file_column is set, but source.kind={kind!r} reads no files. Remove it.")
        _check_name(file_column, "source.file_column")
        schema = SourceSchema(_with_file_column(schema.tables, file_column), schema.required, schema.declared)

    check_source_options(cfg, schema)
    return schema


def _table_columns(schema: SourceSchema) -> dict[str, Table]:
    return {table.name: table for table in schema.tables}


def _check_column_mapping(cfg: DictConfig, key: str, schema: SourceSchema) -> dict:
    """Check that source.<key> maps declared tables to declared columns, and return it."""
    mapping = _container(cfg, key) or {}
    if not isinstance(mapping, dict):
        raise ConfigError(f"source.{key}={mapping!r} is invalid: map table names to {{column: setting}}.")
    tables = _table_columns(schema)
    for table_name, columns in mapping.items():
        if table_name not in tables:
            raise ConfigError(f"source.{key} names table {table_name!r}, which extract does not read. "
                              f"Choose among {sorted(tables)}.")
        if not isinstance(columns, dict):
            raise ConfigError(f"source.{key}.{table_name}={columns!r} is invalid: map column names to settings.")
        unknown = sorted(set(columns) - set(tables[table_name].columns.keys()))
        if unknown:
            raise ConfigError(f"source.{key}.{table_name} names column(s) {unknown} that table {table_name!r} "
                              f"does not have. Its columns are {tables[table_name].columns.keys()}.")
    return mapping


def check_source_options(cfg: DictConfig, schema: SourceSchema) -> None:
    """Check the CSV options that extract reads beyond the fixed ones: delimiter, dates, normalization, amounts."""
    kind = str(cfg.source.kind)
    delimiter = cfg.source.get("delimiter")
    if kind == "csv" and delimiter is not None and delimiter != DELIMITER_AUTO and len(str(delimiter)) != 1:
        raise ConfigError(f"source.delimiter={delimiter!r} is invalid: give one character, or {DELIMITER_AUTO!r} "
                          "to detect it per file.")

    tables = _table_columns(schema)
    for table_name, columns in _check_column_mapping(cfg, "date_formats", schema).items():
        for column, date_format in columns.items():
            if type_kind(tables[table_name].columns[column]) != "date":
                raise ConfigError(f"source.date_formats.{table_name}.{column} is set, but that column is not a date.")
            if not isinstance(date_format, str) or "%" not in date_format:
                raise ConfigError(f"source.date_formats.{table_name}.{column}={date_format!r} is not a strftime "
                                  "format. Write one such as '%d/%m/%Y'.")

    for table_name, columns in _check_column_mapping(cfg, "normalize", schema).items():
        for column, rules in columns.items():
            if type_kind(tables[table_name].columns[column]) != "text":
                raise ConfigError(f"source.normalize.{table_name}.{column} is set, but that column is not text.")
            unknown = [rule for rule in (rules or []) if rule not in NORMALIZE_RULES]
            if not isinstance(rules, list) or unknown:
                raise ConfigError(f"source.normalize.{table_name}.{column}={rules!r} is invalid: list rules among "
                                  f"{', '.join(NORMALIZE_RULES)}.")

    symbols = _container(cfg, "currency_symbols") or []
    if not isinstance(symbols, list) or not all(isinstance(symbol, str) and symbol.strip() for symbol in symbols):
        raise ConfigError(f"source.currency_symbols={symbols!r} is invalid: list the symbols to remove from "
                          "amounts, such as ['£', '$'].")
    if any(any(character.isdigit() or character in ".,-()" for character in symbol) for symbol in symbols):
        raise ConfigError(f"source.currency_symbols={symbols!r} contains digits, signs or separators; "
                          "list only currency symbols or codes.")
