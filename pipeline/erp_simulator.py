"""Seeded generator of a small ERP database: vendors, GL accounts, invoices and lines.

The GL account of a line follows business rules a clerk would apply: the
material group behind the description, the vendor's industry where the wording
is generic (professional services from a law firm are legal fees), and the
amount for IT hardware (capitalised at 1,000 and above). Clerks' typing adds
abbreviations, typos, part numbers, mixed case and some non-English lines, and
a few percent of lines are miscoded, as in real ledgers. The same seed gives
the same database.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

import numpy as np
from sqlalchemy import Engine, insert

from pipeline.erp_schema import TABLES, gl_accounts, invoice_lines, invoices, metadata, vendors

log = logging.getLogger(__name__)

ACCOUNTS = {
    "610100": "Office supplies",
    "611000": "Low-value IT equipment",
    "150200": "IT equipment (fixed assets)",
    "612000": "Software licenses",
    "613000": "IT services and cloud",
    "620000": "Raw materials",
    "621000": "Packaging materials",
    "630000": "Repairs and maintenance",
    "631000": "Spare parts",
    "640000": "Travel expenses",
    "641000": "Freight and logistics",
    "650000": "Consulting fees",
    "651000": "Legal fees",
    "660000": "Utilities",
    "661000": "Telecommunications",
    "670000": "Marketing and advertising",
    "680000": "Cleaning and facility services",
    "690000": "Training and education",
}

# Amounts at or above this are capitalised as fixed assets (IT hardware only).
CAPITALISATION_THRESHOLD = 1000.0


@dataclass(frozen=True)
class MaterialGroup:
    name: str
    account: str
    items: tuple[str, ...]
    foreign_items: tuple[str, ...]
    median_unit_price: float
    units: tuple[str, ...]
    weight: float


GROUPS = (
    MaterialGroup("office", "610100", ("printer paper A4", "ballpoint pens blue", "stapler", "toner cartridge",
                  "sticky notes", "binder clips", "envelopes C4", "whiteboard markers", "file folders",
                  "desk organizer"), ("Druckerpapier A4", "Kugelschreiber", "papier A4 ramette", "carpetas"),
                  12.0, ("pcs", "pack", "box"), 14),
    MaterialGroup("it_hardware", "611000", ("laptop", "docking station", "monitor 27in", "keyboard",
                  "wireless mouse", "USB-C hub", "network switch 48 port", "SSD 1TB", "headset", "server rack",
                  "thin client", "tablet"), ("Bildschirm 27 Zoll", "ordinateur portable", "portatil"),
                  260.0, ("pcs", "EA"), 9),
    MaterialGroup("software", "612000", ("MS Office 365 subscription", "Adobe Acrobat license",
                  "antivirus renewal", "SAP user license", "Jira cloud seats", "CAD software maintenance"),
                  ("Softwarelizenz", "licence logiciel"), 90.0, ("seats", "users", "lic"), 6),
    MaterialGroup("it_services", "613000", ("AWS hosting", "Azure compute", "managed backup service",
                  "helpdesk support hours", "data center colocation", "cloud storage"),
                  ("Rechenzentrum Hosting", "hebergement serveur"), 400.0, ("month", "hrs"), 5),
    MaterialGroup("raw_materials", "620000", ("steel sheet 2mm", "aluminium profile", "copper wire",
                  "polyethylene granulate", "stainless bolts M8", "epoxy resin", "carbon fibre roll"),
                  ("Stahlblech", "fil de cuivre", "granulado PE"), 35.0, ("kg", "t", "m", "pcs"), 16),
    MaterialGroup("packaging", "621000", ("cardboard boxes", "pallet wrap film", "bubble wrap",
                  "wooden pallets", "packing tape 50mm", "thermal labels"), ("Kartons", "film etirable"),
                  4.0, ("pcs", "roll", "pack"), 8),
    MaterialGroup("maintenance", "630000", ("forklift repair", "HVAC maintenance", "boiler service",
                  "elevator inspection", "machine overhaul", "roof repair"), ("Wartung Heizung",
                  "reparation chariot"), 650.0, ("hrs", "job"), 7),
    MaterialGroup("spare_parts", "631000", ("bearing 6204", "v-belt", "hydraulic hose", "filter cartridge",
                  "gear motor", "proximity sensor"), ("Kugellager", "courroie"), 45.0, ("pcs", "EA"), 7),
    MaterialGroup("travel", "640000", ("flight FRA-LHR", "hotel 2 nights", "train ticket", "rental car",
                  "taxi fare", "per diem"), ("Bahnfahrt", "billet de train", "hotel noches"),
                  180.0, ("trip", "night"), 6),
    MaterialGroup("freight", "641000", ("freight charges", "courier express", "sea freight container",
                  "customs clearance", "pallet shipping"), ("Frachtkosten", "frais de transport"),
                  220.0, ("shipment", "pallet"), 7),
    MaterialGroup("consulting", "650000", ("consulting services", "project management support",
                  "strategy workshop", "process audit"), ("Beratungsleistung", "servicios de consultoria"),
                  1200.0, ("days", "hrs"), 4),
    MaterialGroup("legal", "651000", ("legal advice", "contract review", "trademark filing",
                  "litigation support"), ("Rechtsberatung", "conseil juridique"), 900.0, ("hrs",), 2),
    MaterialGroup("utilities", "660000", ("electricity", "natural gas", "water supply", "district heating"),
                  ("Strom", "electricite"), 1500.0, ("kWh", "m3", "month"), 3),
    MaterialGroup("telecom", "661000", ("mobile phone contract", "internet line", "landline",
                  "SIM cards"), ("Mobilfunkvertrag",), 60.0, ("month", "pcs"), 2),
    MaterialGroup("marketing", "670000", ("trade fair booth", "online ads campaign", "brochure printing",
                  "sponsorship", "promotional items"), ("Messestand", "impression brochures"),
                  700.0, ("job", "pcs"), 2),
    MaterialGroup("facility", "680000", ("office cleaning", "window cleaning", "security guard service",
                  "waste disposal", "pest control"), ("Gebaudereinigung", "limpieza oficinas"),
                  500.0, ("month", "job"), 1.5),
    MaterialGroup("training", "690000", ("training course", "seminar fee", "e-learning license",
                  "certification exam", "conference ticket"), ("Schulung", "formation"), 450.0,
                  ("person", "seat"), 1),
)

# Generic wording that only the vendor's industry disambiguates.
GENERIC_WORDING = ("professional services", "service fee", "monthly fee", "services as agreed",
                   "invoice per contract", "misc")

INDUSTRIES = {
    "office_retail": ("office", "it_hardware"),
    "it_reseller": ("it_hardware", "software"),
    "cloud_provider": ("it_services", "software"),
    "metals": ("raw_materials", "spare_parts"),
    "packaging": ("packaging",),
    "industrial_service": ("maintenance", "spare_parts"),
    "travel_agency": ("travel",),
    "logistics": ("freight",),
    "consultancy": ("consulting", "training"),
    "law_firm": ("legal",),
    "utility": ("utilities",),
    "telecom": ("telecom", "it_services"),
    "agency": ("marketing",),
    "facility_services": ("facility",),
    "training_provider": ("training",),
}

INDUSTRY_WORDS = {
    "office_retail": "Office", "it_reseller": "IT", "cloud_provider": "Cloud", "metals": "Metall",
    "packaging": "Pack", "industrial_service": "Technik", "travel_agency": "Travel", "logistics": "Logistics",
    "consultancy": "Consulting", "law_firm": "Legal", "utility": "Energie", "telecom": "Telecom",
    "agency": "Media", "facility_services": "Facility", "training_provider": "Academy",
}

ABBREVIATIONS = {"services": "svcs", "maintenance": "maint.", "charges": "chgs", "license": "lic.",
                 "cartridge": "cartr.", "support": "supp.", "management": "mgmt", "container": "cont.",
                 "subscription": "subscr.", "wireless": "wrls", "printing": "print."}

SYLLABLES = ("ka", "lo", "mer", "tin", "sa", "vo", "rex", "dal", "ber", "ton", "nor", "vik", "al", "ge",
             "ma", "sol", "tra", "zen", "pri", "co", "lux", "far", "hel", "mon")
LEGAL_FORMS = ("GmbH", "Ltd", "Inc", "SA", "AG", "BV", "SRL", "LLC", "Oy", "& Co KG")
COUNTRIES = ("DE", "FR", "ES", "GB", "NL", "IT", "US", "PL")
COMPANY_CODES = ("1000", "2000", "3000")

# Share of lines whose account a clerk miscoded at random, and of lines with generic wording.
MISCODING_RATE = 0.03
GENERIC_RATE = 0.08


def _vendor_name(rng: np.random.Generator, industry: str) -> str:
    stem = "".join(rng.choice(SYLLABLES, size=int(rng.integers(2, 4)))).capitalize()
    parts = [stem]
    if rng.random() < 0.5:
        parts.append(INDUSTRY_WORDS[industry])
    parts.append(str(rng.choice(LEGAL_FORMS)))
    return " ".join(parts)


def _make_vendors(rng: np.random.Generator, n_vendors: int) -> list[dict]:
    industries = list(INDUSTRIES)
    # Industries are weighted by the lines their groups produce, so each account has vendors.
    weights = np.array([sum(g.weight for g in GROUPS if g.name in INDUSTRIES[i]) for i in industries])
    weights = weights / weights.sum()
    rows = []
    for index in range(n_vendors):
        industry = str(rng.choice(industries, p=weights))
        rows.append({
            "vendor_id": f"V{index + 1:06d}",
            "name": _vendor_name(rng, industry),
            "industry": industry,
            "country": str(rng.choice(COUNTRIES)),
            "payment_terms_days": int(rng.choice([14, 30, 30, 45, 60])),
        })
    return rows


def _typo(rng: np.random.Generator, text: str) -> str:
    if len(text) < 4:
        return text
    position = int(rng.integers(1, len(text) - 2))
    if rng.random() < 0.5:
        return text[:position] + text[position + 1] + text[position] + text[position + 2:]
    return text[:position] + text[position + 1:]


def _describe(rng: np.random.Generator, group: MaterialGroup, quantity: float, unit: str, month: str) -> str:
    """Write a line description the way clerks type it."""
    if rng.random() < 0.10:
        text = str(rng.choice(group.foreign_items))
    else:
        text = str(rng.choice(group.items))

    if rng.random() < 0.25:
        for word, short in ABBREVIATIONS.items():
            text = text.replace(word, short)
    if rng.random() < 0.25:
        text = f"{text} PN-{int(rng.integers(1000, 99999))}"
    if rng.random() < 0.4:
        text = f"{quantity:g} {unit} {text}"
    if rng.random() < 0.2:
        text = f"{text} {month}"
    if rng.random() < 0.08:
        text = _typo(rng, text)

    case = rng.random()
    if case < 0.15:
        text = text.upper()
    elif case < 0.35:
        text = text.lower()
    return text


def _account_for(group: MaterialGroup, amount: float) -> str:
    if group.name == "it_hardware" and amount >= CAPITALISATION_THRESHOLD:
        return "150200"
    return group.account


def _make_invoices(rng: np.random.Generator, vendor_rows: list[dict], n_invoices: int,
                   fiscal_years: list[int]) -> tuple[list[dict], list[dict]]:
    groups = {group.name: group for group in GROUPS}
    account_ids = list(ACCOUNTS)

    # Vendors get a Zipf-like share of invoices: a few suppliers send most of them.
    activity = rng.pareto(1.2, size=len(vendor_rows)) + 0.1
    activity = activity / activity.sum()

    start = dt.date(min(fiscal_years), 1, 1)
    n_days = (dt.date(max(fiscal_years), 12, 31) - start).days + 1

    invoice_rows, line_rows = [], []
    for index in range(n_invoices):
        vendor = vendor_rows[int(rng.choice(len(vendor_rows), p=activity))]
        posting_date = start + dt.timedelta(days=int(rng.integers(0, n_days)))
        invoice_id = f"INV{index + 1:09d}"
        invoice_rows.append({
            "invoice_id": invoice_id,
            "vendor_id": vendor["vendor_id"],
            "company_code": str(rng.choice(COMPANY_CODES)),
            "posting_date": posting_date,
            "currency": "EUR",
        })

        vendor_groups = [groups[name] for name in INDUSTRIES[vendor["industry"]]]
        group_weights = np.array([group.weight for group in vendor_groups])
        month = posting_date.strftime("%b %Y")
        for line_no in range(1, int(rng.integers(1, 6)) + 1):
            group = vendor_groups[int(rng.choice(len(vendor_groups), p=group_weights / group_weights.sum()))]
            unit = str(rng.choice(group.units))
            quantity = float(rng.choice([1, 1, 1, 2, 3, 5, 10, 20, 50]))
            unit_price = float(rng.lognormal(np.log(group.median_unit_price), 0.9))
            amount = round(quantity * unit_price, 2)

            if rng.random() < GENERIC_RATE:
                description = str(rng.choice(GENERIC_WORDING))
            else:
                description = _describe(rng, group, quantity, unit, month)

            account = _account_for(group, amount)
            if rng.random() < MISCODING_RATE:
                account = str(rng.choice(account_ids))

            line_rows.append({
                "line_id": f"{invoice_id}-{line_no:03d}",
                "invoice_id": invoice_id,
                "line_no": line_no,
                "description": description,
                "quantity": quantity,
                "amount": amount,
                "gl_account_id": account,
            })
    return invoice_rows, line_rows


def generate_erp(engine: Engine, n_invoices: int, seed: int, fiscal_years: list[int],
                 chunk_size: int = 20000) -> dict[str, int]:
    """Create the ERP tables in `engine`'s database and fill them; returns row counts.

    Existing tables of the same names are dropped first.
    """
    rng = np.random.default_rng(seed)
    n_vendors = max(30, n_invoices // 40)
    vendor_rows = _make_vendors(rng, n_vendors)
    invoice_rows, line_rows = _make_invoices(rng, vendor_rows, n_invoices, list(fiscal_years))
    account_rows = [
        {"account_id": account_id, "name": name, "account_type": "asset" if account_id.startswith("1") else "expense"}
        for account_id, name in ACCOUNTS.items()
    ]

    metadata.drop_all(engine, tables=list(reversed(TABLES)))
    metadata.create_all(engine, tables=list(TABLES))
    counts = {}
    with engine.begin() as connection:
        for table, rows in ((gl_accounts, account_rows), (vendors, vendor_rows),
                            (invoices, invoice_rows), (invoice_lines, line_rows)):
            for offset in range(0, len(rows), chunk_size):
                connection.execute(insert(table), rows[offset:offset + chunk_size])
            counts[table.name] = len(rows)
    log.info("Simulated ERP written: %s", counts)
    return counts
