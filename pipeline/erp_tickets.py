"""Simulated service-desk tickets about invoices, vendors and systems, labeled with the resolving team.

The team follows the topic, and for a blocked invoice the block reason: price
variances go to procurement, everything else about blocks to accounts payable.
REASSIGN_SHARE of tickets are resolved by another team, as when a ticket is
passed on.
"""

from __future__ import annotations

import datetime as dt

import numpy as np

from pipeline.erp_master_data import email_for, person_name

REASSIGN_SHARE = 0.07
TICKETS_PER_INVOICE = 0.25
TEAMS = ("accounts_payable", "procurement", "vendor_master_data", "treasury", "it_support", "facility")

# topic: (team, weight, titles, bodies). {invoice}, {vendor} and {amount} are filled in.
TOPICS = {
    "blocked_invoice": ("accounts_payable", 5, (
        "Invoice {invoice} blocked", "pls release inv {invoice}", "Rechnung {invoice} gesperrt",
        "payment block on {invoice}?"), (
        "Hi, invoice {invoice} from {vendor} is blocked for payment. Can you check and release it?",
        "vendor {vendor} called, says {invoice} ({amount} EUR) is still not paid. blocked?",
        "Bitte Rechnung {invoice} von {vendor} prüfen, Zahlung ist gesperrt.")),
    "payment_status": ("treasury", 4, (
        "Payment status {invoice}", "when will {vendor} be paid", "Zahlungsavis fehlt",
        "statut paiement facture {invoice}"), (
        "{vendor} asks when invoice {invoice} over {amount} EUR will be paid. Due date passed.",
        "Can you send the remittance advice for {invoice}? Vendor did not receive it.",
        "Le fournisseur {vendor} demande la date de paiement de la facture {invoice}.")),
    "bank_details": ("vendor_master_data", 3, (
        "New bank details {vendor}", "IBAN change request", "Bankverbindung ändern {vendor}",
        "update vendor address"), (
        "{vendor} sent a letter with new bank details. Please update the IBAN in the vendor master.",
        "Vendor {vendor} moved, new address and phone attached. pls update.",
        "Neue Bankverbindung von {vendor} liegt vor, bitte im Kreditorenstamm pflegen.")),
    "new_vendor": ("vendor_master_data", 2, (
        "Create new vendor", "onboarding supplier {vendor}", "Neuanlage Lieferant"), (
        "Please create {vendor} as a new vendor, W-9/VAT form attached.",
        "We need {vendor} set up before the PO can go out, tax id in attachment.")),
    "po_change": ("procurement", 4, (
        "Change PO quantity", "PO price wrong for {vendor}", "Bestellung anpassen",
        "price diff on {invoice}"), (
        "The PO for {vendor} has the old price, invoice {invoice} is {amount} EUR. Pls adjust the PO.",
        "Need to increase quantity on the order with {vendor}, goods already received.",
        "Preis in der Bestellung stimmt nicht mit Rechnung {invoice} überein.")),
    "sap_access": ("it_support", 3, (
        "SAP login not working", "cannot post invoice - error", "Passwort zurücksetzen",
        "VPN down, cant reach ERP"), (
        "Since this morning I get an authorization error when posting invoices in MIRO.",
        "my password expired and the reset link does not work. pls help",
        "Le système affiche une erreur lors de la saisie des factures.")),
    "printer": ("it_support", 1, (
        "Printer in AP office jammed", "scanner for invoices offline"), (
        "The invoice scanner on floor 2 shows an error and no PDFs arrive in the inbox.",
        "printer next to accounts payable prints blank pages")),
    "office_facility": ("facility", 1, (
        "Heating broken in office", "Aircon AP room", "Reinigung Büro"), (
        "The heating in the accounts payable office does not work since Monday.",
        "Bitte Reinigung für Raum 2.14 beauftragen, Mülleimer seit Tagen voll.")),
}


def _topic_weights() -> np.ndarray:
    weights = np.array([topic[1] for topic in TOPICS.values()], dtype=float)
    return weights / weights.sum()


def simulate_tickets(rng: np.random.Generator, invoice_rows: list[dict], vendors_by_id: dict[str, dict],
                     amounts: dict[str, float], first_ticket: int) -> list[dict]:
    """Write TICKETS_PER_INVOICE tickets per invoice in this chunk, numbered from first_ticket."""
    names = list(TOPICS)
    weights = _topic_weights()
    rows = []
    n_tickets = int(round(len(invoice_rows) * TICKETS_PER_INVOICE))
    for offset in range(n_tickets):
        topic = names[int(rng.choice(len(names), p=weights))]
        team, _, titles, bodies = TOPICS[topic]
        invoice = invoice_rows[int(rng.integers(0, len(invoice_rows)))]
        vendor = vendors_by_id[invoice["vendor_id"]]
        values = {"invoice": invoice["invoice_id"], "vendor": vendor["name"],
                  "amount": f"{amounts[invoice['invoice_id']]:,.2f}"}
        title = str(rng.choice(titles)).format(**values)
        body = str(rng.choice(bodies)).format(**values)
        if rng.random() < 0.2:
            title = title.lower()

        if topic == "blocked_invoice" and invoice.get("block_reason") == "price_variance":
            team = "procurement"
        if rng.random() < REASSIGN_SHARE:
            team = str(rng.choice([other for other in TEAMS if other != team]))

        requester = person_name(rng)
        mentions_invoice = "{invoice}" in titles[0] or invoice["invoice_id"] in body
        rows.append({
            "ticket_id": f"T{first_ticket + offset:09d}",
            "created_on": invoice["posting_date"] + dt.timedelta(days=int(rng.integers(0, 40))),
            "requester_name": requester,
            "requester_email": email_for(requester, "nordwerk.example"),
            "title": title,
            "body": body,
            "vendor_id": vendor["vendor_id"] if topic not in ("sap_access", "printer", "office_facility") else None,
            "invoice_id": invoice["invoice_id"] if mentions_invoice else None,
            "resolving_team": team,
        })
    return rows
