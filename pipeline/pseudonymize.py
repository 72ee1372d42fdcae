"""Keyed pseudonyms for personal data (names, emails, IBANs, phone numbers).

A value is replaced by a truncated HMAC-SHA256 of it under a secret key, so
the same person gets the same pseudonym in every table and run (joins and
counts still work), while without the key a guessed value cannot be checked.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from pipeline.config import ConfigError

log = logging.getLogger(__name__)

# 16 hex digits (64 bits): collisions stay unlikely below about a billion distinct values.
PSEUDONYM_HEX_DIGITS = 16


class Pseudonymizer:
    """Replace the configured columns of each table with keyed pseudonyms."""

    def __init__(self, columns: dict[str, list[str]], key: bytes):
        self.columns = columns
        self.key = key

    def pseudonym(self, column: str, value: str) -> str:
        digest = hmac.new(self.key, value.strip().encode("utf-8"), hashlib.sha256).hexdigest()
        return f"{column}_{digest[:PSEUDONYM_HEX_DIGITS]}"

    def apply(self, table: str, frame: pd.DataFrame) -> pd.DataFrame:
        for column in self.columns.get(table, []):
            if column not in frame.columns:
                continue
            values = frame[column]
            frame[column] = [None if pd.isna(value) else self.pseudonym(column, str(value)) for value in values]
            frame[column] = frame[column].astype(values.dtype if values.dtype == "string" else object)
        return frame


def make_pseudonymizer(cfg: DictConfig, table_columns: dict[str, list[str]]) -> Pseudonymizer:
    """Build the pseudonymizer from source.pseudonymize, taking the key from the environment."""
    configured = cfg.source.get("pseudonymize")
    columns = OmegaConf.to_container(configured, resolve=True) if configured else {}
    for table, names in columns.items():
        if table not in table_columns:
            raise ConfigError(f"source.pseudonymize names table {table!r}, which extract does not write. "
                              f"Choose among {sorted(table_columns)}.")
        unknown = sorted(set(names) - set(table_columns[table]))
        if unknown:
            raise ConfigError(f"source.pseudonymize.{table} names column(s) {unknown} that table {table!r} "
                              f"does not have. Its columns are {table_columns[table]}.")

    key_env = str(cfg.source.get("pseudonym_key_env") or "ERP_PSEUDONYM_KEY")
    key = os.environ.get(key_env, "")
    if not key and columns:
        if cfg.source.kind != "simulated":
            raise ConfigError(
                f"source.pseudonymize lists personal-data columns but the environment variable {key_env} "
                "is unset. Export a secret key of at least 16 characters there."
            )
        # The simulated ERP contains no real people, so a key derived from the seed
        # keeps runs reproducible without a secret.
        log.warning("%s is unset; pseudonymizing simulated data with a key derived from the seed", key_env)
        key = f"simulated-erp-seed-{cfg.seed}"
    if key and len(key) < 16:
        raise ConfigError(f"The key in {key_env} has {len(key)} characters; use at least 16 so pseudonyms "
                          "cannot be reversed by trying keys.")
    return Pseudonymizer(columns, key.encode("utf-8"))
