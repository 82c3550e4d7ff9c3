"""The benchmarks' table: every figure beside a baseline measured in the same run, and a ratio."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table

log = Console(stderr=True, highlight=False)


@dataclass
class Row:
    area: str
    what: str
    result: str
    baseline: str = ""
    ratio: str = ""
    target: str = ""
    verdict: str = ""
    notes: str = ""


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)

    def add(self, row: Row) -> None:
        self.rows.append(row)
        log.print(
            f"  [dim]{row.area}[/] {row.what}: [bold]{row.result}[/] {row.ratio} {row.verdict}"
        )

    COLUMNS = (
        "area",
        "benchmark",
        "result",
        "baseline (same run)",
        "ratio",
        "target",
        "verdict",
        "notes",
    )

    def table(self, title: str) -> Table:
        table = Table(title=title, show_lines=True, expand=False)
        for name in self.COLUMNS:
            table.add_column(name, overflow="fold")
        for row in self.rows:
            style = {"met": "green", "MISSED": "bold red"}.get(row.verdict, "")
            verdict = f"[{style}]{row.verdict}[/]" if style else row.verdict
            table.add_row(
                row.area,
                row.what,
                row.result,
                row.baseline,
                row.ratio,
                row.target,
                verdict,
                row.notes,
            )
        return table

    def markdown(self) -> str:
        def cell(text: str) -> str:
            return text.replace("|", "\\|").replace("\n", "<br>")

        lines = ["| " + " | ".join(self.COLUMNS) + " |", "|" + "---|" * len(self.COLUMNS)]
        for r in self.rows:
            values = (r.area, r.what, r.result, r.baseline, r.ratio, r.target, r.verdict, r.notes)
            lines.append("| " + " | ".join(cell(v) for v in values) + " |")
        return "\n".join(lines) + "\n"


def bench_arguments(description: str, results: Path) -> argparse.ArgumentParser:
    """The options every suite takes: the cluster, --quick, where results go, --wait-quiet."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("CRM_TEST_POSTGRES_URL"),
        help="an admin URL of a throwaway cluster [env: CRM_TEST_POSTGRES_URL]",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--results", type=Path, default=results)
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0,
        metavar="SECONDS",
        help="first wait (at most this long) for other processes to leave the "
        "machine idle: a test run beside the benchmark skews every figure",
    )
    return parser


def publish(report: Report, title: str, header: str, path: Path, reproduce: str) -> None:
    """Print the table, write it as markdown to ``path``, and say how many targets missed."""
    console = Console(width=220)
    console.print(report.table(title))
    console.print(header)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"# {title}\n\n{header}\n\nReproduce: `{reproduce}`\n\n{report.markdown()}")
    console.print(f"written to {path}")
    missed = [r for r in report.rows if r.verdict == "MISSED"]
    console.print(f"{len(missed)} target(s) missed" if missed else "every target met")


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"
