"""Assemble a task's records from the extracted Parquet tables with DuckDB.

Each extracted table is a view of the same name, so a task file's joins and
derived columns are plain SQL over table names. Every join is checked to keep
one row per entity record. A one-to-many join would copy records and their
labels silently, so it raises ConfigError and names the fix, an aggregating
`sql:` join.
"""

from __future__ import annotations

import logging
from pathlib import Path

import duckdb
import pandas as pd

from pipeline.config import ConfigError
from pipeline.task_spec import TaskSpec

log = logging.getLogger(__name__)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def connect(extracted: Path) -> duckdb.DuckDBPyConnection:
    """Open an in-memory DuckDB with one view per extracted table."""
    files = sorted(extracted.glob("*.parquet"))
    if not files:
        raise ConfigError(f"No extracted tables in {extracted}: run the extract stage first (`dvc repro extract`).")
    connection = duckdb.connect(":memory:")
    for file in files:
        path = str(file.resolve()).replace("'", "''")
        connection.execute(f"CREATE VIEW {_quote(file.stem)} AS SELECT * FROM read_parquet('{path}')")
    return connection


def _columns(connection: duckdb.DuckDBPyConnection, query: str) -> list[str]:
    return [column[0] for column in connection.execute(f"SELECT * FROM ({query}) LIMIT 0").description]


def _count(connection: duckdb.DuckDBPyConnection, query: str, where: str, expression: str = "*") -> int:
    """Count rows (or an expression) of `query`; errors that need the rows, such as a failed cast, name `where`."""
    try:
        return int(connection.execute(f"SELECT count({expression}) FROM ({query})").fetchone()[0])
    except duckdb.Error as error:
        raise ConfigError(f"{where} failed on the data: {error}") from error


def _run(connection: duckdb.DuckDBPyConnection, query: str, where: str) -> list[str]:
    try:
        return _columns(connection, query)
    except duckdb.Error as error:
        raise ConfigError(f"{where} is invalid: {error}") from error


def build_query(connection: duckdb.DuckDBPyConnection, spec: TaskSpec) -> str:
    """Compose the entity, joins and derived columns into one query, checking each step."""
    tables = {row[0] for row in connection.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    if spec.entity not in tables:
        raise ConfigError(
            f"task.entity={spec.entity!r} is not an extracted table (there are: {', '.join(sorted(tables))}). "
            "Check the task file against the source."
        )
    query = f"SELECT * FROM {_quote(spec.entity)}"
    entity_rows = _count(connection, query, f"task.entity={spec.entity!r}")
    if spec.id_column not in _columns(connection, query):
        raise ConfigError(f"task.id={spec.id_column!r} is not a column of {spec.entity!r}.")

    for index, join in enumerate(spec.joins):
        where = f"task.joins[{index}] ({join.source if not join.is_query else 'sql'})"
        if not join.is_query and join.source not in tables:
            raise ConfigError(f"{where}: table {join.source!r} was not extracted (there are: {', '.join(sorted(tables))}).")
        right = f"({join.source})" if join.is_query else _quote(join.source)
        right_columns = _run(connection, f"SELECT * FROM {right}", where)
        left_columns = _columns(connection, query)
        if join.left_on not in left_columns:
            raise ConfigError(f"{where}: key {join.left_on!r} not found in the rows so far ({left_columns}).")
        missing = [c for c in dict.fromkeys([join.right_on, *join.columns.values()]) if c not in right_columns]
        if missing:
            raise ConfigError(f"{where}: column(s) {missing} not found on the joined side ({right_columns}).")
        clashes = [name for name in join.columns if name in left_columns]
        if clashes:
            raise ConfigError(f"{where}: {clashes} already exist; rename them with columns: {{new_name: column}}.")
        selected = ", ".join(f"r.{_quote(source)} AS {_quote(name)}" for name, source in join.columns.items())
        joined = (f"SELECT l.*, {selected} FROM ({query}) l {join.how.upper()} JOIN {right} r "
                  f"ON l.{_quote(join.left_on)} = r.{_quote(join.right_on)}")
        rows = _count(connection, joined, where)
        distinct = _count(connection, joined, where, f"DISTINCT {_quote(spec.id_column)}")
        if rows > distinct:
            raise ConfigError(
                f"{where} matches several rows per {spec.entity} record ({rows} rows for {distinct} records), "
                f"which would copy records. Aggregate that side to one row per {join.right_on} with a sql: join."
            )
        if rows < entity_rows:
            log.info("%s keeps %d of %d %s records (inner join)", where, rows, entity_rows, spec.entity)
        matched = _count(connection, f"SELECT * FROM ({query}) l JOIN {right} r ON l.{_quote(join.left_on)} = "
                                     f"r.{_quote(join.right_on)}", where)
        if matched == 0 and rows:
            raise ConfigError(
                f"{where} matches no record on {join.left_on} = {join.right_on}, so every joined column would "
                "be empty. Check the key and its type on both sides."
            )
        if matched < 0.5 * rows:
            log.warning("%s matches only %d of %d records; the rest get empty joined columns", where, matched, rows)
        query = joined

    for name, expression in spec.derive.items():
        if name in _columns(connection, query):
            raise ConfigError(
                f"task.derive.{name}: a column {name!r} already exists; give the derived column another name."
            )
        derived = f"SELECT *, ({expression}) AS {_quote(name)} FROM ({query})"
        _run(connection, derived, f"task.derive.{name} = {expression!r}")
        query = derived
    return query


def load_task_frame(extracted: Path, spec: TaskSpec) -> pd.DataFrame:
    """Return one row per task record with every column the task names, ordered by its id."""
    connection = connect(extracted)
    try:
        query = build_query(connection, spec)
        available = _columns(connection, query)
        needed = [spec.id_column, spec.label, *spec.feature_fields, *spec.leaks]
        needed += [key for key in (spec.group_key, spec.time_key) if key]
        missing = sorted({column for column in needed if column not in available})
        if missing:
            raise ConfigError(
                f"Task {spec.name!r} names column(s) {missing} that its entity, joins and derive do not "
                f"produce. Available: {available}."
            )
        try:
            frame = connection.execute(f"SELECT * FROM ({query}) ORDER BY {_quote(spec.id_column)}").df()
        except duckdb.Error as error:
            raise ConfigError(f"Task {spec.name!r}: the joins and derived columns failed on the data: {error}") \
                from error
    finally:
        connection.close()

    for name in spec.numeric_fields:
        if not pd.api.types.is_numeric_dtype(frame[name]) or pd.api.types.is_bool_dtype(frame[name]):
            raise ConfigError(
                f"task.numeric_fields: column {name!r} has type {frame[name].dtype}, not a number. Move it to "
                "categorical_fields, or cast it in task.derive."
            )

    if frame[spec.id_column].duplicated().any():
        duplicates = frame.loc[frame[spec.id_column].duplicated(), spec.id_column].head(3).tolist()
        raise ConfigError(f"task.id={spec.id_column!r} is not unique in {spec.entity!r}, e.g. {duplicates}.")
    return frame


def load_label_names(extracted: Path, spec: TaskSpec) -> dict[str, str]:
    """Return display names per label value, from the table that task.label_names points to."""
    if not spec.label_names:
        return {}
    table, key, name = (spec.label_names.get(part) for part in ("table", "key", "name"))
    file = extracted / f"{table}.parquet"
    if not file.is_file():
        raise ConfigError(f"task.label_names.table={table!r} was not extracted ({file} not found).")
    names = pd.read_parquet(file, columns=[key, name])
    return dict(zip(names[key].astype(str), names[name].astype(str)))
