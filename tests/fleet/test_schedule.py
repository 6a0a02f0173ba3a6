"""Cell order (pure): global of an env+team first, then one canary Region, then the rest (the
waves of model/waves.py); destroy reversed."""

from __future__ import annotations

from tfdeploy.fleet.retry import backoff_s, is_transient, should_retry
import pytest

from tfdeploy.errors import ConfigError
from tfdeploy.fleet.schedule import default_parallel, schedule
from tfdeploy.model.settings import merge_settings
from tfdeploy.model.waves import group_waves
from tfdeploy.model.tags import parse_tag

TAGS = [parse_tag(n) for n in ("dev_us-east-1/research/1.1", "dev_global/research/1.1",
                               "dev_eu-central-1/research/1.1", "dev_us-east-1/risk/1.1",
                               "qa_global/research/1.1")]


def test_global_first_and_its_regions_wait_for_it():
    steps = schedule(TAGS, "apply")
    assert [s.tag.cell for s in steps] == ["dev-global-research", "dev-eu-central-1-research",
                                           "dev-us-east-1-research", "dev-us-east-1-risk",
                                           "qa-global-research"]
    after = {s.tag.cell: s.after for s in steps}
    # Waves: eu-central-1 is the canary (the first Region) and waits for global; us-east-1 waits
    # for the canary (before waves it waited for global only: the order is unchanged).
    assert after["dev-eu-central-1-research"] == ("dev-global-research",)
    assert after["dev-us-east-1-research"] == ("dev-eu-central-1-research",)
    assert after["dev-us-east-1-risk"] == ()  # no global of risk selected: nothing to wait for
    assert after["qa-global-research"] == ()
    assert {s.tag.cell: s.wave for s in steps} == {
        "dev-global-research": 0, "dev-eu-central-1-research": 1, "dev-us-east-1-research": 2,
        "dev-us-east-1-risk": 0, "qa-global-research": 0}


def _release(regions, scope_global=True):
    names = [f"dev_{r}/research/1.1" for r in regions] + (["dev_global/research/1.1"] if scope_global else [])
    return [parse_tag(n) for n in names]


NINE = ("us-east-1", "us-east-2", "us-west-1", "us-west-2", "eu-west-1", "eu-central-1",
        "ap-southeast-1", "ap-northeast-1")


def test_default_waves_are_global_then_one_canary_then_the_rest():
    waves = group_waves(_release(NINE))
    assert [[t.scope_name for t in w] for w in waves] == [
        ["global"], ["ap-northeast-1"],
        ["ap-southeast-1", "eu-central-1", "eu-west-1", "us-east-1", "us-east-2", "us-west-1", "us-west-2"]]


def test_named_waves_counts_and_the_cap_split_waves_and_never_drop_a_cell():
    tags = _release(NINE)
    waves = group_waves(tags, ("global", "us-east-1", "2", "eu-west-1 eu-central-1"), cap=20)
    assert [[t.scope_name for t in w] for w in waves] == [
        ["global"], ["us-east-1"], ["ap-northeast-1", "ap-southeast-1"], ["eu-central-1", "eu-west-1"],
        ["us-east-2", "us-west-1", "us-west-2"]]  # not placed by any entry: a last wave
    capped = group_waves(tags, ("global", "*"), cap=3)
    assert [len(w) for w in capped] == [1, 3, 3, 2]
    assert sorted(t.cell for w in capped for t in w) == sorted(t.cell for t in tags)
    # No global selected, no "global" entry: the canary still goes first.
    assert [len(w) for w in group_waves(_release(NINE, scope_global=False))] == [1, 7]
    steps = schedule(tags, "apply", ("global", "*"), 3)
    assert [s.wave for s in steps] == [0, 1, 1, 1, 2, 2, 2, 3, 3]
    assert steps[4].after == tuple(s.tag.cell for s in steps[1:4])


@pytest.mark.parametrize("table, message", [
    ({"waves": ["*", "global"]}, "'*' (the rest of the Regions) must be the last wave"),
    ({"waves": ["1", "global"]}, "'global' must be the first wave"),
    ({"waves": ["global", "us-east-1; rm"]}, "is not 'global', a number of Regions"),
    ({"waves": []}, "list at least one wave"),
    ({"max_parallel_builds": 51}, "must be a whole number from 1 to 50"),
    ({"max_parallel_builds": "0"}, "must be a whole number from 1 to 50"),
    ({"wave_bake_seconds": -1}, "must be a whole number of seconds"),
])
def test_wave_settings_are_checked(table, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace("*", r"\*")):
        merge_settings(table, {}, {})


def test_wave_settings_come_from_the_file_the_environment_or_options():
    s = merge_settings({"waves": ["global", "us-east-1  eu-west-1", "*"]},
                       {"TFDEPLOY_MAX_PARALLEL_BUILDS": "30"}, {"wave_bake_seconds": "60"})
    assert (s.waves, s.max_parallel_builds, s.wave_bake_seconds) == (
        ("global", "us-east-1 eu-west-1", "*"), 30, 60)
    assert merge_settings({}, {}, {}).waves == ("global", "1", "*")


def test_destroy_runs_regions_first_then_their_global():
    steps = schedule(TAGS, "destroy")
    cells = [s.tag.cell for s in steps]
    assert cells.index("dev-global-research") > cells.index("dev-us-east-1-research")
    after = {s.tag.cell: s.after for s in steps}
    assert set(after["dev-global-research"]) == {"dev-eu-central-1-research", "dev-us-east-1-research"}
    assert after["dev-us-east-1-research"] == ()


def test_transient_failures_retry_with_backoff_but_never_after_the_plan_was_spent():
    transient = ["terraform plan failed (exit 1): ThrottlingException: Rate exceeded",
                 "read tcp 10.0.0.1:443: connection reset by peer",
                 "dial tcp: i/o timeout", "RequestTimeout: Your socket connection timed out",
                 "terraform plan: the state is locked by ci@host (OperationTypePlan since ...)",
                 "cell dev-us-east-1-research is busy: pid 12 (tfdeploy apply) since 10:00:00Z; wait",
                 "Failed to install provider"]
    permanent = ["terraform plan failed (exit 1): Invalid value for input variable",
                 "tag 'dev_us-east-1/research/1.1' is a lightweight tag",
                 "the saved plan was made from commit abc but the tag now points at def"]
    assert all(is_transient(m) for m in transient)
    assert not any(is_transient(m) for m in permanent)
    assert should_retry(transient[0], attempt=1, retries=2, plan_spent=False)
    assert not should_retry(transient[0], attempt=3, retries=2, plan_spent=False)
    assert not should_retry(transient[1], attempt=1, retries=2, plan_spent=True)
    assert [backoff_s(n) for n in (1, 2, 3, 10)] == [2.0, 4.0, 8.0, 60.0]


def test_default_parallelism():
    assert [default_parallel(n, memory_mb=None) for n in (1, 2, 4, 16)] == [2, 4, 8, 8]


def test_default_parallelism_fits_in_memory():
    """Issue 24: each cell's Terraform with the AWS provider holds about 300 MB, and its
    provider as much again; the default must never swap a 4 GB CodeBuild small (2 vCPUs)."""
    from tfdeploy.fleet.schedule import MB_PER_CELL, RESERVED_MB, available_memory_mb

    assert default_parallel(2, memory_mb=4096) == 4  # CodeBuild small: CPUs decide, 4 x 600 MB fits
    assert default_parallel(8, memory_mb=4096) == 5  # (4096 - 1024) // 600: memory decides
    assert default_parallel(4, memory_mb=2048) == 1 and default_parallel(4, memory_mb=512) == 1
    assert default_parallel(16, memory_mb=64 * 1024) == 8
    for cpus, mb in ((2, 4096), (8, 4096), (4, 3000), (16, 7000)):
        assert default_parallel(cpus, memory_mb=mb) * MB_PER_CELL + RESERVED_MB <= max(mb, RESERVED_MB + MB_PER_CELL)
    found = available_memory_mb()
    assert found is None or 64 <= found <= 64 * 1024 * 1024  # this machine's, in MB
