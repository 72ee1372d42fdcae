"""Row validation for extract: type conversion, required values, keys and references.

Every check marks a row with the first reason it fails, and the caller writes
marked rows to quarantine, so each row read is either written or quarantined.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Table

# Unicode's replacement character: a file decoded with encoding_errors="replace"
# puts it where the bytes were not valid in the configured encoding.
REPLACEMENT_CHARACTER = "\ufffd"


@dataclass
class TableReport:
    """Row counts of one extracted table."""

    read: int = 0
    written: int = 0
    quarantined: int = 0
    reasons: Counter = field(default_factory=Counter)
    # Written values that source.normalize changed, per column; None when no rule applies to the table.
    normalized: Counter | None = None

    def as_dict(self) -> dict:
        report = {"read": self.read, "written": self.written, "quarantined": self.quarantined,
                  "quarantine_reasons": dict(sorted(self.reasons.items()))}
        if self.normalized is not None:
            report["normalized"] = dict(sorted(self.normalized.items()))
        return report


@dataclass(frozen=True)
class ValueFormat:
    """Number and date notation of a text source such as a CSV export."""

    decimal: str = "."
    thousands: str | None = None
    # A strftime format such as "%d.%m.%Y", or "ISO8601".
    date_format: str = "ISO8601"
    # Formats per date column, configured or detected, which take precedence over date_format.
    column_date_formats: tuple[tuple[str, str], ...] = ()
    # Symbols or codes removed from amounts before parsing, such as "£" in "£1,234.50".
    currency_symbols: tuple[str, ...] = ()
    # Read accounting notation "(12.50)" as -12.50.
    parenthesized_negatives: bool = False
    # Accept a thousands separator only between groups of three digits ("1,234.50", not "12,50").
    strict_thousands: bool = False

    def date_format_for(self, column: str) -> str:
        return dict(self.column_date_formats).get(column, self.date_format)


def type_kind(column) -> str:
    """Classify a schema column as integer, number, date or text."""
    name = column.type.__class__.__name__
    if name == "Integer":
        return "integer"
    if name == "Numeric":
        return "number"
    if name == "Date":
        return "date"
    return "text"


def arrow_schema(table: Table) -> pa.Schema:
    arrow_types = {"integer": pa.int64(), "number": pa.float64(), "date": pa.date32(), "text": pa.string()}
    return pa.schema([pa.field(column.name, arrow_types[type_kind(column)]) for column in table.columns])


def quarantine_schema(table: Table) -> pa.Schema:
    """Quarantined rows keep the source's values as text, so the offending value stays visible."""
    fields = [pa.field(column.name, pa.string()) for column in table.columns]
    return pa.schema(fields + [pa.field("quarantine_reason", pa.string())])


def as_text(values: pd.Series) -> pd.Series:
    """Render source values as text, keeping nulls, for parsing and for quarantine.

    str() gives ISO dates ('2024-03-01', '2024-03-01 00:00:00') and exact
    decimals, so every driver's native types render alike.
    """
    missing = values.isna()
    if values.map(type).eq(bytes).any():
        values = values.map(lambda value: value.decode("utf-8", errors="replace") if isinstance(value, bytes)
                            else value)
    text = values.astype(str).astype(object)
    text[missing] = None
    return text


def _parse_number(text: pd.Series, value_format: ValueFormat) -> pd.Series:
    cleaned = text.str.strip()
    for symbol in value_format.currency_symbols:
        cleaned = cleaned.str.replace(symbol, "", regex=False).str.strip()
    if value_format.parenthesized_negatives:
        cleaned = cleaned.str.replace(r"^\((.*)\)$", r"-\1", regex=True).str.strip()
    if value_format.thousands and value_format.strict_thousands:
        # Separators must group three digits, so "12,50" in a file with thousands="," is
        # quarantined instead of read as 1250.
        separator, decimal = re.escape(value_format.thousands), re.escape(value_format.decimal)
        grouped = cleaned.str.fullmatch(rf"[+-]?\d{{1,3}}({separator}\d{{3}})+({decimal}\d*)?", na=False)
        has_separator = cleaned.str.contains(value_format.thousands, regex=False, na=False)
        cleaned = cleaned.where(~has_separator | grouped)
    if value_format.thousands:
        cleaned = cleaned.str.replace(value_format.thousands, "", regex=False)
    if value_format.decimal != ".":
        cleaned = cleaned.str.replace(value_format.decimal, ".", regex=False)
    # Text such as 'inf' or 'nan' parses as a float but is no amount.
    converted = pd.to_numeric(cleaned, errors="coerce")
    return converted.where(np.isfinite(converted.astype("float64")))


def _parse_date(text: pd.Series, date_format: str) -> pd.Series:
    parsed = pd.to_datetime(text.str.strip(), format=date_format or "ISO8601", errors="coerce")
    return parsed.dt.date


def coerce_frame(table: Table, raw: pd.DataFrame, value_format: ValueFormat) -> tuple[pd.DataFrame, pd.Series]:
    """Convert text values to the schema's types; return the typed frame and a reason per row (or None)."""
    reasons = pd.Series([None] * len(raw), index=raw.index, dtype=object)
    frame = pd.DataFrame(index=raw.index)

    def mark(bad: pd.Series, reason: str) -> None:
        reasons[bad & reasons.isna()] = reason

    for column in table.columns:
        text = raw[column.name]
        present = text.notna() & (text.str.strip() != "")
        text = text.where(present)
        kind = type_kind(column)
        # Checked first in every column: a number with an undecodable byte is an encoding fault.
        mark(text.str.contains(REPLACEMENT_CHARACTER, regex=False, na=False), f"invalid_encoding_{column.name}")

        if kind in ("integer", "number"):
            converted = _parse_number(text, value_format)
            invalid = present & converted.isna()
            if kind == "integer":
                # 2.5 in an integer column is a wrong type, not a value to round.
                invalid |= present & converted.notna() & (converted % 1 != 0)
                converted = converted.where(~invalid)
                frame[column.name] = converted.astype("Int64")
            else:
                frame[column.name] = converted.astype("float64")
            mark(invalid, f"invalid_{column.name}")
        elif kind == "date":
            converted = _parse_date(text, value_format.date_format_for(column.name))
            mark(present & converted.isna(), f"invalid_{column.name}")
            frame[column.name] = converted
        else:
            length = getattr(column.type, "length", None)
            if length:
                mark(text.str.len() > length, f"too_long_{column.name}")
            frame[column.name] = text.astype("string")

        if not column.nullable:
            mark(~present, f"missing_{column.name}")
    return frame, reasons


def normalize_text(values: pd.Series, rules: list[str]) -> pd.Series:
    """Apply source.normalize rules (strip, collapse_whitespace, casefold, lower, upper) in order, keeping nulls."""
    text = values.astype("string")
    for rule in rules:
        if rule == "strip":
            text = text.str.strip()
        elif rule == "collapse_whitespace":
            text = text.str.replace(r"\s+", " ", regex=True)
        elif rule == "casefold":
            text = text.str.casefold()
        elif rule == "lower":
            text = text.str.lower()
        elif rule == "upper":
            text = text.str.upper()
        else:
            raise ValueError(f"Unknown normalization rule {rule!r}")
    return text.astype(object).where(values.notna(), None)


def _as_arrow_text(values: pd.Series) -> pa.Array:
    return pa.array(values.astype("string")).cast(pa.large_string())


class KeySet:
    """Keys seen so far, stored as Arrow strings: a fraction of a Python set's memory at a million keys."""

    def __init__(self) -> None:
        self.chunks: list[pa.Array] = []

    def add(self, values: pd.Series) -> None:
        self.chunks.append(_as_arrow_text(values))

    def contains(self, values: pd.Series) -> pd.Series:
        if not self.chunks:
            return pd.Series(False, index=values.index)
        # Merged once per lookup, so is_in builds one hash table over all keys.
        if len(self.chunks) > 1:
            self.chunks = [pa.concat_arrays(self.chunks)]
        found = pc.is_in(_as_arrow_text(values), value_set=self.chunks[0])
        return pd.Series(found.to_numpy(zero_copy_only=False), index=values.index, dtype=bool)


def check_keys(table: Table, frame: pd.DataFrame, reasons: pd.Series, seen: KeySet,
               parent_keys: dict[str, KeySet]) -> None:
    """Mark duplicate primary keys and references to rows the parent table lacks."""
    primary_key = table.primary_key.columns.keys()[0]
    duplicate = seen.contains(frame[primary_key]) | frame[primary_key].duplicated()
    reasons[duplicate & reasons.isna()] = "duplicate_key"

    for foreign_key in table.foreign_keys:
        column = foreign_key.parent.name
        parent = foreign_key.column.table.name
        # A parent table the source does not have cannot be checked against.
        if parent not in parent_keys:
            continue
        values = frame[column]
        orphan = values.notna() & ~parent_keys[parent].contains(values)
        reasons[orphan & reasons.isna()] = f"orphan_{column}"
