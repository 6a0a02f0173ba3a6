"""The fleet as a matrix (pure): team x env rows by scope columns (global first, then Regions),
each cell its deployed version and result, built from `status`'s rows (fleet/status.py).

One model, two renderers: `render_matrix` here for a terminal or a CI log, and the HTML report
(fleet/htmlreport.py). Both use the same column abbreviations (`use1` for us-east-1, the names
per-Region buckets already use) and the same one-letter marks, each explained in a legend, so a
fleet of 10 envs x 20 Regions reads in one screen instead of 200 list lines.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from ..model.regions import short_name
from ..model.tags import GLOBAL
from .status import CellStatus

# The letter a cell carries per mark, in the order they are written; "ok" carries none.
# never-deployed has no letter: its cell shows `-` for the version it does not have.
MARK_LETTERS = {"failed": "F", "interrupted": "I", "drifted": "D", "behind": "B", "destroyed": "X",
                "unverified": "U"}
LETTER_MEANINGS = {
    "F": "failed: the last apply or destroy failed (the version is the last that succeeded)",
    "I": "interrupted: a run was cut short; the state may hold part of its change",
    "D": "drifted: a drift check since the last apply found differences",
    "B": "behind: a newer version is tagged for the cell",
    "X": "destroyed: the last successful change was a destroy",
    "U": "unverified: a ledger record is unsigned, badly signed or future-dated (left out)",
}
NEVER = "-"  # the version of a cell nothing was deployed to
NEVER_MEANING = "never deployed (set up or tagged, nothing applied)"
ABSENT = "."  # a team x env that has no cell in this scope
ABSENT_MEANING = "no such cell (the team is not set up for this scope in this env)"


@dataclass(frozen=True)
class MatrixCell:
    cell: str  # e.g. dev-us-east-1-research
    version: str | None  # the last successful apply's version
    marks: tuple[str, ...]

    @property
    def letters(self) -> str:
        return "".join(MARK_LETTERS[m] for m in MARK_LETTERS if m in self.marks)

    @property
    def text(self) -> str:
        """`1.1`, `1.0 FB`, `-`: the version (or `-`) and the letters of its marks."""
        return f"{self.version or NEVER} {self.letters}".rstrip()


@dataclass(frozen=True)
class Matrix:
    columns: tuple[str, ...]  # scopes: global first, then Regions alphabetically
    rows: tuple[tuple[str, str], ...]  # (team, env), in the order status sorts them
    cells: dict[tuple[str, str, str], MatrixCell]  # (team, env, scope) -> cell

    def cell(self, team: str, env: str, scope: str) -> MatrixCell | None:
        return self.cells.get((team, env, scope))

    @property
    def headers(self) -> dict[str, str]:
        """scope -> its column header: the short Region name, or the scope when two would collide."""
        short = {scope: scope if scope == GLOBAL else short_name(scope) for scope in self.columns}
        taken = list(short.values())
        return {scope: name if taken.count(name) == 1 else scope for scope, name in short.items()}

    @property
    def letters_used(self) -> list[str]:
        used = {letter for c in self.cells.values() for letter in c.letters}
        return [letter for letter in LETTER_MEANINGS if letter in used]

    def to_dict(self) -> dict[str, Any]:
        headers = self.headers
        return {
            "columns": [{"scope": s, "header": headers[s]} for s in self.columns],
            "rows": [{"team": team, "env": env,
                      "cells": {scope: {"cell": c.cell, "version": c.version, "marks": list(c.marks),
                                        "text": c.text}
                                for scope in self.columns if (c := self.cell(team, env, scope)) is not None}}
                     for team, env in self.rows],
        }


def build_matrix(rows: Sequence[CellStatus]) -> Matrix:
    """The matrix of `status`'s rows (pure); rows keep status's order (team, env in promotion order)."""
    columns = sorted({r.scope for r in rows}, key=lambda s: (s != GLOBAL, s))
    keys = tuple(dict.fromkeys((r.team, r.env) for r in rows))
    cells = {(r.team, r.env, r.scope): MatrixCell(r.cell, r.deployed.version if r.deployed else None, r.marks)
             for r in rows}
    return Matrix(columns=tuple(columns), rows=keys, cells=cells)


def _panels(label_width: int, widths: Sequence[int], width: int) -> list[list[int]]:
    """Column indexes per panel: as many columns as fit in `width` beside the row labels, at
    least one (a terminal narrower than that one column wraps, nothing else does)."""
    panels: list[list[int]] = [[]]
    used = label_width
    for i, w in enumerate(widths):
        if panels[-1] and used + 2 + w > width:
            panels.append([])
            used = label_width
        panels[-1].append(i)
        used += 2 + w
    return panels


def render_matrix(matrix: Matrix, width: int = 120) -> str:
    """The matrix as aligned text no wider than `width` (pure): columns that do not fit go into
    a further panel below with the same row labels; then a legend of the headers and letters used."""
    if not matrix.rows:
        return ""
    headers = matrix.headers
    team_w = max(len("TEAM"), *(len(t) for t, _ in matrix.rows))
    env_w = max(len("ENV"), *(len(e) for _, e in matrix.rows))
    texts = {key: c.text for key, c in matrix.cells.items()}
    widths = [max(len(headers[s]), *(len(texts.get((t, e, s), ABSENT)) for t, e in matrix.rows))
              for s in matrix.columns]
    blocks = []
    for panel in _panels(team_w + 2 + env_w, widths, width):
        lines = ["  ".join(["TEAM".ljust(team_w), "ENV".ljust(env_w),
                            *(headers[matrix.columns[i]].ljust(widths[i]) for i in panel)]).rstrip()]
        previous = None
        for team, env in matrix.rows:
            shown = team if team != previous else ""  # a team's name once, on its first env
            previous = team
            lines.append("  ".join([shown.ljust(team_w), env.ljust(env_w),
                                    *(texts.get((team, env, matrix.columns[i]), ABSENT).ljust(widths[i])
                                      for i in panel)]).rstrip())
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n\n" + "\n".join(legend_lines(matrix, width))


def legend_lines(matrix: Matrix, width: int = 120) -> list[str]:
    """What the abbreviated headers and the letters mean (only those shown), wrapped to `width`."""
    headers = matrix.headers
    names = [f"{headers[s]}={s}" for s in matrix.columns if headers[s] != s]
    marks = [f"{letter} {LETTER_MEANINGS[letter].split(':')[0]}" for letter in matrix.letters_used]
    texts = {c.text for c in matrix.cells.values()}
    if any(t.startswith(NEVER) for t in texts):
        marks.append(f"{NEVER} never deployed")
    if len(matrix.cells) < len(matrix.rows) * len(matrix.columns):
        marks.append(f"{ABSENT} no such cell")
    out: list[str] = []
    for title, items in (("Regions: ", names), ("Marks: ", marks)):
        if not items:
            continue
        line = title
        for item in items:
            piece = item if line == title else ", " + item
            if len(line) + len(piece) + 1 > width and line != title:  # room for the comma
                out.append(line + ",")
                line = " " * len(title) + item
            else:
                line += piece
        out.append(line)
    return out
