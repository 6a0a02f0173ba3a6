"""Root-level guard rails that `-target` skips, evaluated by a plan of them alone.

tfdeploy plans `-target=<namespace>` (docs/reference/terraform.md says why). Under `-target`
Terraform evaluates only the targeted objects and what they depend on, so in the root module:

- a variable's `validation` runs only when the target's module call uses the variable (directly or
  through locals); the others are skipped, silently;
- no `check` block runs at all, whatever it refers to.

So before every plan of a cell (engine/stages.py `plan`: one tag, a fan-out's cell,
`--auto-approve`), the skipped ones are found in the root's files and evaluated the way an
untargeted plan would: a second, tiny configuration holding the root's `variable` blocks and its
`check` blocks, planned with the cell's own variable files (no backend, no state, no provider, no
lock). A failed validation refuses the plan, as Terraform would without `-target`; a failed
check is a warning naming it, as in Terraform. A validation or check that refers to more than
variables (a module output, a resource, a data source, a local) cannot be evaluated alone: a
warning line names each, so nothing is skipped silently.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from ..errors import ValidationError
from ..model.hclrefs import RootCheck, references, root_checks

_HEAD = re.compile(r'^\s*(variable|check|locals)\b\s*(?:"([^"]+)")?')
# Names a condition may use and still be evaluated without the rest of the configuration.
_ALONE = ("var.", "path.", "terraform.")
ROOT_VAR_FILES = ("terraform.tfvars", "terraform.tfvars.json")
ALONE_FILE = "rootchecks.tf"


@dataclass(frozen=True)
class Skipped:
    """A root guard rail that a plan of `target` skips."""

    check: RootCheck
    why_not_alone: str  # "" when it can be evaluated alone; else what it refers to

    @property
    def label(self) -> str:
        return f"{self.check.address}'s validation" if self.check.kind == "validation" else self.check.address


@dataclass(frozen=True)
class RootGuards:
    skipped: tuple[Skipped, ...]
    # Every root variable's block text by name, and each check's by `check.<name>` (the alone config).
    variables: Mapping[str, str]

    @property
    def alone(self) -> tuple[Skipped, ...]:
        return tuple(s for s in self.skipped if not s.why_not_alone)

    @property
    def not_alone(self) -> tuple[Skipped, ...]:
        return tuple(s for s in self.skipped if s.why_not_alone)


def _closure(start: frozenset[str], local_refs: Mapping[str, frozenset[str]]) -> frozenset[str]:
    """`start` and everything the locals it names refer to, transitively (pure)."""
    seen, pending = set(start), list(start)
    while pending:
        ref = pending.pop()
        if ref.startswith("local."):
            for more in local_refs.get(ref.removeprefix("local."), frozenset()) - seen:
                seen.add(more)
                pending.append(more)
    return frozenset(seen)


def skipped_by_target(parsed_files: Iterable[Mapping[str, Any]], target: str) -> list[Skipped]:
    """The root guard rails a plan `-target=<target>` skips (pure: the root's parsed files)."""
    files = list(parsed_files)
    call = target.removeprefix("module.")
    local_refs: dict[str, frozenset[str]] = {}
    used: frozenset[str] = frozenset()
    for parsed in files:
        for block in parsed.get("locals", []):
            local_refs.update({str(k): references(v) for k, v in block.items()})
        for block in parsed.get("module", []):
            if call in block:
                used |= references(block[call])
    used = _closure(used, local_refs)
    skipped = []
    for check in root_checks(files):
        if check.kind == "validation" and check.address in used:
            continue  # the target uses the variable: Terraform validates it
        others = sorted(r for r in check.refs if not r.startswith(_ALONE) and r != check.address)
        why = f"refers to {', '.join(others)}" if others else ""
        if check.kind == "check" and check.has_data:
            why = why or "reads a data source"
        skipped.append(Skipped(check, why))
    return skipped


def _blocks(text: str, source: str) -> list[tuple[str, str, str]]:
    """(block type, first label, the block's text) of each variable/check block of a .tf file."""
    from ..model.hcl import top_level_block_lines

    lines = text.splitlines()
    found = []
    for first, last in top_level_block_lines(text, source):
        head = _HEAD.match(lines[first - 1])
        if head and head.group(2):
            found.append((head.group(1), head.group(2), "\n".join(lines[first - 1:last]) + "\n"))
    return found


def find_root_guards(root: Path, target: str) -> RootGuards:
    """The root's guard rails that a plan of `target` skips, with the variable blocks' text (read
    only when something is skipped: the parses are cached, the block positions are not)."""
    from ..model.envs import parse_tfvars

    texts = {path.name: path.read_text(encoding="utf-8") for path in sorted(Path(root).glob("*.tf"))}
    skipped = tuple(skipped_by_target([parse_tfvars(t, name) for name, t in texts.items()], target))
    if not skipped:
        return RootGuards((), {})
    blocks: dict[str, str] = {}
    for name, text in texts.items():
        for kind, label, block in _blocks(text, name):
            blocks[label if kind == "variable" else f"check.{label}"] = block
    return RootGuards(skipped, blocks)


def alone_config(guards: RootGuards) -> tuple[str, dict[int, str]]:
    """The configuration of the guard rails alone (pure): every root variable (a validation that
    cannot be evaluated alone is dropped, the variable kept untyped) and the checks that can be;
    and the first line of each block -> what it is, to name a diagnostic."""
    not_alone = {s.check.name for s in guards.not_alone if s.check.kind == "validation"}
    alone_checks = [s.check.name for s in guards.alone if s.check.kind == "check"]
    parts: list[str] = []
    where: dict[int, str] = {}
    line = 1
    for name, text in guards.variables.items():
        if name.startswith("check."):
            continue
        block = f'variable "{name}" {{}}\n' if name in not_alone else text
        where[line] = f"var.{name}"
        parts.append(block)
        line += block.count("\n") + 1
        parts.append("\n")
    for name in alone_checks:
        text = guards.variables[f"check.{name}"]
        where[line] = f"check.{name}"
        parts.append(text)
        line += text.count("\n") + 1
        parts.append("\n")
    return "".join(parts), where


def var_files(workdir: Path, deployment_files: Iterable[str]) -> list[Path]:
    """The cell's variable files in Terraform's order: terraform.tfvars(.json), *.auto.tfvars(.json)
    by name, then the -var-file ones (repo-relative in the work dir)."""
    root = Path(workdir)
    auto = sorted(p.name for p in root.iterdir() if p.is_file() and p.name.endswith((".auto.tfvars", ".auto.tfvars.json")))
    named = [root / n for n in (*ROOT_VAR_FILES, *auto) if (root / n).is_file()]
    return named + [root / f for f in deployment_files]


def _named(diagnostic: Mapping[str, Any], where: Mapping[int, str]) -> str:
    line = (diagnostic.get("range") or {}).get("start", {}).get("line", 0)
    starts = [start for start in where if start <= line]
    return where[max(starts)] if starts else "a root check"


def _first_line(text: str) -> str:
    return (text or "").strip().splitlines()[0] if (text or "").strip() else ""


def evaluate_root_guards(session: Any, say: Callable[[str], None]) -> tuple[str, ...]:
    """Evaluate the guard rails the cell's `-target` plan skips (module docstring); the notes said
    (each also through `say`). Raises ValidationError when a root variable fails its validation."""
    from .terraform import Terraform

    d = session.deployment
    workdir = session.workdir.path
    guards = find_root_guards(workdir, d.target_module)
    if not guards.skipped:
        return ()
    notes: list[str] = []
    if guards.not_alone:
        notes.append(f"not evaluated under -target={d.target_module} (Terraform skips root checks the target "
                     "does not use; these need more than variables to evaluate alone): "
                     + "; ".join(f"{s.label} ({s.why_not_alone})" for s in guards.not_alone))
    if guards.alone:
        text, where = alone_config(guards)
        with tempfile.TemporaryDirectory(prefix="tfdeploy-rootchecks-") as temp:
            (Path(temp) / ALONE_FILE).write_text(text, encoding="utf-8")
            tf = Terraform(session.terraform.binary, Path(temp), session.terraform.env,
                           sink=session.terraform.sink, err_sink=session.terraform.err_sink)
            done = tf.run("plan", stream=False, ui_json=True, input=False, refresh=False, lock=False,
                          var_file=[str(p) for p in var_files(workdir, d.var_files)])
        diagnostics = [e.get("diagnostic", {}) for e in done.events if e.get("type") == "diagnostic"]
        for diag in diagnostics:
            if diag.get("severity") == "error" and diag.get("summary") == "Invalid value for variable":
                raise ValidationError(
                    f"{d.tag.name}: {_named(diag, where)} fails its validation: {_first_line(diag.get('detail', ''))} "
                    f"(a root variable {d.target_module} does not use: Terraform skips its validation under "
                    "-target, tfdeploy does not); nothing planned; fix the value in the cell's variable files")
        errors = [diag for diag in diagnostics if diag.get("severity") == "error"]
        if errors or done.returncode != 0:
            first = errors[0] if errors else {"summary": _first_line(done.stderr) or f"exit {done.returncode}"}
            notes.append(f"root checks could not be evaluated alone: {first.get('summary')}: "
                         f"{_first_line(first.get('detail', ''))}".rstrip(": "))
        for diag in diagnostics:
            if diag.get("severity") == "warning" and diag.get("summary") == "Check block assertion failed":
                notes.append(f"{_named(diag, where)} failed: {_first_line(diag.get('detail', ''))} (a root check "
                             f"block, evaluated by tfdeploy: Terraform skips it under -target)")
    for note in notes:
        say(f"warning: {note}")
    return tuple(notes)

