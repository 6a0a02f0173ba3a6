"""Cell order (pure): global of an env+team first, its Regions after it; destroy reversed."""

from __future__ import annotations

from tfdeploy.fleet.retry import backoff_s, is_transient, should_retry
from tfdeploy.fleet.schedule import default_parallel, schedule
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
    assert after["dev-us-east-1-research"] == ("dev-global-research",)
    assert after["dev-us-east-1-risk"] == ()  # no global of risk selected: nothing to wait for
    assert after["qa-global-research"] == ()


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
