"""The README's main job (`tfdeploy demo`) and the no-AWS-target error, as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.e2e.conftest import TFDEPLOY, make_repo, tag

AWS_VARS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_ENDPOINT_URL",
            "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_STS",
            "TFDEPLOY_SANDBOX_ENDPOINT", "AWS_SESSION_TOKEN")


def clean_env(tmp_path, terraform_bin):
    env = {k: v for k, v in os.environ.items() if k not in AWS_VARS}
    env.update(TFDEPLOY_HOME=str(tmp_path / "home"), HOME=str(tmp_path / "user"),
               AWS_EC2_METADATA_DISABLED="true", TFDEPLOY_TERRAFORM=terraform_bin,
               COLUMNS="120")  # the matrix's layout follows the width (pytest-xdist's workers set 80)
    return env


REGIONS = ("ap-southeast-2", "eu-central-1", "eu-west-1", "us-east-1")
CELLS = [f"{env}-{scope}-research" for env in ("dev", "qa") for scope in ("global", *REGIONS)]


def test_demo_runs_the_whole_flow_offline(tmp_path, terraform_bin):
    """`tfdeploy demo --json` outside a terminal (as in CI): release, the fan-out as lines, the
    matrix, promote, the qa fan-out and the HTML report; the document on stdout says what ran."""
    env = clean_env(tmp_path, terraform_bin)
    proc = subprocess.run([TFDEPLOY, "demo", "--dir", str(tmp_path / "demo"), "--json"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)  # stdout is the document alone
    assert report["commands"] == [
        "tfdeploy release --env dev --team research --version 1.0 --scope all --global",
        "tfdeploy apply --tag 'dev_*/research/1.0' --auto-approve",
        "tfdeploy status --team research",
        "tfdeploy promote --from dev --to qa --team research --version 1.0 --scope all --global",
        "tfdeploy apply --tag 'qa_*/research/1.0' --auto-approve",
        f"tfdeploy status --team research --html {tmp_path / 'demo' / 'fleet.html'}"]
    assert [(c["cell"], c["version"], c["result"], c["marks"]) for c in report["cells"]] == [
        (cell, "1.0", "succeeded", []) for cell in CELLS]
    assert report["state_objects"] == sorted(
        f"demo-tfstate-{env}/research/{env}-{scope}/terraform.tfstate"
        for env in ("dev", "qa") for scope in ("global", *REGIONS))
    assert report["sandbox_endpoint"].startswith("http://127.0.0.1:")
    # Where its time went, step by step (benchmarks/demo.py prints these): wall and CPU seconds.
    assert [s["step"] for s in report["steps"]] == [
        "example repo", "sandbox", "bootstrap", "release dev", "apply dev", "status", "promote qa", "apply qa",
        "status --html", "read back (--json)", "sandbox stop"]
    assert all(s["seconds"] >= 0 and s["cpu_seconds"] >= 0 for s in report["steps"])
    assert abs(sum(s["seconds"] for s in report["steps"]) - report["seconds"]) < 1.0
    # The fan-outs ran Terraform: their CPU (tfdeploy and its Terraform processes) is counted.
    fanouts = [s for s in report["steps"] if s["step"].startswith("apply ")]
    assert all(s["cpu_seconds"] > 0.5 for s in fanouts), fanouts
    assert report["sandbox_cpu_seconds"] > 0  # the server it started (read from /proc)

    # Progress and the commands' own output go to stderr under --json, as lines (no terminal).
    err = proc.stderr
    assert "[9/9] $ tfdeploy status --team research --html" in err
    assert "\x1b[" not in err  # no live table, no colour
    lines = err.splitlines()
    def first(prefix: str) -> int:
        return next(i for i, line in enumerate(lines) if line.startswith(prefix))

    # Global first, then the Regions (one line per event).
    assert first("[dev-global-research] applied +1 ~0 -0") < min(first(f"[dev-{r}-research] start") for r in REGIONS)
    assert first("[qa-global-research] applied +1 ~0 -0") < min(first(f"[qa-{r}-research] start") for r in REGIONS)
    # The matrix after dev (qa not yet deployed), then after qa.
    assert "research  dev  1.0     1.0    1.0   1.0   1.0" in lines
    assert "          qa   .       -      -     -     -" in lines
    assert "          qa   1.0     1.0    1.0   1.0   1.0" in lines
    assert "Regions: apse2=ap-southeast-2, euc1=eu-central-1, euw1=eu-west-1, use1=us-east-1" in lines
    assert lines.count("5 of 5 cells succeeded") == 2 and "10 cells: all ok" in lines

    page = (tmp_path / "demo" / "fleet.html").read_text(encoding="utf-8")
    assert 'class="mx"' in page and page.count('class="mrow"') == 2 and 'title="ap-southeast-2">apse2</th>' in page
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


def test_status_without_credentials_is_one_line_even_with_a_signing_key(tmp_path, terraform_bin):
    """The ledger cannot be read at all: one error saying how to fix it, not first a warning that
    the signing key's public key cannot be read either (it printed both)."""
    repo = make_repo(tmp_path / "infra", ledger_signing_key="alias/tfdeploy-ledger")
    proc = subprocess.run([TFDEPLOY, "status"], cwd=repo, capture_output=True, text=True,
                          env=clean_env(tmp_path, terraform_bin), timeout=120)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert "cannot read the ledger" in lines[0] and "tfdeploy sandbox up" in lines[0]


@pytest.mark.parametrize("args, what", [(("locks", "--env", "dev"), "cannot list the state locks"),
                                        (("pipeline", "run", "--env", "dev"), "cannot read pipeline tfdeploy-dev")])
def test_aws_reading_commands_without_credentials_say_how_to_fix(tmp_path, terraform_bin, args, what):
    """`locks` and `pipeline run` said only "Unable to locate credentials", not what to do about it,
    unlike status (the same hint, from aws/clients.access_hint)."""
    repo = make_repo(tmp_path / "infra")
    proc = subprocess.run([TFDEPLOY, *args], cwd=repo, capture_output=True, text=True,
                          env=clean_env(tmp_path, terraform_bin), timeout=120)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert what in lines[0] and "tfdeploy sandbox up" in lines[0] and "AWS_PROFILE" in lines[0], lines[0]


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


def run_in_terminal(argv: list[str], env: dict[str, str], timeout: float = 300) -> tuple[int, str]:
    """Run `argv` with a pseudo-terminal of 120 x 40 as its stdin, stdout and stderr, as a person
    at a terminal does; (exit code, everything it wrote, with `\n` line ends)."""
    import fcntl
    import pty
    import select
    import struct
    import termios
    import time

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env)
    os.close(slave)
    chunks, deadline = [], time.monotonic() + timeout
    try:
        while True:
            assert time.monotonic() < deadline, b"".join(chunks).decode(errors="replace")[-3000:]
            if select.select([master], [], [], 0.5)[0]:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: every writer closed the terminal
                    break
                chunks.append(data)
            elif proc.poll() is not None:  # ended; a sandbox it left running may hold the terminal
                break
    finally:
        os.close(master)
    return proc.wait(timeout=30), b"".join(chunks).decode(errors="replace").replace("\r\n", "\n")


def test_demo_deployments_show_in_status_and_history(tmp_path, terraform_bin):
    """The demo at a terminal (the fan-outs as a live table), then what the README suggests after
    it: look at the fleet it deployed."""
    env = {**clean_env(tmp_path, terraform_bin), "TERM": "xterm-256color"}
    env.pop("CI", None)
    code, shown = run_in_terminal([TFDEPLOY, "demo", "--dir", str(tmp_path / "demo"), "--keep-sandbox"], env)
    assert code == 0, shown[-3000:]
    repo = tmp_path / "demo" / "infra"
    try:
        # A live table redrawn in place (cursor up, erase line), not a line per event.
        assert "\x1b[1A" in shown and "\x1b[2K" in shown
        assert "[dev-global-research] start" not in shown and "[qa-global-research] start" not in shown
        assert "research  dev  1.0     1.0    1.0   1.0   1.0" in shown
        assert "          qa   1.0     1.0    1.0   1.0   1.0" in shown
        # As the demo says: the sandbox is the example repo's own, found from inside it.
        assert f"cd {repo} && eval" in shown
        sandbox = subprocess.run([TFDEPLOY, "sandbox", "env"], cwd=repo, capture_output=True, text=True, env=env)
        env.update(line.split(" ", 1)[1].split("=", 1) for line in sandbox.stdout.splitlines()
                   if line.startswith("export "))
        env = {k: v.strip("'") for k, v in env.items()}
        status = subprocess.run([TFDEPLOY, "status", "--env", "dev", "--team", "research", "--json"], cwd=repo,
                                capture_output=True, text=True, env=env)
        assert status.returncode == 0, status.stderr
        cells = {c["cell"]: c for c in json.loads(status.stdout)["cells"]}
        assert sorted(cells) == sorted(c for c in CELLS if c.startswith("dev-"))
        for cell in cells.values():
            assert cell["version"] == "1.0" and cell["result"] == "succeeded", cell
        history = subprocess.run([TFDEPLOY, "history", "--tag", "dev_global/research/1.0", "--json"], cwd=repo,
                                 capture_output=True, text=True, env=env)
        [record] = json.loads(history.stdout)["records"]
        assert (record["action"], record["result"], record["add"]) == ("apply", "succeeded", 1)
    finally:
        subprocess.run([TFDEPLOY, "sandbox", "down"], cwd=repo, capture_output=True, env=env)
