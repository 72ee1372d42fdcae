"""Seeded generator of an ERP database: master data, purchase-to-pay records and service tickets.

Invoice lines come from this module; master data, purchase orders, goods
receipts, blocks, payments and tickets from erp_master_data, erp_processes
and erp_tickets, drawn from a second random stream.

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
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from sqlalchemy import Engine, insert
from tqdm.auto import tqdm

from pipeline.erp_master_data import (add_vendor_details, make_company_codes, make_cost_centers, make_customers,
                                      make_materials)
from pipeline.erp_processes import simulate_purchase_to_pay
from pipeline.erp_schema import (TABLES, company_codes, cost_centers, customers, gl_accounts, goods_receipts,
                                 invoice_lines, invoices, material_groups, materials, metadata, payments,
                                 purchase_order_items, purchase_orders, tickets, vendors)
from pipeline.erp_tickets import simulate_tickets

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

# The rest of the chart of accounts: rarely or never booked from invoices.
TAIL_ACCOUNTS = {
    "400100": "Bank charges", "400200": "Insurance premiums", "642000": "Customs and duties",
    "652000": "Memberships and subscriptions", "600100": "Rent and leases", "600200": "Vehicle costs",
    "655000": "Audit and tax advisory", "671000": "Entertainment and gifts", "672000": "Donations",
    "673000": "Fines and penalties", "674000": "Research and development services",
    "675000": "Temporary staff", "676000": "Recruitment fees", "677000": "Postage",
}
# A long tail of rare labels: a few lines go to tail accounts, with wording that names them.
RARE_ACCOUNT_RATE = 0.005
RARE_ACCOUNT_WORDING = {
    "400100": ("bank charges Q", "account maintenance fee", "Kontofuehrungsgebuehr"),
    "400200": ("insurance premium fleet", "liability insurance renewal", "prime assurance"),
    "642000": ("import duty", "customs duty DE", "Einfuhrzoll"),
    "652000": ("chamber of commerce membership", "association fee annual", "Mitgliedsbeitrag"),
}
# Drift: an account renamed at the start of the last fiscal year (id, former name).
RENAMED_ACCOUNT = ("613000", "IT services")
# Drift: catalogue items that only appear in the last fiscal year.
NEW_ITEMS = {
    "software": ("Copilot seats", "GenAI API credits"),
    "it_hardware": ("AI workstation GPU",),
    "it_services": ("LLM hosting",),
}
# Share of vendors onboarded during the simulated years instead of before them.
NEWCOMER_VENDOR_SHARE = 0.25

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


def _describe(rng: np.random.Generator, group: MaterialGroup, items: tuple[str, ...], quantity: float,
              unit: str, month: str) -> tuple[str, str]:
    """Write a line description the way clerks type it; return it and the catalogue item behind it."""
    if rng.random() < 0.10:
        text = str(rng.choice(group.foreign_items))
    else:
        text = str(rng.choice(items))
    item = text

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
    return text, item


def _account_for(group: MaterialGroup, amount: float) -> str:
    if group.name == "it_hardware" and amount >= CAPITALISATION_THRESHOLD:
        return "150200"
    return group.account


def _active_vendor_weights(vendor_rows: list[dict], activity: np.ndarray, year: int) -> np.ndarray:
    """Return invoice shares over the vendors onboarded before `year` starts."""
    active = np.array([vendor["onboarded_on"].year < year for vendor in vendor_rows])
    weights = activity * active
    return weights / weights.sum()


def _iter_invoices(rng: np.random.Generator, vendor_rows: list[dict], n_invoices: int, fiscal_years: list[int],
                   chunk_invoices: int) -> Iterator[tuple[list[dict], list[dict]]]:
    """Yield invoices and their lines in chunks of chunk_invoices, so memory stays bounded at any size.

    Lines carry the keys _group and _item (material group and catalogue item),
    which the purchase-to-pay simulation reads and the database never stores.
    """
    groups = {group.name: group for group in GROUPS}
    account_ids = list(ACCOUNTS)

    # Vendors get a Zipf-like share of invoices: a few suppliers send most of them.
    activity = rng.pareto(1.2, size=len(vendor_rows)) + 0.1
    weights_by_year = {year: _active_vendor_weights(vendor_rows, activity, year) for year in fiscal_years}

    start = dt.date(min(fiscal_years), 1, 1)
    n_days = (dt.date(max(fiscal_years), 12, 31) - start).days + 1
    last_year = max(fiscal_years)

    invoice_rows, line_rows = [], []
    for index in range(n_invoices):
        posting_date = start + dt.timedelta(days=int(rng.integers(0, n_days)))
        weights = weights_by_year.get(posting_date.year, weights_by_year[last_year])
        vendor = vendor_rows[int(rng.choice(len(vendor_rows), p=weights))]
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

            item = None
            if rng.random() < GENERIC_RATE:
                description = str(rng.choice(GENERIC_WORDING))
            else:
                # Drift: some catalogue items only exist in the last fiscal year.
                items = group.items + NEW_ITEMS.get(group.name, ()) if posting_date.year == last_year \
                    else group.items
                description, item = _describe(rng, group, items, quantity, unit, month)

            account = _account_for(group, amount)
            if rng.random() < RARE_ACCOUNT_RATE:
                account, description = _rare_account_line(rng)
                item = None
            elif rng.random() < MISCODING_RATE:
                account = str(rng.choice(account_ids))

            line_rows.append({
                "line_id": f"{invoice_id}-{line_no:03d}",
                "invoice_id": invoice_id,
                "line_no": line_no,
                "description": description,
                "quantity": quantity,
                "amount": amount,
                "gl_account_id": account,
                "material_id": None,
                "_group": group.name,
                "_item": item,
            })
        if len(invoice_rows) >= chunk_invoices:
            yield invoice_rows, line_rows
            invoice_rows, line_rows = [], []
    if invoice_rows:
        yield invoice_rows, line_rows


def _rare_account_line(rng: np.random.Generator) -> tuple[str, str]:
    account = str(rng.choice(list(RARE_ACCOUNT_WORDING)))
    description = str(rng.choice(RARE_ACCOUNT_WORDING[account]))
    if rng.random() < 0.3:
        description = description.upper()
    return account, description


def _account_rows(fiscal_years: list[int]) -> list[dict]:
    rows = []
    for account_id, name in {**ACCOUNTS, **TAIL_ACCOUNTS}.items():
        rows.append({"account_id": account_id, "name": name, "former_name": None, "renamed_on": None,
                     "account_type": "asset" if account_id.startswith("1") else "expense"})
    # Drift: one account was renamed at the start of the last fiscal year.
    if len(fiscal_years) > 1:
        renamed = next(row for row in rows if row["account_id"] == RENAMED_ACCOUNT[0])
        renamed["former_name"] = RENAMED_ACCOUNT[1]
        renamed["renamed_on"] = dt.date(max(fiscal_years), 1, 1)
    return rows


def _insert(connection, table, rows: list[dict], chunk_size: int) -> None:
    columns = set(table.columns.keys())
    for offset in range(0, len(rows), chunk_size):
        batch = [{key: value for key, value in row.items() if key in columns}
                 for row in rows[offset:offset + chunk_size]]
        if batch:
            connection.execute(insert(table), batch)


def generate_erp(engine: Engine, n_invoices: int, seed: int, fiscal_years: list[int],
                 chunk_size: int = 20000) -> dict[str, int]:
    """Create the ERP tables in `engine`'s database and fill them; returns row counts.

    Existing tables of the same names are dropped first. Invoices are generated
    and inserted chunk_size at a time, each chunk in its own transaction.
    """
    fiscal_years = sorted(int(year) for year in fiscal_years)
    rng = np.random.default_rng(seed)
    # A second stream for master data and processes, so their draws never shift
    # the invoice lines that carry the GL-account labels.
    process_rng = np.random.default_rng([seed, 1])

    n_vendors = max(30, n_invoices // 40)
    vendor_rows = _make_vendors(rng, n_vendors)
    add_vendor_details(process_rng, vendor_rows, fiscal_years, NEWCOMER_VENDOR_SHARE)
    vendors_by_id = {vendor["vendor_id"]: vendor for vendor in vendor_rows}
    group_rows, material_rows, material_index = make_materials(GROUPS, NEW_ITEMS)
    master = {
        company_codes: make_company_codes(),
        gl_accounts: _account_rows(fiscal_years),
        material_groups: group_rows,
        materials: material_rows,
        cost_centers: make_cost_centers(),
        vendors: vendor_rows,
        customers: make_customers(process_rng, max(20, n_invoices // 100), SYLLABLES, LEGAL_FORMS, COUNTRIES),
    }

    metadata.drop_all(engine, tables=list(reversed(TABLES)))
    metadata.create_all(engine, tables=list(TABLES))
    counts = {table.name: 0 for table in TABLES}
    with engine.begin() as connection:
        for table, rows in master.items():
            _insert(connection, table, rows, chunk_size)
            counts[table.name] = len(rows)

    chunks = _iter_invoices(rng, vendor_rows, n_invoices, fiscal_years, chunk_size)
    progress = tqdm(total=n_invoices, desc="simulate invoices", unit=" invoices", mininterval=5)
    for invoice_rows, line_rows in chunks:
        for line in line_rows:
            line["material_id"] = material_index.get((line["_group"], line["_item"]))
        process_rows = simulate_purchase_to_pay(process_rng, invoice_rows, line_rows, vendors_by_id,
                                                material_index, fiscal_years)
        amounts = {payment["invoice_id"]: payment["amount"] for payment in process_rows["payments"]}
        process_rows["tickets"] = simulate_tickets(process_rng, invoice_rows, vendors_by_id, amounts,
                                                   counts["tickets"] + 1)
        process_rows["invoices"] = invoice_rows
        process_rows["invoice_lines"] = line_rows

        # Parents before children, so servers that enforce foreign keys accept each insert.
        with engine.begin() as connection:
            for table in (purchase_orders, purchase_order_items, goods_receipts, invoices, invoice_lines,
                          payments, tickets):
                _insert(connection, table, process_rows[table.name], chunk_size)
                counts[table.name] += len(process_rows[table.name])
        progress.update(len(invoice_rows))
    progress.close()
    log.info("Simulated ERP written: %s", counts)
    return counts
