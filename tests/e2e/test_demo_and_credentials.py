"""The README's main job (`tfdeploy demo`) and the no-AWS-target error, as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess

from tests.e2e.conftest import TFDEPLOY, make_repo, tag

AWS_VARS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_ENDPOINT_URL",
            "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_STS",
            "TFDEPLOY_SANDBOX_ENDPOINT", "AWS_SESSION_TOKEN")


def clean_env(tmp_path, terraform_bin):
    env = {k: v for k, v in os.environ.items() if k not in AWS_VARS}
    env.update(TFDEPLOY_HOME=str(tmp_path / "home"), HOME=str(tmp_path / "user"),
               AWS_EC2_METADATA_DISABLED="true", TFDEPLOY_TERRAFORM=terraform_bin)
    return env


def test_demo_runs_the_whole_flow_offline(tmp_path, terraform_bin):
    env = clean_env(tmp_path, terraform_bin)
    proc = subprocess.run([TFDEPLOY, "demo", "--dir", str(tmp_path / "demo"), "--json"],
                          capture_output=True, text=True, env=env, timeout=180)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["state_objects"] == ["research/dev-global/terraform.tfstate",
                                       "research/dev-us-east-1/terraform.tfstate"]
    assert [d["deployment"]["target_module"] for d in report["deployments"]] == ["module.regional",
                                                                                 "module.global"]
    assert report["sandbox_endpoint"].startswith("http://127.0.0.1:")
    assert "[8/8] state objects" in proc.stderr  # progress lines go to stderr under --json
    # The sandbox the demo started is stopped again.
    status = subprocess.run([TFDEPLOY, "sandbox", "status", "--json"], capture_output=True, text=True, env=env)
    assert json.loads(status.stdout)["running"] is False


def test_plan_without_sandbox_or_credentials_says_how_to_fix(tmp_path, terraform_bin):
    repo = make_repo(tmp_path / "infra")
    tag(repo, "dev_us-east-1/research/1.0")
    proc = subprocess.run([TFDEPLOY, "plan", "--tag", "dev_us-east-1/research/1.0"], cwd=repo,
                          capture_output=True, text=True, env=clean_env(tmp_path, terraform_bin))
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "no AWS credentials found" in lines[0] and "tfdeploy sandbox up" in lines[0]


def test_doctor_reports_each_tool_and_the_aws_target(tmp_path, terraform_bin, checkov_bin, moto_server):
    repo = make_repo(tmp_path / "infra")
    env = {**clean_env(tmp_path, terraform_bin), "TFDEPLOY_CHECKOV": checkov_bin}
    proc = subprocess.run([TFDEPLOY, "doctor", "--json"], cwd=repo, capture_output=True, text=True, env=env)
    checks = {c["name"]: c for c in json.loads(proc.stdout)}
    assert proc.returncode == 1  # no sandbox, no credentials
    assert checks["aws"]["status"] == "missing" and "tfdeploy sandbox up" in checks["aws"]["fix"]
    assert checks["terraform"]["status"] == "ok" and "1.15.5" in checks["terraform"]["detail"]
    assert checks["checkov"]["status"] == "ok"
    assert checks["repo"]["status"] == "ok" and "backend_prefix=demo-tfstate" in checks["repo"]["detail"]
    env["TFDEPLOY_SANDBOX_ENDPOINT"] = moto_server
    proc = subprocess.run([TFDEPLOY, "doctor"], cwd=repo, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stdout
    assert f"local sandbox at {moto_server}" in proc.stdout
    env["TFDEPLOY_SANDBOX_ENDPOINT"] = "http://127.0.0.1:9"  # a stale endpoint: nothing listens there
    proc = subprocess.run([TFDEPLOY, "doctor"], cwd=repo, capture_output=True, text=True, env=env)
    assert proc.returncode == 1
    assert "the sandbox at http://127.0.0.1:9 (TFDEPLOY_SANDBOX_ENDPOINT) is not running" in proc.stdout


def test_demo_deployments_show_in_status_and_history(tmp_path, terraform_bin):
    """What the README suggests after the demo: look at the fleet it deployed."""
    env = clean_env(tmp_path, terraform_bin)
    demo = subprocess.run([TFDEPLOY, "demo", "--dir", str(tmp_path / "demo"), "--keep-sandbox"],
                          capture_output=True, text=True, env=env, timeout=180)
    assert demo.returncode == 0, demo.stderr
    repo = tmp_path / "demo" / "infra"
    try:
        # As the demo says: the sandbox is the example repo's own, found from inside it.
        assert f"cd {repo} && eval" in demo.stdout
        sandbox = subprocess.run([TFDEPLOY, "sandbox", "env"], cwd=repo, capture_output=True, text=True, env=env)
        env.update(line.split(" ", 1)[1].split("=", 1) for line in sandbox.stdout.splitlines()
                   if line.startswith("export "))
        env = {k: v.strip("'") for k, v in env.items()}
        status = subprocess.run([TFDEPLOY, "status", "--env", "dev", "--team", "research", "--json"], cwd=repo,
                                capture_output=True, text=True, env=env)
        assert status.returncode == 0, status.stderr
        cells = {c["cell"]: c for c in json.loads(status.stdout)["cells"]}
        for cell in ("dev-us-east-1-research", "dev-global-research"):
            assert cells[cell]["version"] == "1.0" and cells[cell]["result"] == "succeeded", cells[cell]
        history = subprocess.run([TFDEPLOY, "history", "--tag", "dev_global/research/1.0", "--json"], cwd=repo,
                                 capture_output=True, text=True, env=env)
        [record] = json.loads(history.stdout)["records"]
        assert (record["action"], record["result"], record["add"]) == ("apply", "succeeded", 1)
    finally:
        subprocess.run([TFDEPLOY, "sandbox", "down"], cwd=repo, capture_output=True, env=env)
