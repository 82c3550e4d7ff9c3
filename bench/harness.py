"""What every benchmark of bench/ shares: databases, the `crm serve` process, CPU clocks, stats.

Nothing here is timed by itself; the benchmarks in :mod:`core` use these pieces.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import math
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import httpx
import psycopg

REPO = Path(__file__).resolve().parent.parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# --- PostgreSQL ------------------------------------------------------------------------------


def database_url(admin_url: str, dbname: str) -> str:
    parts = urlsplit(admin_url)
    return urlunsplit(parts._replace(path=f"/{dbname}"))


def create_database(admin_url: str, dbname: str) -> str:
    """A new, empty database on the benchmark cluster (dropped first if left over)."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{dbname}"')
    return database_url(admin_url, dbname)


def drop_database(admin_url: str, dbname: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


def analyze(url: str) -> None:
    """Fresh planner statistics, as autovacuum would eventually give a long-running server."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


def settle(url: str) -> None:
    """A store at rest after a burst of writes, as a server that has run a while has it:
    vacuumed and analyzed (autovacuum), its dirty pages written out (the checkpointer). Else
    what comes next pays for the burst: the first reader of each new row sets its hint
    bits, and checkpoints flush the burst's pages while it runs."""
    analyze(url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CHECKPOINT")


def postmaster_pid(url: str) -> int | None:
    """The postmaster: the parent of our own backend (None if it cannot be read)."""
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
    assert row is not None
    stat = _proc_stat(int(row[0]))
    return None if stat is None else int(stat[1])


# --- CPU clocks ------------------------------------------------------------------------------


def _proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (index 0 is the state)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()


def process_cpu_seconds(pid: int, *, with_children: bool = False) -> float:
    """user + system CPU seconds of a process (and of its reaped children)."""
    stat = _proc_stat(pid)
    if stat is None:
        return 0.0
    ticks = int(stat[11]) + int(stat[12])  # utime, stime
    if with_children:
        ticks += int(stat[13]) + int(stat[14])  # cutime, cstime
    return ticks / CLOCK_TICKS


def process_tree_cpu_seconds(root: int) -> float:
    """CPU seconds of a process, its reaped children and its live children (PostgreSQL's
    backends come and go: the exited ones are counted in the postmaster's cutime)."""
    total = process_cpu_seconds(root, with_children=True)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        stat = _proc_stat(int(entry.name))
        if stat is not None and int(stat[1]) == root:
            total += process_cpu_seconds(int(entry.name), with_children=True)
    return total


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, over all cores."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    values = [int(v) for v in fields[:8]]
    idle = values[3] + values[4]  # idle, iowait
    return (sum(values) - idle) / CLOCK_TICKS, sum(values) / CLOCK_TICKS


def machine_busy_share(seconds: float) -> float:
    """The share of the machine's CPU in use over the next ``seconds``."""
    busy0, total0 = machine_cpu()
    time.sleep(seconds)
    busy1, total1 = machine_cpu()
    return (busy1 - busy0) / max(total1 - total0, 1e-9)


def wait_for_quiet_machine(
    max_wait: float, say: Callable[[str], object], *, quiet: float = 0.15
) -> float:
    """Wait (at most ``max_wait`` s) until under ``quiet`` of the CPU is busy; return the share."""
    deadline = time.monotonic() + max_wait
    share = machine_busy_share(2.0)
    while share > quiet and time.monotonic() < deadline:
        say(f"machine {100 * share:.0f}% busy with other processes; waiting for it to calm down")
        time.sleep(min(10.0, max(0.0, deadline - time.monotonic())))
        share = machine_busy_share(2.0)
    if share > quiet:
        say(
            f"[yellow]warning: other processes keep {100 * share:.0f}% of the CPU busy; "
            "figures will be low and noisy[/]"
        )
    return share


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass
class CpuSplit:
    """Where the CPU went during a measured window: server, PostgreSQL, load generator."""

    wall: float = 0.0
    server: float | None = None
    postgres: float | None = None
    loadgen: float | None = None
    other_label: str | None = None
    other: float | None = None
    machine_busy: float = 0.0
    machine_total: float = 0.0

    @property
    def others(self) -> float:
        """CPU seconds of processes outside the benchmark (e.g. a test run beside it)."""
        accounted = sum(v for v in (self.server, self.postgres, self.other, self.loadgen) if v)
        return max(0.0, self.machine_busy - accounted)

    def interference(self) -> str:
        """A warning when other processes took a noticeable share of the machine."""
        if not self.machine_total or self.others < 0.05 * self.machine_total:
            return ""
        return f"other processes took {100 * self.others / self.machine_total:.0f}% of the machine"

    def describe(self, loadgen_label: str = "load gen") -> str:
        parts = []
        for label, value in (
            ("server", self.server),
            ("postgres", self.postgres),
            (self.other_label, self.other),
            (loadgen_label, self.loadgen),
        ):
            if label is not None and value is not None:
                parts.append(f"{label} {value:.1f}")
        if self.others > 0.05 * self.machine_total:
            parts.append(f"other processes {self.others:.1f}")
        busy = 100 * self.machine_busy / self.machine_total if self.machine_total else 0.0
        cores = os.cpu_count() or 1
        return (
            f"CPU s in {self.wall:.1f} s × {cores} cores: "
            + ", ".join(parts)
            + f"; machine {busy:.0f}% busy"
        )


class CpuMeter:
    """Samples the CPU clocks of the processes taking part before and after a window."""

    def __init__(
        self,
        *,
        server_pid: int | None = None,
        postgres_pid: int | None = None,
        other: tuple[str, int] | None = None,
        loadgen: bool = True,
        child_process: bool = False,
    ) -> None:
        self.server_pid = server_pid
        self.postgres_pid = postgres_pid
        self.other = other
        self.loadgen = loadgen
        self.child_process = child_process

    def _sample(self) -> dict[str, float]:
        busy, total = machine_cpu()
        sample = {"wall": time.monotonic(), "busy": busy, "total": total}
        if self.server_pid is not None:
            # The tree: `crm serve --workers N` runs its workers as child processes.
            sample["server"] = process_tree_cpu_seconds(self.server_pid)
        if self.postgres_pid is not None:
            sample["postgres"] = process_tree_cpu_seconds(self.postgres_pid)
        if self.other is not None:
            sample["other"] = process_cpu_seconds(self.other[1], with_children=True)
        if self.loadgen:
            sample["loadgen"] = own_cpu_seconds()
        if self.child_process:
            sample["children"] = children_cpu_seconds()
        return sample

    @contextlib.contextmanager
    def window(self) -> Iterator[CpuSplit]:
        split = CpuSplit()
        before = self._sample()
        yield split
        after = self._sample()
        delta = {k: after[k] - before[k] for k in before}
        split.wall = delta["wall"]
        split.machine_busy, split.machine_total = delta["busy"], delta["total"]
        split.server = delta.get("server")
        split.postgres = delta.get("postgres")
        split.loadgen = delta.get("loadgen")
        if self.other is not None:
            split.other_label, split.other = self.other[0], delta.get("other")
        if self.child_process:
            split.other_label, split.other = "pgbench", delta.get("children")


# --- statistics ------------------------------------------------------------------------------


def percentile(values: Sequence[float], fraction: float) -> float:
    """Linear interpolation between closest ranks (like numpy.percentile's default)."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(frozen=True)
class Latency:
    """Latency figures in milliseconds."""

    count: int
    p50: float
    p99: float
    mean: float
    max: float

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Latency:
        ms = [s * 1000 for s in seconds]
        if not ms:
            return cls(0, math.nan, math.nan, math.nan, math.nan)
        return cls(len(ms), percentile(ms, 0.5), percentile(ms, 0.99), sum(ms) / len(ms), max(ms))

    def short(self) -> str:
        return f"p50 {self.p50:.1f} · p99 {self.p99:.1f} · mean {self.mean:.1f} ms"


# --- a light HTTP client ----------------------------------------------------------------------


class HttpError(Exception):
    pass


class KeepAliveClient:
    """One keep-alive HTTP/1.1 connection (stdlib ``http.client``): a load generator that
    costs a fraction of httpx's CPU, which matters when it shares two cores with the server.
    Not thread-safe: one per thread."""

    def __init__(
        self, base_url: str, headers: Mapping[str, str] | None = None, timeout: float = 60.0
    ) -> None:
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.headers = dict(headers or {})
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    def request(
        self, method: str, path: str, body: object = None, params: Mapping[str, str] | None = None
    ) -> tuple[int, bytes]:
        if params:
            path = f"{path}?{urlencode(params)}"
        headers = dict(self.headers)
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self._conn is None:
            self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            self._conn.request(method, path, body=data, headers=headers)
            response = self._conn.getresponse()
            payload = response.read()
        except (http.client.HTTPException, OSError) as error:
            self.close()  # the next request opens a new connection; this one is not retried
            raise HttpError(f"{method} {path}: {error!r}") from error
        if response.will_close:
            self.close()
        return response.status, payload

    def json(
        self,
        method: str,
        path: str,
        body: object = None,
        params: Mapping[str, str] | None = None,
        expect: int = 299,
    ) -> Any:
        status, payload = self.request(method, path, body, params)
        if status > expect:
            raise HttpError(f"{method} {path}: {status} {payload[:300]!r}")
        return json.loads(payload) if payload else None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


# --- the service under test ------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def crm_executable() -> str:
    candidate = Path(sys.executable).parent / "crm"
    return str(candidate) if candidate.exists() else "crm"


@dataclass
class CrmServer:
    """`crm serve` as a subprocess on 127.0.0.1 and a free port, until :meth:`stop`."""

    env: Mapping[str, str]
    log_path: Path
    command: str = "serve"
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, timeout: float = 300.0) -> CrmServer:
        env = {
            **os.environ,
            "CRM_HOST": "127.0.0.1",
            "CRM_PORT": str(self.port),
            "CRM_LOG_LEVEL": "warning",
            **self.env,
        }
        args = [crm_executable(), self.command]
        if self.command == "serve":
            args += ["--host", "127.0.0.1", "--port", str(self.port)]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                args,
                env=env,
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        if self.command == "serve":
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with httpx.Client(base_url=self.base_url, timeout=5.0) as client:
            while time.monotonic() < deadline:
                assert self.process is not None
                if self.process.poll() is not None:
                    raise RuntimeError(
                        f"crm serve exited with {self.process.returncode}; log: {self.log_path}"
                    )
                with contextlib.suppress(httpx.TransportError):
                    if client.get("/healthz").status_code == 200:
                        return
                time.sleep(0.1)
        raise RuntimeError(f"crm serve not ready after {timeout:.0f} s; log: {self.log_path}")

    def health(self) -> dict[str, int]:
        response = httpx.get(f"{self.base_url}/healthz", timeout=10.0)
        response.raise_for_status()
        body: dict[str, int] = response.json()
        return body

    def stop(self, timeout: float = 30.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def __enter__(self) -> CrmServer:
        return self.start() if self.process is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()
