"""What a person sees while a fleet runs.

On a terminal: a live table, one row per cell (state, elapsed, +/~/-), redrawn in place; when it
is taller than the terminal, failed and running cells stay in view and the others are counted. Anywhere
else (CI logs, pipes): one line per event, each prefixed with its cell, never Terraform's own
output (that goes to each cell's log). When a cell fails, the tail of its log is shown under its
name either way. Everything is drawn from the main thread; workers only post events.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable, Mapping

from ..paths import shown_path

TAIL_LINES = 20
# CI services stop a job that printed nothing for a while (CircleCI: 10 minutes); Terraform says
# "Still creating..." every 10 s, but in a fleet that goes to the cell's log. So after a minute
# without a line, one says which cells still run.
HEARTBEAT_S = 60.0
HEARTBEAT_VAR = "TFDEPLOY_HEARTBEAT_S"  # another silence for CI services with a shorter limit
ACTIVE = ("running", "applying", "retrying")
PROGRESS = "progress"  # an event that only tells a cell's latest Terraform step (Event.detail)
FINAL = ("planned", "applied", "destroyed", "in-sync", "drifted", "failed", "skipped", "interrupted")


@dataclass(frozen=True)
class Event:
    cell: str
    tag: str
    state: str  # queued, running, plan, retry, progress, or a FINAL state
    counts: tuple[int, int, int] | None = None
    elapsed_s: float | None = None
    detail: str = ""
    log: str = ""


@dataclass
class Row:
    cell: str
    tag: str
    state: str = "queued"
    counts: tuple[int, int, int] | None = None
    started: float | None = None
    elapsed_s: float | None = None  # set when the cell ends
    doing: str = ""  # its Terraform's latest step ("...: Still creating... [10s elapsed]") while it runs


@dataclass
class Board:
    """The table's content, updated by events (no I/O)."""

    rows: dict[str, Row] = field(default_factory=dict)

    def add(self, cell: str, tag: str) -> None:
        self.rows[cell] = Row(cell, tag)

    def apply(self, event: Event, now: float) -> None:
        row = self.rows.setdefault(event.cell, Row(event.cell, event.tag))
        if event.state == PROGRESS:
            row.doing = event.detail
            return
        if event.state == "running" and row.started is None:
            row.started = now
        # "plan" is the plan half of apply --auto-approve: planned, now applying.
        row.state = {"plan": "applying", "retry": "retrying"}.get(event.state, event.state)
        if event.counts is not None:
            row.counts = event.counts
        if event.state in FINAL:
            row.elapsed_s, row.doing = event.elapsed_s, ""

    def elapsed(self, row: Row, now: float) -> float | None:
        if row.elapsed_s is not None:
            return row.elapsed_s
        return None if row.started is None else now - row.started


def counts_text(counts: tuple[int, int, int] | None) -> str:
    return "" if counts is None else f"+{counts[0]} ~{counts[1]} -{counts[2]}"


def event_line(event: Event) -> str | None:
    """One CI line for an event (pure); None for events not worth a line."""
    prefix = f"[{event.cell}]"
    took = f" ({event.elapsed_s:.1f}s)" if event.elapsed_s is not None else ""
    if event.state in ("queued", PROGRESS):
        return None
    if event.state == "running":
        return f"{prefix} start {event.tag}" + (f" (log: {shown_path(event.log)})" if event.log else "")
    if event.state == "plan":
        return f"{prefix} plan {counts_text(event.counts)}{took}"
    if event.state == "retry":
        return f"{prefix} retry: {event.detail}"
    if event.state in ("failed", "interrupted", "skipped"):
        return f"{prefix} {event.state}{took}" + (f": {event.detail}" if event.detail else "")
    return f"{prefix} {event.state} {counts_text(event.counts)}{took}".rstrip()


def _took(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 60}m{whole % 60:02d}s" if whole >= 60 else f"{whole}s"


def heartbeat_line(board: Board, now: float) -> str | None:
    """The CI line that says which cells still run and for how long (pure); None when none runs."""
    running = [row for row in board.rows.values() if row.state in ACTIVE]
    if not running:
        return None
    queued = sum(1 for row in board.rows.values() if row.state == "queued")
    said = ", ".join(f"{row.cell} {_took(board.elapsed(row, now) or 0.0)}" + (f" ({row.doing})" if row.doing else "")
                     for row in running)
    return f"[fleet] still running: {said}" + (f"; {queued} queued" if queued else "")


def log_tail(log: str | Path, lines: int = TAIL_LINES) -> list[str]:
    try:
        text = Path(log).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    return [line for line in text.splitlines() if line.strip()][-lines:]


def tail_lines(cell: str, log: str) -> list[str]:
    """The failed cell's log tail, each line under the cell's name (pure but for the read)."""
    tail = log_tail(log)
    if not tail:
        return []
    return [f"[{cell}] | last {len(tail)} lines of {shown_path(log)}:"] + [f"[{cell}] | {line}" for line in tail]


class LineDisplay:
    """CI: a line per event, the failed cell's log tail, and which cells still run after a
    minute without a line."""

    def __init__(self, stream: IO[str], clock: Callable[[], float] = time.monotonic,
                 heartbeat_s: float = HEARTBEAT_S):
        self.stream = stream
        self.board = Board()
        self._clock = clock
        self._heartbeat_s = heartbeat_s
        self._said_at = clock()

    def __enter__(self) -> "LineDisplay":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stream.flush()

    def add(self, cell: str, tag: str) -> None:
        self.board.add(cell, tag)

    def event(self, event: Event) -> None:
        self.board.apply(event, self._clock())
        line = event_line(event)
        if line:
            self._say(line)
        if event.state == "failed" and event.log:
            for tail in tail_lines(event.cell, event.log):
                self._say(tail)

    def note(self, text: str) -> None:
        self._say(text)

    def tick(self) -> None:
        now = self._clock()
        if now - self._said_at >= self._heartbeat_s:
            line = heartbeat_line(self.board, now)
            if line:
                self._say(line)

    def _say(self, line: str) -> None:
        self.stream.write(line + "\n")
        self.stream.flush()
        self._said_at = self._clock()


STYLE = {"failed": "red", "interrupted": "red", "skipped": "yellow", "applied": "green",
         "planned": "green", "destroyed": "green", "running": "cyan", "applying": "cyan",
         "retrying": "yellow", "in-sync": "green", "drifted": "yellow"}


# Which rows a table too tall for the terminal keeps in view, best first.
_IN_VIEW_FIRST = (("failed", "interrupted"), ACTIVE, ("queued",))


def rows_in_view(rows: list[Row], limit: int) -> tuple[list[Row], str]:
    """The rows a terminal with room for `limit` rows shows, and a line counting the others by
    state ("" when all fit) (pure). Failed, then running, then queued cells are kept first, so
    what needs attention never scrolls off; what is shown stays in schedule order."""
    if len(rows) <= limit:
        return rows, ""

    def rank(index: int) -> tuple[int, int]:
        state = rows[index].state
        group = next((i for i, states in enumerate(_IN_VIEW_FIRST) if state in states), len(_IN_VIEW_FIRST))
        return group, index

    kept = set(sorted(range(len(rows)), key=rank)[:max(1, limit)])
    hidden: dict[str, int] = {}
    for index, row in enumerate(rows):
        if index not in kept:
            hidden[row.state] = hidden.get(row.state, 0) + 1
    counted = ", ".join(f"{number} {state}" for state, number in hidden.items())
    return [row for index, row in enumerate(rows) if index in kept], f"{sum(hidden.values())} more cells: {counted}"


def render_table(board: Board, now: float, limit: int | None = None, width: int | None = None) -> Any:
    """A rich Table of the board; with `limit`, at most that many cell rows (see rows_in_view).
    The last column, each cell's latest Terraform step, gets only the `width` the others leave
    (none when they leave less than a few characters; all it needs without `width`)."""
    from rich.table import Table

    rows = list(board.rows.values())
    rows, more = rows_in_view(rows, limit) if limit is not None else (rows, "")
    cells = []
    for row in rows:
        elapsed = board.elapsed(row, now)
        cells.append([row.cell, row.tag, row.state, "" if elapsed is None else f"{elapsed:.1f}s",
                      counts_text(row.counts), row.doing])
    names = ("cell", "tag", "state", "elapsed", "+/~/-", "terraform")
    widths = [max([len(name)] + [len(values[i]) for values in cells]) for i, name in enumerate(names)]
    room = widths[-1] if width is None else width - sum(widths[:-1]) - 2 * (len(names) - 1)
    # No column while no cell has a step to show, nor when too narrow for one.
    shown = names if any(values[-1] for values in cells) and (width is None or room >= 12) else names[:-1]
    table = Table(box=None, pad_edge=False, header_style="bold", caption=more or None, caption_justify="left")
    for i, name in enumerate(shown):
        table.add_column(name, justify="right" if name == "elapsed" else "left", no_wrap=True,
                         style="dim" if name == "terraform" else None)
    for values in cells:
        if len(values[-1]) > room:
            values[-1] = values[-1][:room - 1] + "…"
        style = STYLE.get(values[2], "")
        if style:
            values[2] = f"[{style}]{values[2]}[/]"
        table.add_row(*values[:len(shown)])
    return table


class LiveDisplay:
    """A terminal: the live table, redrawn a few times a second; failures' tails printed above."""

    def __init__(self, stream: IO[str]):
        from rich.console import Console

        self.console = Console(file=stream)
        self.board = Board()
        self._live: Any = None

    def __enter__(self) -> "LiveDisplay":
        from rich.live import Live

        self._live = Live(self._frame(), console=self.console,
                          refresh_per_second=4, transient=False, auto_refresh=False)
        self._live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.tick()
        self._live.__exit__(*exc)

    def add(self, cell: str, tag: str) -> None:
        self.board.add(cell, tag)

    def event(self, event: Event) -> None:
        self.board.apply(event, time.monotonic())
        if event.state == "failed" and event.log:
            for line in tail_lines(event.cell, event.log) + ([f"[{event.cell}] {event.detail}"]
                                                            if event.detail else []):
                self.console.print(line, markup=False, highlight=False)
        self.tick()

    def note(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False)

    def tick(self) -> None:
        if self._live is not None:
            self._live.update(self._frame(), refresh=True)

    def _frame(self) -> Any:
        # The header, the count of hidden cells and the cursor's line take three of the rows.
        size = self.console.size
        return render_table(self.board, time.monotonic(), limit=max(1, size.height - 3), width=size.width)


def make_display(stream: IO[str], live: bool | None = None,
                 environ: Mapping[str, str] = os.environ) -> LineDisplay | LiveDisplay:
    """The live table on a terminal, lines otherwise (`live` forces either)."""
    beat = heartbeat_s(environ)  # a bad setting is refused on a terminal too, not only in CI
    if live is None:
        live = stream.isatty() and not environ.get("CI") and environ.get("TERM") != "dumb"
    return LiveDisplay(stream) if live else LineDisplay(stream, heartbeat_s=beat)


def heartbeat_s(environ: Mapping[str, str]) -> float:
    """The silence after which CI lines say which cells still run: TFDEPLOY_HEARTBEAT_S, or 60."""
    from ..envvalues import env_seconds

    return env_seconds(environ, HEARTBEAT_VAR, HEARTBEAT_S, zero_ok=False,
                       hint=f"set it to e.g. {HEARTBEAT_S:g}, or unset it")
