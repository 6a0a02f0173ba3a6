"""Human-readable renderings (pure functions returning text)."""

from __future__ import annotations

from typing import Iterable, Sequence

from ..engine.tagindex import TagEntry
from ..model.deployment import Deployment
from ..model.settings import Settings


def table(rows: Sequence[Sequence[str]], headers: Sequence[str]) -> str:
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    lines = ["  ".join(str(h).ljust(w) for h, w in zip(headers, widths)).rstrip()]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    return "\n".join(lines)


def fields(pairs: Iterable[tuple[str, str | Sequence[str]]], indent: int = 2) -> str:
    pairs = list(pairs)
    width = max(len(k) for k, _ in pairs)
    lines = []
    for key, value in pairs:
        values = [value] if isinstance(value, str) else list(value) or ["(none)"]
        for i, item in enumerate(values):
            label = key if i == 0 else ""
            lines.append(" " * indent + f"{label:<{width}}  {item}")
    return "\n".join(lines)


def deployment_summary(d: Deployment) -> str:
    b = d.backend
    scope = f"regional ({d.region})" if d.tag.region else f"global (deployed from {d.region})"
    body = fields([
        ("env", d.tag.env),
        ("scope", scope),
        ("team", d.tag.team),
        ("version", d.tag.version),
        ("account", d.account),
        ("target", d.target_module),
        ("role", f"{d.role_arn} (session {d.session_name})"),
        ("state", f"s3://{b.bucket}/{b.key} ({b.region}{', encrypted' if b.encrypt else ''})"),
        ("lock", b.lock_description),
        ("var files", d.var_files),
    ])
    return f"Deployment {d.tag.name}\n{body}"


def settings_origin(settings: Settings) -> str:
    return "\n".join(
        f"setting {name} = {getattr(settings, name)!r} ({source})"
        for name, source in settings.origin.items()
    )


def tag_table(entries: Sequence[TagEntry]) -> str:
    rows = []
    for e in entries:
        if e.tag is not None:
            rows.append([e.name, e.tag.env, e.tag.scope_name, e.tag.team, e.tag.version,
                         e.date[:19], "annotated" if e.annotated else "lightweight"])
        else:
            reason = (e.error or "").split(": ", 1)[-1].split("; expected")[0]
            rows.append([e.name, "-", "-", "-", "-", e.date[:19], f"MALFORMED: {reason}"])
    return table(rows, ["TAG", "ENV", "SCOPE", "TEAM", "VERSION", "DATE", "NOTE"])
