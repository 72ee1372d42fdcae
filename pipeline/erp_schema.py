"""Relational schema of the ERP records the pipeline reads, as SQLAlchemy tables.

The simulator creates these tables; extract checks a database against them, so
the same definitions serve SQLite, PostgreSQL and MariaDB.
"""

from sqlalchemy import Column, Date, ForeignKey, Integer, MetaData, Numeric, String, Table

metadata = MetaData()

gl_accounts = Table(
    "gl_accounts",
    metadata,
    Column("account_id", String(10), primary_key=True),
    Column("name", String(80), nullable=False),
    Column("account_type", String(20), nullable=False),
)

vendors = Table(
    "vendors",
    metadata,
    Column("vendor_id", String(12), primary_key=True),
    Column("name", String(120), nullable=False),
    Column("industry", String(40), nullable=False),
    Column("country", String(2), nullable=False),
    Column("payment_terms_days", Integer, nullable=False),
)

invoices = Table(
    "invoices",
    metadata,
    Column("invoice_id", String(14), primary_key=True),
    Column("vendor_id", String(12), ForeignKey("vendors.vendor_id"), nullable=False),
    Column("company_code", String(4), nullable=False),
    Column("posting_date", Date, nullable=False),
    Column("currency", String(3), nullable=False),
)

invoice_lines = Table(
    "invoice_lines",
    metadata,
    Column("line_id", String(20), primary_key=True),
    Column("invoice_id", String(14), ForeignKey("invoices.invoice_id"), nullable=False),
    Column("line_no", Integer, nullable=False),
    Column("description", String(200), nullable=False),
    Column("quantity", Numeric(12, 3), nullable=False),
    Column("amount", Numeric(14, 2), nullable=False),
    Column("gl_account_id", String(10), ForeignKey("gl_accounts.account_id"), nullable=False),
)

# Tables in load order, parents before children.
TABLES = (gl_accounts, vendors, invoices, invoice_lines)

# Tables every source must have; the others are extracted when present.
REQUIRED_TABLES = ("gl_accounts", "vendors", "invoices", "invoice_lines")
