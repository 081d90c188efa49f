"""Figures beside their same-run baselines, judged against the issue's targets; markdown + JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DECIMALS = {"ms": 1, "s": 2, "×": 2, "%": 1}


@dataclass(frozen=True, slots=True)
class Target:
    text: str
    at_least: float | None = None
    at_most: float | None = None
    ratio_at_least: float | None = None
    ratio_at_most: float | None = None

    def met(self, measured: float, ratio: float | None) -> bool:
        limits = [
            (measured, self.at_least, self.at_most),
            (ratio, self.ratio_at_least, self.ratio_at_most),
        ]
        for value, low, high in limits:
            if low is None and high is None:
                continue
            if value is None or (low is not None and value < low):
                return False
            if high is not None and value > high:
                return False
        return True


@dataclass(frozen=True, slots=True)
class Figure:
    key: str
    name: str
    unit: str
    measured: float | None
    baseline: float | None = None
    baseline_name: str = ""
    target: Target | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.measured is None or not self.baseline:
            return None
        return self.measured / self.baseline

    @property
    def met(self) -> bool | None:
        if self.target is None or self.measured is None:
            return None
        return self.target.met(self.measured, self.ratio)

    def as_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "figure": self.name,
            "unit": self.unit,
            "measured": self.measured,
            "baseline": self.baseline,
            "baseline_name": self.baseline_name or None,
            "ratio": self.ratio,
            "target": self.target.text if self.target else None,
            "met": self.met,
            "note": self.note or None,
        }


def not_measured(key: str, name: str, unit: str, target: Target | None, why: str) -> Figure:
    return Figure(key, name, unit, None, target=target, note=f"not measured: {why}")


def number(value: float, unit: str) -> str:
    separator = "" if unit == "×" else " "
    return f"{plain(value, unit)}{separator}{unit}".rstrip()


def plain(value: float, unit: str) -> str:
    """The value with its unit's decimals but not the unit: a cell under a column that names it."""
    return f"{value:,.{DECIMALS.get(unit, 0)}f}"


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    heading: str
    unit: str = ""


@dataclass(frozen=True, slots=True)
class Table:
    """The detail behind some figures (the soak's slices): after the figures in the markdown,
    under "tables" in the JSON."""

    key: str
    title: str
    columns: list[Column]
    rows: list[dict[str, Any]]  # column key → number, text or None
    note: str = ""
    details: dict[str, Any] = field(default_factory=dict)  # JSON only: what the note summarises

    def markdown(self) -> list[str]:
        lines = [
            f"## {self.title}",
            "",
            "| " + " | ".join(column.heading for column in self.columns) + " |",
            "|" + "---|" * len(self.columns),
        ]
        for row in self.rows:
            cells = [_cell(row.get(column.key), column.unit) for column in self.columns]
            lines.append("| " + " | ".join(cells) + " |")
        return lines + (["", self.note] if self.note else [])

    def as_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "columns": [{"key": c.key, "heading": c.heading, "unit": c.unit} for c in self.columns],
            "rows": self.rows,
            "note": self.note or None,
            **self.details,
        }


def _cell(value: Any, unit: str) -> str:
    if value is None:
        return "—"
    return plain(value, unit) if isinstance(value, int | float) else str(value)


@dataclass
class Results:
    size: str
    meta: dict[str, Any]  # the run's circumstances, as data (JSON)
    summary: list[str]  # the same for people (the markdown's first lines)
    figures: list[Figure] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)

    def markdown(self) -> str:
        lines = [f"# `make bench SIZE={self.size}`", ""]
        lines += [f"- {line}" for line in self.summary]
        lines += [
            "",
            "| figure | measured | baseline (same run) | ratio | target |",
            "|---|---|---|---|---|",
        ]
        notes = []
        for figure in self.figures:
            measured = "—" if figure.measured is None else number(figure.measured, figure.unit)
            baseline = (
                f"{number(figure.baseline, figure.unit)} {figure.baseline_name}"
                if figure.baseline is not None
                else figure.baseline_name or "—"
            )
            ratio = "—" if figure.ratio is None else number(figure.ratio, "×")
            verdict = {True: " ✅", False: " ❌", None: ""}[figure.met]
            target = f"{figure.target.text}{verdict}" if figure.target else "—"
            lines.append(f"| {figure.name} | {measured} | {baseline} | {ratio} | {target} |")
            if figure.note:
                notes.append(f"- {figure.name}: {figure.note}")
        if notes:
            lines += ["", "Notes:", "", *notes]
        for table in self.tables:
            lines += ["", *table.markdown()]
        return "\n".join(lines) + "\n"

    def as_json(self) -> dict[str, Any]:
        return {
            "size": self.size,
            **self.meta,
            "figures": [figure.as_json() for figure in self.figures],
            "tables": {table.key: table.as_json() for table in self.tables},
        }

    def write(self, directory: Path) -> tuple[Path, Path]:
        directory.mkdir(parents=True, exist_ok=True)
        markdown = directory / f"latest-{self.size}.md"
        data = directory / f"latest-{self.size}.json"
        markdown.write_text(self.markdown())
        data.write_text(json.dumps(self.as_json(), indent=2, ensure_ascii=False) + "\n")
        return markdown, data
