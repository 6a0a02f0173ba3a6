"""Terraform's machine-readable UI stream (`plan -json`): one JSON object per line (pure).

Why the stream and not the human "Plan: N to add" line: the stream is a documented, versioned
interface (`"ui": "1.x"` in its first line) with a `change_summary` object carrying the counts
as numbers, whereas the human line changes wording across versions and is absent when only
outputs change. Using it also spares the `terraform show -json` process every plan used to pay
just to count changes. The person watching still sees Terraform's own words: every event's
`@message` is Terraform's human line, and diagnostics are rendered with their detail.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

# Events whose @message adds nothing a person needs ("Terraform 1.15.5", per-second heartbeats).
_QUIET_TYPES = {"version", "apply_progress", "refresh_start", "provision_progress"}
# tfdeploy always targets the tag's namespace (module.regional or module.global) on purpose:
# Terraform's warnings about -target say nothing to its users, on every run of every cell.
_EXPECTED_WARNINGS = {"Resource targeting is in effect", "Applied changes may be incomplete"}


@dataclass(frozen=True)
class Counts:
    add: int
    change: int
    remove: int


def parse_event(line: str) -> dict[str, Any] | None:
    """One stream line -> its event, or None for anything that is not a JSON object."""
    text = line.strip()
    if not text.startswith("{"):
        return None
    try:
        event = json.loads(text)
    except ValueError:
        return None
    return event if isinstance(event, dict) else None


def render_diagnostic(diagnostic: Mapping[str, Any]) -> str:
    """A diagnostic the way Terraform prints it without colour: 'Error: summary', blank, detail.

    Kept in that shape on purpose: explain_failure and lock_holder read the same text whether a
    command ran with -json or not (the lock holder's ID/Path/Who/... lines are in the detail)."""
    severity = "Error" if diagnostic.get("severity") == "error" else "Warning"
    text = f"{severity}: {diagnostic.get('summary', '')}\n"
    where = diagnostic.get("range") or {}
    if where.get("filename"):
        text += f"\n  on {where['filename']} line {where.get('start', {}).get('line', '?')}\n"
    detail = str(diagnostic.get("detail") or "").strip("\n")
    if detail:
        text += "\n" + detail + "\n"
    return text


def render_event(event: Mapping[str, Any]) -> str | None:
    """The human text for one event, or None when it is not worth a line."""
    if event.get("type") in _QUIET_TYPES:
        return None
    if event.get("type") == "diagnostic" and isinstance(event.get("diagnostic"), Mapping):
        diagnostic = event["diagnostic"]
        if diagnostic.get("severity") == "warning" and diagnostic.get("summary") in _EXPECTED_WARNINGS:
            return None
        return "\n" + render_diagnostic(diagnostic)
    message = event.get("@message")
    return f"{message}\n" if message else None


def change_summary(events: Iterable[Mapping[str, Any]], operation: str = "plan") -> Counts | None:
    """The counts of the last `change_summary` event of `operation`, or None if there was none."""
    found = None
    for event in events:
        changes = event.get("changes")
        if event.get("type") == "change_summary" and isinstance(changes, Mapping) \
                and changes.get("operation", operation) == operation:
            found = Counts(int(changes.get("add", 0)), int(changes.get("change", 0)),
                           int(changes.get("remove", 0)))
    return found


def diagnostics_text(events: Iterable[Mapping[str, Any]]) -> str:
    """Every diagnostic of the stream rendered, errors and warnings, in order."""
    return "".join("\n" + render_diagnostic(e["diagnostic"]) for e in events
                   if e.get("type") == "diagnostic" and isinstance(e.get("diagnostic"), Mapping))
