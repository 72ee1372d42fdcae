"""Simulated master data around the invoices: company codes, cost centers, materials, customers, contacts.

Drawn from their own random stream, so adding a column here never changes the
invoice lines and their GL-account labels.
"""

from __future__ import annotations

import datetime as dt

import numpy as np

COMPANY_CODES = {
    "1000": ("Nordwerk Industrie GmbH", "DE", "EUR"),
    "2000": ("Nordwerk France SAS", "FR", "EUR"),
    "3000": ("Nordwerk Iberia SL", "ES", "EUR"),
}

DEPARTMENTS = {
    "ADMIN": "Administration", "IT": "IT operations", "PROD": "Production", "LOG": "Logistics",
    "SALES": "Sales", "MKT": "Marketing", "FAC": "Facility management", "HR": "Human resources",
    "LEGAL": "Legal", "PURCH": "Purchasing",
}

# The department that usually books a material group; the rest go to a random one.
GROUP_DEPARTMENTS = {
    "office": "ADMIN", "it_hardware": "IT", "software": "IT", "it_services": "IT", "raw_materials": "PROD",
    "packaging": "LOG", "maintenance": "PROD", "spare_parts": "PROD", "travel": "SALES", "freight": "LOG",
    "consulting": "ADMIN", "legal": "LEGAL", "utilities": "FAC", "telecom": "IT", "marketing": "MKT",
    "facility": "FAC", "training": "HR",
}
COST_CENTER_RULE_SHARE = 0.85

# Material groups bought as services: invoiced without a goods receipt.
SERVICE_GROUPS = {"software", "it_services", "maintenance", "travel", "freight", "consulting", "legal",
                  "utilities", "telecom", "marketing", "facility", "training"}

FIRST_NAMES = ("Anna", "Lukas", "Marie", "Jonas", "Sofia", "Paul", "Lea", "Elias", "Camille", "Hugo",
               "Lucía", "Mateo", "Chloé", "Nils", "Emma", "Jan", "Zoé", "Pablo", "Greta", "Tomás")
LAST_NAMES = ("Müller", "Schmidt", "Dubois", "García", "Fischer", "Weber", "Martin", "López", "Becker",
              "Wagner", "Bernard", "Fernández", "Hoffmann", "Petit", "Schulz", "Moreau", "Ruiz", "Koch")
IBAN_PREFIX = {"DE": 22, "FR": 27, "ES": 24, "GB": 22, "NL": 18, "IT": 27, "US": 0, "PL": 28}


def cost_center_id(company_code: str, department: str) -> str:
    return f"CC{company_code}-{department}"


def make_company_codes() -> list[dict]:
    return [{"company_code": code, "name": name, "country": country, "currency": currency}
            for code, (name, country, currency) in COMPANY_CODES.items()]


def make_cost_centers() -> list[dict]:
    return [{"cost_center_id": cost_center_id(code, department), "company_code": code,
             "department": department, "name": f"{name} {COMPANY_CODES[code][1]}"}
            for code in COMPANY_CODES for department, name in DEPARTMENTS.items()]


def make_materials(groups, new_items: dict[str, tuple[str, ...]]) -> tuple[list[dict], list[dict], dict]:
    """Build material groups and one material per catalogue item; return rows and an (group, item) index."""
    group_rows, material_rows, index = [], [], {}
    for group in groups:
        group_rows.append({"group_id": group.name, "name": group.name.replace("_", " ").capitalize(),
                           "default_account_id": group.account})
        items = group.items + group.foreign_items + new_items.get(group.name, ())
        for item in items:
            material_id = f"M{len(material_rows) + 1:06d}"
            index[(group.name, item)] = material_id
            material_rows.append({
                "material_id": material_id, "description": item, "group_id": group.name,
                "unit": group.units[0], "standard_price": round(group.median_unit_price, 2),
                "is_service": int(group.name in SERVICE_GROUPS),
            })
    return group_rows, material_rows, index


def person_name(rng: np.random.Generator) -> str:
    return f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"


def email_for(name: str, domain: str) -> str:
    ascii_name = name.lower().translate(str.maketrans("äöüéèóíáñç", "aoueeoianc")).replace(" ", ".")
    return f"{ascii_name}@{domain}"


def _domain(company_name: str) -> str:
    return company_name.split()[0].lower() + ".example"


def _iban(rng: np.random.Generator, country: str) -> str | None:
    length = IBAN_PREFIX.get(country, 0)
    if not length:
        return None
    digits = "".join(str(digit) for digit in rng.integers(0, 10, size=length - 2))
    return f"{country}{digits}"


def add_vendor_details(rng: np.random.Generator, vendor_rows: list[dict], fiscal_years: list[int],
                       newcomer_share: float) -> None:
    """Add reliability, onboarding date and contact data (personal data) to each vendor in place.

    A share of vendors is onboarded during the simulated years, not before them,
    so the vendor mix drifts from year to year.
    """
    first_year = min(fiscal_years)
    later_years = [year for year in fiscal_years if year > first_year]
    for vendor in vendor_rows:
        onboarded_year = first_year
        if later_years and rng.random() < newcomer_share:
            onboarded_year = int(rng.choice(later_years))
        # Onboarded in the weeks before the year in which it first invoices.
        vendor["onboarded_on"] = dt.date(onboarded_year, 1, 1) - dt.timedelta(days=int(rng.integers(1, 60)))
        vendor["reliability"] = round(float(rng.beta(8, 1.5)), 3)
        contact = person_name(rng)
        vendor["contact_name"] = contact
        vendor["contact_email"] = email_for(contact, _domain(vendor["name"]))
        vendor["phone"] = f"+{int(rng.integers(30, 50))} {int(rng.integers(100, 999))} {int(rng.integers(1000000, 9999999))}"
        vendor["iban"] = _iban(rng, vendor["country"])


def make_customers(rng: np.random.Generator, n_customers: int, syllables, legal_forms, countries) -> list[dict]:
    rows = []
    for index in range(n_customers):
        name = f"{''.join(rng.choice(syllables, size=2)).capitalize()} {rng.choice(legal_forms)}"
        contact = person_name(rng)
        rows.append({"customer_id": f"C{index + 1:06d}", "name": name, "country": str(rng.choice(countries)),
                     "contact_name": contact, "contact_email": email_for(contact, _domain(name))})
    return rows


def pick_cost_center(rng: np.random.Generator, company_code: str, group_name: str) -> str:
    if rng.random() < COST_CENTER_RULE_SHARE:
        department = GROUP_DEPARTMENTS[group_name]
    else:
        department = str(rng.choice(list(DEPARTMENTS)))
    return cost_center_id(company_code, department)
