"""Terraform's warnings about `-target`, left out of what a person reads.

tfdeploy plans and applies with `-target=module.regional` (or `module.global`) on every run of
every cell: that is how one root module serves every scope (docs/reference/terraform.md says why,
once). Terraform answers each run with a 10-line "Resource targeting is in effect" (plan) or
"Applied changes may be incomplete" (apply) warning that tells a tfdeploy user nothing. The -json
runs drop them as events (tfjson._EXPECTED_WARNINGS); this drops them from relayed text.

Only the live output is filtered: the kept text (errors are explained from it) is untouched. A
block that does not end as these warnings end is shown after all, never lost.
"""

from __future__ import annotations

SUMMARIES = ("Warning: Resource targeting is in effect", "Warning: Applied changes may be incomplete")
# Both warnings' last sentence: "...when Terraform specifically suggests to use it as part of an
# error message." (wrapped differently by each).
_END = "as part of an error message."
_BOX = "\u2502\u2577\u2575 "  # │ ╷ ╵ : the gutter Terraform draws around diagnostics with colour on
_MAX_LINES = 24  # longer than either warning: a block this long is something else, shown


def _bare(line: str) -> str:
    return line.strip().strip(_BOX).strip()


class TargetWarningFilter:
    """Feed lines in order (each ending in "\\n" but perhaps the last); get back those to show.

    Holds back at most one blank line (the one before a warning goes with it) and, inside a
    warning, the warning's own lines until it is known to be one."""

    def __init__(self) -> None:
        self._blank: list[str] = []  # a blank line waiting to see what follows it
        self._held: list[str] | None = None  # inside a warning block: its lines so far
        self._words = ""

    def feed(self, lines: list[str]) -> list[str]:
        shown: list[str] = []
        for line in lines:
            shown += self._one(line)
        return shown

    def flush(self) -> list[str]:
        """At the end of the output: whatever is still held back (an unfinished block is shown)."""
        rest = self._blank + (self._held or [])
        self._blank, self._held, self._words = [], None, ""
        return rest

    def _one(self, line: str) -> list[str]:
        bare = _bare(line)
        if self._held is not None:
            self._held.append(line)
            if _END in self._words + " " + bare:
                self._held, self._words = None, ""  # a whole warning: dropped with its blank line
                return []
            self._words = (self._words + " " + bare)[-200:]
            if len(self._held) > _MAX_LINES:
                shown, self._held, self._words = self._held, None, ""
                return shown
            return []
        if bare in SUMMARIES:
            self._held, self._words = self._blank + [line], ""
            self._blank = []
            return []
        if not bare and line.strip() in ("", *_BOX.strip()):
            # A blank line (or a box's corner) may belong to a warning that starts next.
            shown, self._blank = self._blank, [line]
            return shown
        shown, self._blank = self._blank + [line], []
        return shown
