"""Benchmark extract: simulate an ERP of a given size, then time its extraction and record peak memory.

The simulated database is written first (timed apart); extraction then runs in
a child process, so its peak resident set size (RSS) excludes the simulator.

Usage:
    python benchmarks/extract_benchmark.py --backend sqlite --lines 1000000 --workdir /tmp/bench
    python benchmarks/extract_benchmark.py --backend postgresql --lines 1000000 --workdir /tmp/bench

PostgreSQL runs against a new database on the server named by --server-url,
dropped at the end. Prints one JSON object per run.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import resource
import subprocess
import sys
import time
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from pipeline.erp_simulator import generate_erp  # noqa: E402

# Each invoice has 3 lines on average (1 to 5, uniform).
LINES_PER_INVOICE = 3
FISCAL_YEARS = [2023, 2024, 2025]

CHILD = """
import json, sys, time
from pathlib import Path
from omegaconf import OmegaConf
from pipeline.compose_params import compose_config
from pipeline.extract import extract
cfg = compose_config(["source=database"])
OmegaConf.update(cfg, "source.url", sys.argv[1])
OmegaConf.update(cfg, "source.chunk_size", int(sys.argv[3]))
OmegaConf.update(cfg, "source.max_quarantine_share", 0.0)
started = time.perf_counter()
reports = extract(cfg, Path(sys.argv[2]) / "extracted", Path(sys.argv[2]) / "extract.json")
print(json.dumps({"seconds": time.perf_counter() - started, "reports": reports}))
"""


def _simulate(url, n_invoices: int, seed: int) -> float:
    engine = create_engine(url)
    started = time.perf_counter()
    generate_erp(engine, n_invoices, seed, FISCAL_YEARS)
    engine.dispose()
    return time.perf_counter() - started


def _extract_in_child(url: str, workdir: Path, chunk_size: int) -> tuple[dict, float]:
    """Run extract in a child process; return its output and the child's peak RSS in MiB."""
    env = {"ERP_PSEUDONYM_KEY": "benchmark-key-not-a-secret", "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-c", CHILD, url, str(workdir), str(chunk_size)],
                            cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"extract failed:\n{result.stderr[-4000:]}")
    # ru_maxrss is in KiB on Linux.
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return json.loads(result.stdout.strip().splitlines()[-1]), peak_mib


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), required=True)
    parser.add_argument("--lines", type=int, default=1_000_000, help="invoice lines to simulate (about)")
    parser.add_argument("--workdir", type=Path, required=True, help="folder for the database and outputs")
    parser.add_argument("--chunk-size", type=int, default=50_000, help="rows per read (source.chunk_size)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--reuse", action="store_true",
                        help="sqlite only: extract the database already in --workdir instead of simulating it")
    parser.add_argument("--server-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test",
                        help="PostgreSQL server to create the benchmark database on")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    args.workdir.mkdir(parents=True, exist_ok=True)
    n_invoices = args.lines // LINES_PER_INVOICE

    admin = None
    if args.backend == "sqlite":
        url = f"sqlite:///{args.workdir / 'erp.sqlite'}"
    else:
        name = f"erp_bench_{uuid.uuid4().hex[:8]}"
        admin = create_engine(args.server_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f"CREATE DATABASE {name}"))
        url = admin.url.set(database=name).render_as_string(hide_password=False)
    try:
        simulate_seconds = None
        if not (args.reuse and args.backend == "sqlite" and (args.workdir / "erp.sqlite").is_file()):
            simulate_seconds = round(_simulate(url, n_invoices, args.seed), 1)
        output, peak_mib = _extract_in_child(url, args.workdir, args.chunk_size)
    finally:
        if admin is not None:
            with admin.connect() as connection:
                connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            admin.dispose()

    reports = output["reports"]
    rows = sum(report["read"] for report in reports.values())
    print(json.dumps({
        "backend": args.backend,
        "invoice_lines": reports["invoice_lines"]["read"],
        "rows_all_tables": rows,
        "simulate_seconds": simulate_seconds,
        "extract_seconds": round(output["seconds"], 1),
        "rows_per_second": round(rows / output["seconds"]),
        "invoice_lines_per_second": round(reports["invoice_lines"]["read"] / output["seconds"]),
        "peak_rss_mib": round(peak_mib),
        "quarantined": sum(report["quarantined"] for report in reports.values()),
        "chunk_size": args.chunk_size,
        "python": platform.python_version(),
        "cpu": platform.processor() or platform.machine(),
    }))


if __name__ == "__main__":
    main()
