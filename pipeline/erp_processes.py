"""Simulated purchase-to-pay around each invoice: purchase order, goods receipt, block and payment.

The labels later tasks learn follow rules with noise:
- blocked: a line's invoiced unit price above the PO price by more than
  PRICE_TOLERANCE (and more than MIN_VARIANCE_EUR) blocks the invoice, and so
  does invoicing more than was received. BLOCK_NOISE of invoices flip, as when
  a clerk blocks or releases one by hand.
- late payment: the chance grows with the amount (approval), short payment
  terms, a due date in the month-end rush, an unreliable vendor and a block,
  and drops in the last fiscal year, when a second weekly payment run starts.
"""

from __future__ import annotations

import calendar
import datetime as dt

import numpy as np

from pipeline.erp_master_data import SERVICE_GROUPS, person_name, pick_cost_center

PO_SHARE = 0.85
PRICE_TOLERANCE = 0.02
MIN_VARIANCE_EUR = 5.0
BLOCK_NOISE = 0.02
APPROVAL_AMOUNT_EUR = 10000.0
# Chance of paying late: a base plus one term per rule, capped.
LATE_BASE = 0.03
LATE_LARGE_AMOUNT = 0.20
LATE_SHORT_TERMS = 0.10
LATE_MONTH_END = 0.15
LATE_UNRELIABLE = 0.20
LATE_BLOCKED = 0.40
LATE_LAST_YEAR_FACTOR = 0.6
LATE_MAX = 0.95


def _is_month_end(day: dt.date) -> bool:
    return day.day > calendar.monthrange(day.year, day.month)[1] - 3


def _purchase_order(rng, invoice: dict, lines: list[dict], reliability: float, material_index: dict):
    """Create the PO, its items and goods receipts behind one invoice; return rows and the block reason."""
    po_id = "PO" + invoice["invoice_id"][3:]
    order_date = invoice["invoice_date"] - dt.timedelta(days=int(rng.integers(7, 46)))
    order = {"po_id": po_id, "vendor_id": invoice["vendor_id"], "company_code": invoice["company_code"],
             "order_date": order_date, "buyer_name": person_name(rng)}
    items, receipts = [], []
    price_variance = quantity_variance = False

    for line in lines:
        po_item_id = f"{po_id}-{line['line_no']:03d}"
        invoiced_price = line["amount"] / line["quantity"]
        # Unreliable vendors invoice above the agreed price more often.
        if rng.random() < 0.02 + 0.1 * (1 - reliability):
            agreed_price = invoiced_price / (1 + float(rng.uniform(0.03, 0.25)))
        else:
            agreed_price = invoiced_price
        agreed_price = round(agreed_price, 4)
        items.append({"po_item_id": po_item_id, "po_id": po_id, "item_no": line["line_no"],
                      "material_id": material_index.get((line["_group"], line["_item"])),
                      "quantity": line["quantity"], "unit_price": agreed_price})
        variance = line["amount"] - agreed_price * line["quantity"]
        if variance > max(MIN_VARIANCE_EUR, PRICE_TOLERANCE * agreed_price * line["quantity"]):
            price_variance = True

        if line["_group"] not in SERVICE_GROUPS:
            received = line["quantity"]
            if rng.random() < 0.02 + 0.1 * (1 - reliability):
                received = float(np.floor(line["quantity"] * rng.uniform(0.3, 0.9)))
            if received > 0:
                receipts.append({"receipt_id": f"GR{po_item_id[2:]}", "po_item_id": po_item_id,
                                 "receipt_date": order_date + dt.timedelta(days=int(rng.integers(2, 21))),
                                 "quantity": received})
            quantity_variance |= received < line["quantity"]
        line["po_item_id"] = po_item_id

    reason = None
    if price_variance:
        reason = "price_variance"
    elif quantity_variance:
        reason = "quantity_variance"
    return order, items, receipts, reason


def _late_probability(amount: float, terms: int, due: dt.date, reliability: float, blocked: bool,
                      last_year: int) -> float:
    chance = LATE_BASE
    chance += LATE_LARGE_AMOUNT * (amount >= APPROVAL_AMOUNT_EUR)
    chance += LATE_SHORT_TERMS * (terms <= 14)
    chance += LATE_MONTH_END * _is_month_end(due)
    chance += LATE_UNRELIABLE * (1 - reliability)
    chance += LATE_BLOCKED * blocked
    if due.year >= last_year:
        chance *= LATE_LAST_YEAR_FACTOR
    return min(chance, LATE_MAX)


def _payment(rng, invoice: dict, amount: float, vendor: dict, horizon_end: dt.date, last_year: int) -> dict:
    due = invoice["due_date"]
    chance = _late_probability(amount, vendor["payment_terms_days"], due, vendor["reliability"],
                               bool(invoice["blocked"]), last_year)
    if rng.random() < chance:
        paid = due + dt.timedelta(days=int(rng.geometric(0.12)))
    else:
        paid = max(invoice["invoice_date"], due - dt.timedelta(days=int(rng.integers(0, 6))))
    eu = vendor["country"] not in ("US", "GB")
    return {"payment_id": "PAY" + invoice["invoice_id"][3:], "invoice_id": invoice["invoice_id"],
            "due_date": due, "paid_date": paid if paid <= horizon_end else None,
            "amount": round(amount, 2), "method": "SEPA transfer" if eu else "wire transfer"}


def simulate_purchase_to_pay(rng: np.random.Generator, invoice_rows: list[dict], line_rows: list[dict],
                             vendors_by_id: dict[str, dict], material_index: dict,
                             fiscal_years: list[int]) -> dict[str, list[dict]]:
    """Add PO, dates, block and cost center to invoices and lines in place; return the new tables' rows."""
    horizon_end = dt.date(max(fiscal_years), 12, 31)
    lines_by_invoice: dict[str, list[dict]] = {}
    for line in line_rows:
        lines_by_invoice.setdefault(line["invoice_id"], []).append(line)
    tables = {"purchase_orders": [], "purchase_order_items": [], "goods_receipts": [], "payments": []}

    for invoice in invoice_rows:
        vendor = vendors_by_id[invoice["vendor_id"]]
        lines = lines_by_invoice[invoice["invoice_id"]]
        invoice["invoice_date"] = invoice["posting_date"] - dt.timedelta(days=int(rng.integers(0, 7)))
        invoice["due_date"] = invoice["invoice_date"] + dt.timedelta(days=vendor["payment_terms_days"])

        reason = None
        invoice["po_id"] = None
        if rng.random() < PO_SHARE:
            order, items, receipts, reason = _purchase_order(rng, invoice, lines, vendor["reliability"],
                                                             material_index)
            invoice["po_id"] = order["po_id"]
            tables["purchase_orders"].append(order)
            tables["purchase_order_items"].extend(items)
            tables["goods_receipts"].extend(receipts)
        blocked = reason is not None
        if rng.random() < BLOCK_NOISE:
            blocked = not blocked
            reason = "manual" if blocked else None
        invoice["blocked"] = int(blocked)
        invoice["block_reason"] = reason

        for line in lines:
            line.setdefault("po_item_id", None)
            line["cost_center_id"] = pick_cost_center(rng, invoice["company_code"], line["_group"])
        amount = sum(line["amount"] for line in lines)
        tables["payments"].append(_payment(rng, invoice, amount, vendor, horizon_end, max(fiscal_years)))
    return tables
