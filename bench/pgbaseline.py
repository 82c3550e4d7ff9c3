"""The write baseline: pgbench, single-row INSERT transactions, on the same cluster and run."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
from harness import CpuMeter, CpuSplit

SCRIPT = "INSERT INTO bench_t (v) VALUES (1);\n"


def pgbench_path() -> str:
    found = shutil.which("pgbench")
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/pgbench"))
    if not candidates:
        raise RuntimeError("pgbench not found (Debian package postgresql-client / postgresql)")
    return str(candidates[-1])


@dataclass(frozen=True)
class PgbenchResult:
    tps: float
    transactions: int
    latency_ms: float
    cpu: CpuSplit


def run_pgbench(
    url: str, *, clients: int, threads: int, seconds: int, postgres_pid: int | None
) -> PgbenchResult:
    """``INSERT INTO bench_t(v) VALUES (1)`` (a bigserial key, like the events table), fsync on."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_t")
        conn.execute("CREATE TABLE bench_t (id BIGSERIAL PRIMARY KEY, v INTEGER NOT NULL)")
        fsync = conn.execute("SHOW fsync").fetchone()
        if fsync is None or fsync[0] != "on":
            raise RuntimeError("the baseline needs fsync on")
    parts = urlsplit(url)
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as script:
        script.write(SCRIPT)
    args = [
        pgbench_path(),
        "-n",
        "-f",
        script.name,
        "-c",
        str(clients),
        "-j",
        str(threads),
        "-T",
        str(seconds),
        "-h",
        parts.hostname or "127.0.0.1",
        "-p",
        str(parts.port or 5432),
        "-U",
        parts.username or "postgres",
        parts.path.lstrip("/"),
    ]
    meter = CpuMeter(postgres_pid=postgres_pid, loadgen=False, child_process=True)
    try:
        with meter.window() as cpu:
            done = subprocess.run(args, capture_output=True, text=True, timeout=seconds + 120)
    finally:
        Path(script.name).unlink(missing_ok=True)
    if done.returncode != 0:
        raise RuntimeError(f"pgbench failed: {done.stderr.strip()[-500:]}")
    tps = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", done.stdout)
    count = re.search(r"number of transactions actually processed: (\d+)", done.stdout)
    latency = re.search(r"latency average = ([0-9.]+) ms", done.stdout)
    if tps is None or count is None:
        raise RuntimeError(f"cannot read pgbench's output:\n{done.stdout}")
    return PgbenchResult(
        tps=float(tps.group(1)),
        transactions=int(count.group(1)),
        latency_ms=float(latency.group(1)) if latency else float("nan"),
        cpu=cpu,
    )
