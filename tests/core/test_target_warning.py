"""Terraform's -target warnings are left out of the live output (engine/targetwarning.py); the
e2e half is in tests/e2e/test_cli_output.py."""

from __future__ import annotations

from tfdeploy.engine.targetwarning import TargetWarningFilter

PLAN = """Plan: 1 to add, 0 to change, 0 to destroy.

Changes to Outputs:
  + regional_message = (known after apply)

Warning: Resource targeting is in effect

You are creating a plan with the -target option, which means that the result
of this plan may not represent all of the changes requested by the current
configuration.

The -target option is not for routine use, and is provided only for
exceptional situations such as recovering from errors or mistakes, or when
Terraform specifically suggests to use it as part of an error message.
"""

APPLY = """module.regional.terraform_data.cell: Creation complete after 0s [id=04e8]

Warning: Applied changes may be incomplete

The plan was created with the -target option in effect, so some changes
requested in the configuration may have been ignored and the output values
may not be fully updated. Run the following command to verify that no other
changes are pending:
    terraform plan

Note that the -target option is not suitable for routine use, and is provided
only for exceptional situations such as recovering from errors or mistakes,
or when Terraform specifically suggests to use it as part of an error
message.

Apply complete! Resources: 1 added, 0 changed, 0 destroyed.
"""


def _shown(text: str, chunk: int = 1) -> str:
    lines = text.splitlines(keepends=True)
    f = TargetWarningFilter()
    out = []
    for i in range(0, len(lines), chunk):
        out += f.feed(lines[i:i + chunk])
    return "".join(out + f.flush())


def test_the_plan_warning_is_dropped_and_nothing_else():
    assert _shown(PLAN) == PLAN[:PLAN.index("\nWarning:")]  # with the blank line before it
    assert _shown(PLAN, chunk=5) == _shown(PLAN)


def test_the_apply_warning_is_dropped_and_the_summary_kept():
    shown = _shown(APPLY)
    assert "Warning" not in shown and "-target" not in shown
    assert shown == ("module.regional.terraform_data.cell: Creation complete after 0s [id=04e8]\n\n"
                     "Apply complete! Resources: 1 added, 0 changed, 0 destroyed.\n")


def test_another_warning_and_an_unfinished_block_are_shown_whole():
    other = "\nWarning: Deprecated attribute\n\nThe attribute is deprecated.\n"
    assert _shown(other) == other
    cut = "\nWarning: Resource targeting is in effect\n\nsomething Terraform never said\n"
    assert _shown(cut) == cut  # not the warning's end: shown at the end, never lost
    long = "Warning: Resource targeting is in effect\n" + "line\n" * 40
    assert _shown(long) == long
