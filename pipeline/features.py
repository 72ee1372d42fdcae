"""The input contract: how one ERP record becomes the text every model reads.

Teacher and students see the same string, built here and nowhere else: the
line description, the vendor name and the amount as an order-of-magnitude
bucket, since word-piece tokenizers split raw numbers into meaningless pieces.
"""

from __future__ import annotations

import numpy as np

# Upper edges of the amount buckets, in the invoice currency.
AMOUNT_EDGES = (10.0, 100.0, 500.0, 1000.0, 5000.0, 10000.0)


def amount_bucket(amount: float) -> str:
    if amount is None or not np.isfinite(amount):
        return "amount unknown"
    index = int(np.searchsorted(AMOUNT_EDGES, abs(amount), side="right"))
    if index == 0:
        label = f"under {AMOUNT_EDGES[0]:g}"
    elif index == len(AMOUNT_EDGES):
        label = f"over {AMOUNT_EDGES[-1]:g}"
    else:
        label = f"{AMOUNT_EDGES[index - 1]:g} to {AMOUNT_EDGES[index]:g}"
    sign = "credit " if amount < 0 else ""
    return f"{sign}amount {label}"


def format_invoice_line(description: str, vendor: str, amount: float) -> str:
    """Return the model input for one invoice line."""
    return f"{description} | vendor {vendor} | {amount_bucket(amount)}"
