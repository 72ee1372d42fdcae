"""Extract the same simulated ERP from SQLite, PostgreSQL and MariaDB over real connections.

The servers are the ones at 127.0.0.1:5432 (PostgreSQL, user postgres) and
127.0.0.1:3306 (MariaDB, user root). Each test creates its own database and
drops it afterwards. An unreachable server skips its tests, unless
ERP_REQUIRE_DATABASES=1 (set by .ci/run) turns the skip into a failure.
"""

from __future__ import annotations

import hashlib
import logging
import os
import uuid

import pyarrow.parquet as pq
import pytest
from omegaconf import OmegaConf
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from pipeline.erp_schema import TABLES
from pipeline.erp_simulator import generate_erp
from pipeline.extract import ExtractError, extract

SERVERS = {
    "postgresql": os.environ.get("ERP_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"),
    "mariadb": os.environ.get("ERP_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test"),
}
N_INVOICES = 150


@pytest.fixture(autouse=True)
def pseudonym_key(monkeypatch):
    """A key for the personal-data columns, which a source other than the simulator requires."""
    monkeypatch.setenv("ERP_PSEUDONYM_KEY", "test-key-not-a-secret")


def _unreachable(reason: str):
    if os.environ.get("ERP_REQUIRE_DATABASES") == "1":
        pytest.fail(f"{reason}, and ERP_REQUIRE_DATABASES=1 requires it")
    pytest.skip(reason)


@pytest.fixture(params=sorted(SERVERS))
def server_url(request):
    """A fresh, uniquely named database on one server, dropped after the test."""
    admin_url = SERVERS[request.param]
    name = f"erp_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            if request.param == "mariadb":
                connection.execute(text(f"CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"))
            else:
                connection.execute(text(f"CREATE DATABASE {name}"))
    except OperationalError as error:
        admin.dispose()
        _unreachable(f"{request.param} at {admin.url.render_as_string(hide_password=True)} "
                     f"is not reachable: {error.orig}")

    url = admin.url.set(database=name)
    if request.param == "mariadb":
        url = url.update_query_dict({"charset": "utf8mb4"})
    try:
        yield request.param, url
    finally:
        with admin.connect() as connection:
            if request.param == "postgresql":
                connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            else:
                connection.execute(text(f"DROP DATABASE IF EXISTS {name}"))
        admin.dispose()


def _load(url, cfg) -> None:
    engine = create_engine(url)
    try:
        generate_erp(engine, N_INVOICES, int(cfg.seed), list(cfg.source.fiscal_years))
    finally:
        engine.dispose()


def _database_config(cfg, url):
    cfg = OmegaConf.create(OmegaConf.to_container(cfg))
    cfg.source.kind = "database"
    cfg.source.url = url.render_as_string(hide_password=False)
    cfg.source.chunk_size = 100
    return cfg


def _content_hash(folder) -> dict[str, str]:
    """SHA-256 of each table's rows as Arrow serialises them, independent of Parquet file metadata."""
    hashes = {}
    for table in TABLES:
        path = folder / f"{table.name}.parquet"
        if not path.exists():
            continue
        data = pq.read_table(path)
        digest = hashlib.sha256(str(data.schema).encode())
        for batch in data.to_batches():
            for column in batch.columns:
                digest.update(str(column.to_pylist()).encode())
        hashes[table.name] = digest.hexdigest()
    return hashes


def _sqlite_extract(small_config, tmp_path):
    sqlite_url = create_engine(f"sqlite:///{tmp_path / 'erp.sqlite'}").url
    _load(sqlite_url, small_config)
    cfg = _database_config(small_config, sqlite_url)
    reports = extract(cfg, tmp_path / "from_sqlite", tmp_path / "sqlite.json")
    return reports, _content_hash(tmp_path / "from_sqlite")


def test_server_extract_matches_sqlite(small_config, tmp_path, server_url):
    kind, url = server_url
    sqlite_reports, sqlite_hashes = _sqlite_extract(small_config, tmp_path)
    _load(url, small_config)

    reports = extract(_database_config(small_config, url), tmp_path / kind, tmp_path / f"{kind}.json")

    assert reports == sqlite_reports
    assert _content_hash(tmp_path / kind) == sqlite_hashes
    assert reports["invoices"]["written"] == N_INVOICES
    assert all(report["quarantined"] == 0 for report in reports.values())


def test_server_quarantines_bad_rows(small_config, tmp_path, server_url):
    kind, url = server_url
    _load(url, small_config)
    engine = create_engine(url)
    with engine.begin() as connection:
        # Lines pointing at a missing invoice are orphans; the servers enforce the
        # foreign key, so it is dropped first, as in an export without constraints.
        if kind == "postgresql":
            connection.execute(text("ALTER TABLE invoice_lines DROP CONSTRAINT invoice_lines_invoice_id_fkey"))
        else:
            name = connection.execute(text(
                "SELECT constraint_name FROM information_schema.referential_constraints "
                "WHERE constraint_schema = DATABASE() AND table_name = 'invoice_lines' "
                "AND referenced_table_name = 'invoices'")).scalar_one()
            connection.execute(text(f"ALTER TABLE invoice_lines DROP FOREIGN KEY {name}"))
        connection.execute(text(
            "UPDATE invoice_lines SET invoice_id = 'INV-MISSING' WHERE line_id = 'INV000000001-001'"))
    engine.dispose()

    reports = extract(_database_config(small_config, url), tmp_path / "out", tmp_path / "out.json")

    assert reports["invoice_lines"]["quarantine_reasons"] == {"orphan_invoice_id": 1}
    assert reports["invoice_lines"]["read"] == reports["invoice_lines"]["written"] + 1


def test_server_hostile_table_name(small_config, tmp_path, server_url):
    kind, url = server_url
    _load(url, small_config)
    cfg = _database_config(small_config, url)
    OmegaConf.update(cfg, "source.tables", {"invoices": "invoices; DROP TABLE vendors; --"}, merge=True)

    with pytest.raises(ExtractError, match="'invoices; DROP TABLE vendors; --' not found"):
        extract(cfg, tmp_path / "out", tmp_path / "out.json")
    engine = create_engine(url)
    with engine.connect() as connection:
        vendors = connection.execute(text("SELECT COUNT(*) FROM vendors")).scalar_one()
    engine.dispose()
    assert vendors > 0


def test_server_password_kept_out_of_logs(small_config, tmp_path, server_url, monkeypatch, caplog):
    kind, url = server_url
    if kind == "mariadb":
        pytest.skip("root on the test MariaDB has an empty password, so the server rejects any other")
    _load(url, small_config)
    cfg = _database_config(small_config, url)
    # Trust authentication ignores the password, so the whole extract runs with one set.
    cfg.source.url = url.set(password="{password}").render_as_string(hide_password=False)
    monkeypatch.setenv("ERP_DB_PASSWORD", "hunter2-secret")
    caplog.set_level(logging.DEBUG)

    reports = extract(cfg, tmp_path / "out", tmp_path / "out.json")

    assert reports["invoices"]["written"] == N_INVOICES
    assert f"Extracting from postgresql+psycopg://postgres:***@127.0.0.1:5432/{url.database}" in caplog.text
    assert "hunter2-secret" not in caplog.text
    assert "hunter2-secret" not in (tmp_path / "out.json").read_text()
