"""Relational schema of the ERP records the pipeline reads, as SQLAlchemy tables.

The simulator creates these tables; extract checks a database against them, so
the same definitions serve SQLite, PostgreSQL and MariaDB. Columns added to the
four core tables after the first release are nullable, so a company source
without them still extracts (they arrive as nulls).
"""

from sqlalchemy import Column, Date, ForeignKey, Integer, MetaData, Numeric, String, Table, Text

metadata = MetaData()

company_codes = Table(
    "company_codes",
    metadata,
    Column("company_code", String(4), primary_key=True),
    Column("name", String(80), nullable=False),
    Column("country", String(2), nullable=False),
    Column("currency", String(3), nullable=False),
)

gl_accounts = Table(
    "gl_accounts",
    metadata,
    Column("account_id", String(10), primary_key=True),
    Column("name", String(80), nullable=False),
    Column("account_type", String(20), nullable=False),
    # Drift: an account renamed during the simulated years keeps its id.
    Column("former_name", String(80)),
    Column("renamed_on", Date),
)

vendors = Table(
    "vendors",
    metadata,
    Column("vendor_id", String(12), primary_key=True),
    Column("name", String(120), nullable=False),
    Column("industry", String(40), nullable=False),
    Column("country", String(2), nullable=False),
    Column("payment_terms_days", Integer, nullable=False),
    # Share of deliveries on time and at the agreed price, from 0 to 1.
    Column("reliability", Numeric(4, 3)),
    Column("onboarded_on", Date),
    Column("contact_name", String(80)),
    Column("contact_email", String(120)),
    Column("phone", String(40)),
    Column("iban", String(34)),
)

material_groups = Table(
    "material_groups",
    metadata,
    Column("group_id", String(20), primary_key=True),
    Column("name", String(60), nullable=False),
    Column("default_account_id", String(10), ForeignKey("gl_accounts.account_id"), nullable=False),
)

materials = Table(
    "materials",
    metadata,
    Column("material_id", String(10), primary_key=True),
    Column("description", String(120), nullable=False),
    Column("group_id", String(20), ForeignKey("material_groups.group_id"), nullable=False),
    Column("unit", String(10), nullable=False),
    Column("standard_price", Numeric(12, 2), nullable=False),
    # 1 for services, which are invoiced without a goods receipt.
    Column("is_service", Integer, nullable=False),
)

cost_centers = Table(
    "cost_centers",
    metadata,
    Column("cost_center_id", String(12), primary_key=True),
    Column("company_code", String(4), ForeignKey("company_codes.company_code"), nullable=False),
    Column("department", String(20), nullable=False),
    Column("name", String(80), nullable=False),
)

customers = Table(
    "customers",
    metadata,
    Column("customer_id", String(12), primary_key=True),
    Column("name", String(120), nullable=False),
    Column("country", String(2), nullable=False),
    Column("contact_name", String(80)),
    Column("contact_email", String(120)),
)

purchase_orders = Table(
    "purchase_orders",
    metadata,
    Column("po_id", String(14), primary_key=True),
    Column("vendor_id", String(12), ForeignKey("vendors.vendor_id"), nullable=False),
    Column("company_code", String(4), nullable=False),
    Column("order_date", Date, nullable=False),
    Column("buyer_name", String(80)),
)

purchase_order_items = Table(
    "purchase_order_items",
    metadata,
    Column("po_item_id", String(18), primary_key=True),
    Column("po_id", String(14), ForeignKey("purchase_orders.po_id"), nullable=False),
    Column("item_no", Integer, nullable=False),
    Column("material_id", String(10), ForeignKey("materials.material_id")),
    Column("quantity", Numeric(12, 3), nullable=False),
    Column("unit_price", Numeric(14, 4), nullable=False),
)

goods_receipts = Table(
    "goods_receipts",
    metadata,
    Column("receipt_id", String(20), primary_key=True),
    Column("po_item_id", String(18), ForeignKey("purchase_order_items.po_item_id"), nullable=False),
    Column("receipt_date", Date, nullable=False),
    Column("quantity", Numeric(12, 3), nullable=False),
)

invoices = Table(
    "invoices",
    metadata,
    Column("invoice_id", String(14), primary_key=True),
    Column("vendor_id", String(12), ForeignKey("vendors.vendor_id"), nullable=False),
    Column("company_code", String(4), nullable=False),
    Column("posting_date", Date, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("po_id", String(14), ForeignKey("purchase_orders.po_id")),
    Column("invoice_date", Date),
    Column("due_date", Date),
    # Label: 1 when the invoice is blocked for payment, with the reason
    # (price_variance, quantity_variance) or null.
    Column("blocked", Integer),
    Column("block_reason", String(30)),
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
    Column("material_id", String(10), ForeignKey("materials.material_id")),
    Column("po_item_id", String(18), ForeignKey("purchase_order_items.po_item_id")),
    Column("cost_center_id", String(12), ForeignKey("cost_centers.cost_center_id")),
)

payments = Table(
    "payments",
    metadata,
    Column("payment_id", String(14), primary_key=True),
    Column("invoice_id", String(14), ForeignKey("invoices.invoice_id"), nullable=False),
    Column("due_date", Date, nullable=False),
    # Null while the invoice is still open at the end of the simulated years.
    Column("paid_date", Date),
    Column("amount", Numeric(14, 2), nullable=False),
    Column("method", String(20), nullable=False),
)

tickets = Table(
    "tickets",
    metadata,
    Column("ticket_id", String(12), primary_key=True),
    Column("created_on", Date, nullable=False),
    Column("requester_name", String(80)),
    Column("requester_email", String(120)),
    Column("title", String(200), nullable=False),
    Column("body", Text, nullable=False),
    Column("vendor_id", String(12), ForeignKey("vendors.vendor_id")),
    Column("invoice_id", String(14), ForeignKey("invoices.invoice_id")),
    # Label: the team that resolved the ticket.
    Column("resolving_team", String(30), nullable=False),
)

# Tables in load order, parents before children.
TABLES = (company_codes, gl_accounts, material_groups, materials, cost_centers, vendors, customers,
          purchase_orders, purchase_order_items, goods_receipts, invoices, invoice_lines, payments, tickets)

# Tables every source must have; the others are extracted when present.
REQUIRED_TABLES = ("gl_accounts", "vendors", "invoices", "invoice_lines")
