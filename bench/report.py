"""The benchmarks' table: every figure beside a baseline measured in the same run, and a ratio."""

from __future__ import annotations

from dataclasses import dataclass, field

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


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"
