"""One path from tag to cell (issue 23, item 5): the CLI parses each tag string once, at its edge,
and hands the parsed object down; the options that travel together are typed objects.

The parse count is taken in process (click's CliRunner) against a real example repo with real
annotated tags, real embedded Terraform and moto on 127.0.0.1: every module's `parse_tag` is
wrapped to count the calls per tag name.
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import FrozenInstanceError

import pytest
from click.testing import CliRunner

from tests.e2e.conftest import make_repo, sandbox_env, tag  # noqa: F401

TAG = "dev_us-east-1/research/1.0"
GLOBAL_TAG = "dev_global/research/1.0"


@pytest.fixture
def parses(monkeypatch) -> Counter:
    """tag name -> how many times `parse_tag` was called with it, in any tfdeploy module (those
    imported already, and those imported later through model.tags)."""
    import tfdeploy.model.tags as tags

    original, counts = tags.parse_tag, Counter()
    original = getattr(original, "__wrapped__", original)

    def counting(name, *args, **kwargs):
        counts[name] += 1
        return original(name, *args, **kwargs)

    counting.__wrapped__ = original  # a module imported under an earlier test's counter is re-wrapped
    for module in list(sys.modules.values()):
        found = getattr(module, "parse_tag", None) if getattr(module, "__name__", "").startswith("tfdeploy") else None
        if found is original or getattr(found, "__wrapped__", None) is original:
            monkeypatch.setattr(module, "parse_tag", counting)
    monkeypatch.setattr(tags, "parse_tag", counting)
    return counts


def _cli(repo, *args: str):
    from tfdeploy.cli import cli

    result = CliRunner().invoke(cli, [*args, "--repo", str(repo)], catch_exceptions=False)
    assert result.exit_code in (0, 2), result.output
    return result


@pytest.fixture
def example(tmp_path, sandbox_env):
    repo = make_repo(tmp_path / "infra", lock="dynamodb")
    tag(repo, TAG)
    tag(repo, GLOBAL_TAG)
    _cli(repo, "bootstrap", "--env", "dev")
    return repo


def test_plan_of_one_tag_parses_it_once(example, parses):
    parses.clear()
    result = _cli(example, "plan", "--tag", TAG)
    assert f"plan {TAG}: +" in result.output
    assert parses[TAG] == 1, dict(parses)


def test_apply_of_one_tag_parses_it_once(example, parses):
    parses.clear()
    result = _cli(example, "apply", "--tag", TAG, "--auto-approve")
    assert f"applied {TAG}: " in result.output
    assert parses[TAG] == 1, dict(parses)


def test_a_fan_out_parses_each_tag_once(example, parses):
    parses.clear()
    result = _cli(example, "plan", "--tag", "dev_*/research/1.0", "--parallel", "2")
    assert "planned" in result.output
    assert parses[TAG] == 1 and parses[GLOBAL_TAG] == 1, dict(parses)


def test_run_options_and_the_promotion_override_are_typed_and_immutable(monkeypatch):
    from tfdeploy.errors import ValidationError
    from tfdeploy.fleet.options import PromotionOverride, RunOptions
    from tfdeploy.fleet.promotion import OVERRIDE_VAR

    assert PromotionOverride.requested(True, "  hotfix\n CHG-7 ", {}) == PromotionOverride("hotfix CHG-7")
    assert PromotionOverride.requested(False, None, {OVERRIDE_VAR: "pipeline CHG-8"}).reason == "pipeline CHG-8"
    assert not PromotionOverride.requested(False, None, {})
    with pytest.raises(ValidationError, match="--reason"):
        PromotionOverride.requested(True, "", {})
    options = RunOptions(parallel=3, auto_approve=True, override=PromotionOverride("CHG-9"))
    assert (options.parallel, options.retry, options.override.reason) == (3, 0, "CHG-9")
    with pytest.raises(FrozenInstanceError):
        options.parallel = 4  # type: ignore[misc]


def test_command_functions_take_their_run_options_as_one_object():
    """plan, apply, destroy and run receive `run: RunOptions`, not a parameter per option."""
    import inspect

    from tfdeploy.cli.deploy import apply, plan, run
    from tfdeploy.cli.destroy import destroy
    from tfdeploy.cli.fanout import run_fanout

    for command in (plan, apply, destroy, run):
        inner = inspect.unwrap(command.callback)
        assert len(inspect.signature(inner).parameters) <= 4, (command.name, inspect.signature(inner))
        assert "run" in inspect.signature(inner).parameters
    assert len(inspect.signature(run_fanout).parameters) <= 6


@pytest.fixture
def attempts(monkeypatch) -> list[tuple[str, str]]:
    """(tag name, cell action) of every cell the runner's attempt (fleet/runner.py) ran."""
    import tfdeploy.fleet.runner as runner

    seen: list[tuple[str, str]] = []
    original = runner._attempts

    def spy(step, action, *args, **kwargs):
        seen.append((step.tag.name, action.__name__))
        return original(step, action, *args, **kwargs)

    monkeypatch.setattr(runner, "_attempts", spy)
    return seen


def test_one_tag_runs_through_the_fleet_runner_and_its_actions(example, attempts):
    """plan and apply of one tag run the fan-out's cell actions through the runner's attempt
    (fleet/runner.py), as a fan-out's cells do: one path, a fleet of one."""
    seen = attempts
    _cli(example, "plan", "--tag", TAG)
    _cli(example, "apply", "--tag", TAG, "--auto-approve")
    _cli(example, "plan", "--tag", "dev_*/research/1.0")
    assert seen[:2] == [(TAG, "plan_cell"), (TAG, "apply_cell")]
    assert sorted(seen[2:]) == [(GLOBAL_TAG, "plan_cell"), (TAG, "plan_cell")]


def test_run_of_one_tag_plans_and_applies_through_the_runner(example, parses, attempts, checkov_bin,
                                                             monkeypatch):
    """`run --auto-approve` parses its tag once, and its plan and apply are the one tag's cell
    actions through the runner's attempt (lint and scan run inside the plan's, on its work dir)."""
    monkeypatch.setenv("TFDEPLOY_CHECKOV", checkov_bin)
    parses.clear()
    result = _cli(example, "run", "--tag", TAG, "--auto-approve", "--allow-missing", "tflint")
    assert f"run {TAG}: lint passed, scan passed, plan passed, apply passed" in result.output
    assert attempts == [(TAG, "plan_cell"), (TAG, "apply_cell")]
    assert parses[TAG] == 1, dict(parses)
