"""A fan-out checks what all its cells share once, before any cell starts: credentials and the
state buckets. A problem is one line and exit 1, not the same error once per cell (real git tags,
the embedded Terraform, moto on 127.0.0.1)."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.e2e.conftest import TFDEPLOY, tag, tfdeploy
from tests.statecheck import s3

SCOPES = ("us-east-1", "eu-central-1", "global")


def only_line(proc: subprocess.CompletedProcess) -> str:
    """The run's whole output is one error line (nothing on stdout, no traceback)."""
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert proc.stdout == "" and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tfdeploy: error: "), proc.stderr
    return lines[0]


@pytest.mark.parametrize("command", ["apply", "destroy"])
def test_no_credentials_is_one_line_before_any_cell(repo, tmp_path, command):
    for scope in SCOPES:
        tag(repo, f"dev_{scope}/research/1.0")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("AWS_") and k != "TFDEPLOY_SANDBOX_ENDPOINT"}
    # No shared config, no instance metadata: nothing on this machine may answer for AWS.
    env.update(HOME=str(tmp_path / "nohome"), AWS_EC2_METADATA_DISABLED="true",
               AWS_CONFIG_FILE=str(tmp_path / "none"), AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
               TFDEPLOY_HOME=str(tmp_path / "fresh-home"))
    proc = subprocess.run([TFDEPLOY, command, "--tag", "dev_*/research/1.0", "--auto-approve"], cwd=repo,
                          capture_output=True, text=True, env=env, timeout=120)
    line = only_line(proc)
    assert "no AWS credentials found" in line and "no cell was started" in line
    assert not (repo / ".tfdeploy" / "runs").exists()  # no run, no cell log, nothing to --only-failed


def test_a_state_bucket_that_does_not_exist_is_one_line_before_any_cell(repo):
    for scope in SCOPES:
        tag(repo, f"dev_{scope}/research/1.0")
    proc = tfdeploy(repo, "apply", "--tag", "dev_*/research/1.0", "--auto-approve", check=False)
    line = only_line(proc)
    assert "state bucket demo-tfstate-dev does not exist" in line
    assert "run tfdeploy bootstrap --env dev" in line
    assert not (repo / ".tfdeploy" / "runs").exists()
    assert "demo-tfstate-dev" not in [b["Name"] for b in s3().list_buckets()["Buckets"]]
    # After bootstrap the same command runs every cell.
    tfdeploy(repo, "bootstrap", "--env", "dev")
    tfdeploy(repo, "apply", "--tag", "dev_*/research/1.0", "--auto-approve")


def test_a_signing_key_that_cannot_be_used_is_one_line_before_any_cell(repo):
    """The committed ledger_signing_key names a key KMS does not have: every cell would sign its
    records with it (and promotion verify with it), so the run stops before any cell starts."""
    from tests.conftest import git

    pyproject = repo / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + 'ledger_signing_key = "alias/no-such-ledger-key"\n')
    git(repo, "commit", "-qam", "sign the ledger")
    for scope in SCOPES:
        tag(repo, f"dev_{scope}/research/1.0")
    tfdeploy(repo, "bootstrap", "--env", "dev")
    proc = tfdeploy(repo, "apply", "--tag", "dev_*/research/1.0", "--auto-approve", check=False)
    line = only_line(proc)
    assert "ledger signing key alias/no-such-ledger-key cannot be used" in line and "no cell was started" in line
    assert not (repo / ".tfdeploy" / "runs").exists()
    assert [o["Key"] for o in s3().list_objects_v2(Bucket="demo-tfstate-dev").get("Contents", [])] == []


def test_checks_run_in_order_and_the_first_problem_stops_the_rest():
    """Pure: the extension point another check (e.g. the signing key) plugs into."""
    from pathlib import Path

    from tfdeploy.fleet.preflight import CHECKS, Fleet, PreflightError, run_checks
    from tfdeploy.model.settings import Settings

    seen = []

    def fine(fleet):
        seen.append("fine")

    def broken(fleet):
        raise PreflightError("the signing key cannot be read; fix it")

    def never(fleet):
        seen.append("never")

    fleet = Fleet(Path("."), Settings(), {}, {}, [], {})
    with pytest.raises(PreflightError, match="signing key"):
        run_checks(fleet, [fine, broken, never])
    assert seen == ["fine"]
    assert [c.__name__ for c in CHECKS] == ["check_credentials", "check_state_buckets", "check_signing_keys"]
