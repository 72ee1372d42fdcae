"""The input contract: how one record becomes the text that every model reads.

Teacher, students, baselines, the ONNX exports and the served model all take
one string per record, built here and nowhere else:
- text fields, joined with " | ";
- categorical fields as "<field> <value>", so a value becomes a word the
  tokenizers and TF-IDF can match;
- numeric fields as "<field> <low> to <high>", the quantile bin the value
  falls in. The bin edges are learned from the training side of the split
  (never validation or test), because word-piece tokenizers cut raw numbers
  into meaningless pieces.
A text-only task has no categorical or numeric fields, a tabular-only task no
text fields; both go through the same code. The fitted encoder is saved next
to the dataset and inside every exported model, so serving renders records
exactly as training did.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

INPUTS_FILE = "inputs.json"
FIELD_SEPARATOR = " | "


def format_number(value: float) -> str:
    """Render a bin edge with two significant digits, with thousands separators."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    places = 1 - int(math.floor(math.log10(abs(value))))
    rounded = round(value, places)
    digits = max(0, places)
    if digits == 0 or float(rounded).is_integer():
        return f"{rounded:,.0f}"
    return f"{rounded:,.{digits}f}"


@dataclass
class InputEncoder:
    """Field roles and the numeric bin edges that turn a record into model text."""

    text_fields: list[str] = field(default_factory=list)
    categorical_fields: list[str] = field(default_factory=list)
    numeric_fields: list[str] = field(default_factory=list)
    numeric_edges: dict[str, list[float]] = field(default_factory=dict)

    @property
    def fields(self) -> list[str]:
        return [*self.text_fields, *self.categorical_fields, *self.numeric_fields]

    @classmethod
    def fit(cls, frame: pd.DataFrame, text_fields: list[str], categorical_fields: list[str],
            numeric_fields: list[str], n_bins: int) -> "InputEncoder":
        """Learn quantile bin edges for each numeric field from `frame` (the training side only)."""
        edges = {}
        for name in numeric_fields:
            values = pd.to_numeric(frame[name], errors="coerce").dropna().to_numpy(dtype=float)
            if len(values) == 0:
                edges[name] = []
                continue
            inner = np.quantile(values, np.linspace(0, 1, n_bins + 1)[1:-1])
            # Floating-point noise (2e-16 for a zero difference) would become its own edge.
            scale = float(np.abs(values).max())
            inner = np.where(np.abs(inner) <= 1e-9 * scale, 0.0, inner)
            # Rounded first, so that two edges that print the same merge into one bin.
            rounded = sorted({float(format_number(edge).replace(",", "")) for edge in inner})
            edges[name] = rounded
        return cls(list(text_fields), list(categorical_fields), list(numeric_fields), edges)

    def numeric_words(self, name: str, value) -> str:
        label = name.replace("_", " ")
        if value is None or (isinstance(value, float) and not math.isfinite(value)) or pd.isna(value):
            return f"{label} unknown"
        try:
            value = float(value)
        except (TypeError, ValueError):
            return f"{label} unknown"
        edges = self.numeric_edges.get(name, [])
        if not edges:
            # No edges: the training side had no value or a single one, so the value carries no information.
            return f"{label} known"
        index = int(np.searchsorted(edges, value, side="right"))
        if index == 0:
            return f"{label} under {format_number(edges[0])}"
        if index == len(edges):
            return f"{label} {format_number(edges[-1])} or more"
        return f"{label} {format_number(edges[index - 1])} to {format_number(edges[index])}"

    def render(self, record: Mapping) -> str:
        """Return the model input for one record (a mapping from field name to value)."""
        parts = []
        for name in self.text_fields:
            value = record.get(name)
            if value is not None and not (isinstance(value, float) and math.isnan(value)) and str(value).strip():
                parts.append(str(value).strip())
        for name in self.categorical_fields:
            value = record.get(name)
            shown = "unknown" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)
            parts.append(f"{name.replace('_', ' ')} {shown}")
        for name in self.numeric_fields:
            parts.append(self.numeric_words(name, record.get(name)))
        return FIELD_SEPARATOR.join(parts)

    def render_frame(self, frame: pd.DataFrame) -> list[str]:
        columns = {name: frame[name].tolist() for name in self.fields}
        return [self.render({name: columns[name][row] for name in self.fields}) for row in range(len(frame))]

    def save(self, folder: Path) -> Path:
        file = folder / INPUTS_FILE
        file.write_text(json.dumps(asdict(self), indent=2) + "\n")
        return file

    @classmethod
    def load(cls, file: Path) -> "InputEncoder":
        return cls(**json.loads(Path(file).read_text()))
