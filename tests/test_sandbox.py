"""The local AWS sandbox: pure helpers, and a real moto server process started and stopped by
`tfdeploy.sandbox` (and its CLI), used by boto3, bash and the embedded Terraform.

Every address is 127.0.0.1; nothing here talks to AWS.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from tfdeploy.aws import sandbox as sb
from tfdeploy.aws.clients import client
from tfdeploy.cli.aws import bootstrap, sandbox
from tfdeploy.cli.common import TfdeployGroup
from tfdeploy.errors import TfdeployError, ValidationError


@click.group(cls=TfdeployGroup)
def cli() -> None:
    """Stand-in for the real `tfdeploy` group until cli.py registers these commands."""


cli.add_command(sandbox)
cli.add_command(bootstrap)

# The same commands in a fresh interpreter, for the bash `eval` test.
CLI_SCRIPT = textwrap.dedent("""
    from tfdeploy.cli.common import TfdeployGroup
    from tfdeploy.cli.aws import sandbox
    group = TfdeployGroup(name="tfdeploy")
    group.add_command(sandbox)
    group(prog_name="tfdeploy")
""")


def _clean_aws_env(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    for name in [n for n in os.environ if n.startswith("AWS_")] + [sb.ENDPOINT_VAR]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TFDEPLOY_HOME", str(home))
    # Outside any repo, the sandbox's folder is TFDEPLOY_HOME itself (inside one: sandbox_dir).
    outside = home.parent / "outside-any-repo"
    outside.mkdir(parents=True, exist_ok=True)
    monkeypatch.chdir(outside)
    assert sb.sandbox_dir(os.environ) == home.resolve()


def _kill_if_alive(pid: int) -> None:
    if sb.pid_alive(pid):
        os.kill(pid, signal.SIGKILL)


# ---- pure helpers -----------------------------------------------------------------------------


def test_aws_env_adds_dummy_credentials_only_when_none_are_set() -> None:
    env = sb.aws_env("http://127.0.0.1:5000", {})
    assert env == {
        "TFDEPLOY_SANDBOX_ENDPOINT": "http://127.0.0.1:5000",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:5000",
        "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:5000",
        "AWS_ENDPOINT_URL_DYNAMODB": "http://127.0.0.1:5000",
        "AWS_ENDPOINT_URL_STS": "http://127.0.0.1:5000",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }
    mine = sb.aws_env("http://127.0.0.1:5000", {"AWS_ACCESS_KEY_ID": "AKIAMINE", "AWS_REGION": "eu-west-1"})
    assert "AWS_ACCESS_KEY_ID" not in mine and "AWS_SECRET_ACCESS_KEY" not in mine
    assert mine["AWS_DEFAULT_REGION"] == "eu-west-1"
    assert sb.aws_env("http://x", {"AWS_DEFAULT_REGION": "ap-south-1", "AWS_REGION": "eu-west-1"})[
        "AWS_DEFAULT_REGION"] == "ap-south-1"


def test_backend_overrides_are_the_verified_minimum() -> None:
    assert sb.backend_overrides() == {
        "use_path_style": "true",
        "skip_credentials_validation": "true",
        "skip_requesting_account_id": "true",
    }
    sb.backend_overrides()["use_path_style"] = "false"  # a copy: callers cannot change the module's
    assert sb.backend_overrides()["use_path_style"] == "true"


def test_shell_exports_survive_bash_eval_with_awkward_values() -> None:
    text = sb.shell_exports({"A": "has space", "B": "it's $HOME `x`", "C": "plain"})
    out = subprocess.run(["bash", "-c", 'eval "$1"; printf "%s|%s|%s" "$A" "$B" "$C"', "_", text],
                         capture_output=True, text=True, check=True).stdout
    assert out == "has space|it's $HOME `x`|plain"


def test_parse_info_rejects_garbage() -> None:
    log = Path("/tmp/x.log")
    assert sb.parse_info("{not json", log) is None
    assert sb.parse_info('{"endpoint": "http://127.0.0.1:1"}', log) is None
    info = sb.parse_info('{"endpoint": "http://127.0.0.1:1", "port": 1, "pid": 42}', log)
    assert info == sb.SandboxInfo("http://127.0.0.1:1", 1, 42, "", str(log))


def test_active_endpoint_prefers_the_environment(tmp_path: Path) -> None:
    import socket

    with socket.socket() as listener:  # something listening: the variable is taken as it is
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert sb.active_endpoint({"TFDEPLOY_SANDBOX_ENDPOINT": f"http://127.0.0.1:{port}/"}, tmp_path) == (
            f"http://127.0.0.1:{port}")
    # nothing listening any more: one line saying so, not a dial error later
    with pytest.raises(TfdeployError, match=rf"the sandbox at http://127.0.0.1:{port} .* is not running"):
        sb.active_endpoint({"TFDEPLOY_SANDBOX_ENDPOINT": f"http://127.0.0.1:{port}/"}, tmp_path)
    assert sb.active_endpoint({}, tmp_path) is None
    with pytest.raises(ValidationError, match="TFDEPLOY_SANDBOX_ENDPOINT='127.0.0.1:9' is not a URL"):
        sb.active_endpoint({"TFDEPLOY_SANDBOX_ENDPOINT": "127.0.0.1:9"}, tmp_path)


# ---- stale and foreign state files ------------------------------------------------------------


def _write_state(state_dir: Path, pid: int, port: int = 1) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / sb.STATE_FILE).write_text(json.dumps(
        {"endpoint": f"http://127.0.0.1:{port}", "port": port, "pid": pid, "started_at": "", "log_path": ""}))


def test_stale_state_file_counts_as_not_running_and_is_removed(tmp_path: Path, monkeypatch) -> None:
    _clean_aws_env(monkeypatch, tmp_path)
    dead = subprocess.Popen(["true"])
    dead.wait()
    _write_state(tmp_path, dead.pid)

    assert sb.active_endpoint({}, tmp_path) is None
    assert (tmp_path / sb.STATE_FILE).exists()  # active_endpoint only reads
    result = CliRunner().invoke(cli, ["sandbox", "env"])
    assert result.exit_code == 1
    assert result.output.strip() == ("tfdeploy: error: the local AWS sandbox is not running: "
                                     "run `tfdeploy sandbox up` first")
    assert sb.status(tmp_path) is None
    assert not (tmp_path / sb.STATE_FILE).exists()
    assert CliRunner().invoke(cli, ["sandbox", "down"]).output == "sandbox not running\n"


def test_recycled_pid_of_another_program_is_not_the_sandbox(tmp_path: Path) -> None:
    other = subprocess.Popen(["sleep", "30"])
    try:
        _write_state(tmp_path, other.pid)
        assert sb.status(tmp_path) is None
        assert sb.stop(tmp_path) is False
        assert other.poll() is None  # still running: stop never signals a process that is not moto
    finally:
        other.kill()
        other.wait()


def test_port_in_use_fails_with_one_clear_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(TfdeployError, match=rf"^port {port} on 127.0.0.1 is in use; pick another --port"):
            sb.start(tmp_path, port=port, timeout=20)
    assert not (tmp_path / sb.STATE_FILE).exists()
    assert sb.status(tmp_path) is None


def test_server_that_dies_or_never_answers_is_reported(tmp_path: Path, monkeypatch) -> None:
    """The launch/poll/log path with stand-in server commands (moto itself starts fine)."""
    monkeypatch.setattr(sb, "_server_command", lambda port: [sys.executable, "-c", "print('boom: bad flag')"])
    with pytest.raises(TfdeployError, match=r"moto server exited right after starting on a free port "
                                            r"\(.*boom: bad flag\); see .*sandbox.log$"):
        sb.start(tmp_path)
    sleeper: list[int] = []

    def silent(port: int) -> list[str]:
        return [sys.executable, "-c", "import time; time.sleep(60)"]

    monkeypatch.setattr(sb, "_server_command", silent)
    monkeypatch.setattr(sb.subprocess, "Popen", _recording_popen(sleeper))
    with pytest.raises(TfdeployError, match=r"moto server did not answer on http://127.0.0.1:\d+ within 1 s"):
        sb.start(tmp_path, timeout=1)
    assert sleeper and not sb.pid_alive(sleeper[0])  # the silent server was stopped
    assert not (tmp_path / sb.STATE_FILE).exists()


def _recording_popen(pids: list[int]):
    real = subprocess.Popen

    def popen(*args, **kwargs):
        process = real(*args, **kwargs)
        pids.append(process.pid)
        return process

    return popen


# ---- a real sandbox process -------------------------------------------------------------------


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """TFDEPLOY_HOME in a temp dir, no AWS settings; any sandbox left running is killed."""
    state_dir = tmp_path / "home"
    _clean_aws_env(monkeypatch, state_dir)
    yield state_dir
    info = sb._read(state_dir)
    sb.stop(state_dir)
    if info is not None:
        _kill_if_alive(info.pid)


def test_sandbox_lifecycle_through_the_cli(home: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(cli, ["sandbox", "status"]).output == "not running\n"

    up = runner.invoke(cli, ["sandbox", "up"])
    assert up.exit_code == 0, up.output
    info = sb.status(home)
    assert info is not None and sb.pid_alive(info.pid)
    assert f"sandbox started at {info.endpoint} (pid {info.pid}" in up.output
    assert info.endpoint.startswith("http://127.0.0.1:")
    assert Path(info.log_path) == home / sb.LOG_FILE and Path(info.log_path).exists()
    # The server that sends each answer whole (tests/test_motoserver.py), not moto's own.
    assert f"moto server (whole responses) on {info.endpoint}" in Path(info.log_path).read_text()
    recorded = json.loads((home / sb.STATE_FILE).read_text())
    assert recorded == info.to_dict()

    # The endpoint is a working S3 for boto3.
    s3 = client("s3", "us-east-1", {}, sb.active_endpoint({}, home))
    s3.create_bucket(Bucket="sandbox-probe")
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["sandbox-probe"]
    # ...and has the ledger signing key at its stable alias (ECC, sign and verify).
    key = client("kms", "us-east-1", {}, sb.active_endpoint({}, home)).describe_key(
        KeyId="alias/tfdeploy-ledger")["KeyMetadata"]
    assert (key["KeyUsage"], key["KeySpec"]) == ("SIGN_VERIFY", "ECC_NIST_P256")

    again = runner.invoke(cli, ["sandbox", "up", "--json"])
    assert again.exit_code == 0
    assert json.loads(again.output) == {"running": True, "already_running": True, **info.to_dict()}
    assert sb.start(home) == info  # idempotent: same process

    status = runner.invoke(cli, ["sandbox", "status", "--json"])
    assert json.loads(status.output) == {"running": True, **info.to_dict(), "answering": True,
                                         "env_override": None}
    assert f"running at {info.endpoint}\n  pid {info.pid}" in runner.invoke(cli, ["sandbox", "status"]).output

    down = runner.invoke(cli, ["sandbox", "down"])
    assert down.output == ("sandbox stopped; its buckets, tables, state objects and ledger records are "
                           "discarded (the next `sandbox up` starts empty)\n")
    assert not sb.pid_alive(info.pid)
    assert not (home / sb.STATE_FILE).exists()
    assert runner.invoke(cli, ["sandbox", "down"]).output == "sandbox not running\n"
    assert json.loads(runner.invoke(cli, ["sandbox", "status", "--json"]).output) == {
        "running": False, "env_override": None}


def test_env_output_is_evaluable_by_bash(home: Path) -> None:
    info = sb.start(home)
    script = 'eval "$("$0" -c "$1" sandbox env)"; echo "$AWS_ENDPOINT_URL_S3 $AWS_ACCESS_KEY_ID $AWS_DEFAULT_REGION"'
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "AKIAREALKEY", "AWS_SECRET_ACCESS_KEY": "real"}
    out = subprocess.run(["bash", "-c", script, sys.executable, CLI_SCRIPT], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    # Real keys in the shell are replaced: a sandbox shell must not carry them along.
    assert out.stdout.split() == [info.endpoint, "testing", "us-east-1"]


def test_terraform_s3_backend_works_against_the_sandbox(home: Path, terraform_bin: str, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """`sandbox up` + `bootstrap` + Terraform with backend_overrides(): state and locks land in the
    sandbox, with DynamoDB locking and with the S3 lockfile."""
    sb.start(home)
    endpoint = sb.active_endpoint({}, home)
    for name, value in sb.aws_env(endpoint, {}).items():
        monkeypatch.setenv(name, value)
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / "pyproject.toml").write_text('[tool.tfdeploy]\nbackend_prefix = "acme"\n')
    module = tmp_path / "module"
    module.mkdir()
    (module / "main.tf").write_text('terraform {\n  backend "s3" {}\n}\n\n'
                                    'resource "terraform_data" "x" {\n  input = "hello"\n}\n')
    s3 = client("s3", "us-east-1", {}, endpoint)
    for lock, extra in (("dynamodb", {"dynamodb_table": "acme-lock-dev"}), ("s3", {"use_lockfile": "true"})):
        result = CliRunner().invoke(cli, ["bootstrap", "--env", "dev", "--repo", str(repo), "--set", f"lock={lock}"])
        assert result.exit_code == 0, result.output
        work = tmp_path / f"work-{lock}"
        shutil.copytree(module, work)
        config = {"bucket": "acme-dev", "key": f"{lock}/terraform.tfstate", "region": "us-east-1",
                  "encrypt": "true", **extra, **sb.backend_overrides()}
        for args in (["init", "-input=false", "-no-color", *(f"-backend-config={k}={v}" for k, v in config.items())],
                     ["apply", "-auto-approve", "-input=false", "-no-color"]):
            run = subprocess.run([terraform_bin, *args], cwd=work, capture_output=True, text=True, timeout=120)
            assert run.returncode == 0, run.stderr
        state = json.loads(s3.get_object(Bucket="acme-dev", Key=f"{lock}/terraform.tfstate")["Body"].read())
        assert [r["type"] for r in state["resources"]] == ["terraform_data"]
    digests = client("dynamodb", "us-east-1", {}, endpoint).scan(TableName="acme-lock-dev")["Items"]
    assert [i["LockID"]["S"] for i in digests] == ["acme-dev/dynamodb/terraform.tfstate-md5"]


# ---- one sandbox per repo ---------------------------------------------------------------------


def _cli_in(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`tfdeploy sandbox ...` in a fresh interpreter whose working directory is `cwd`, as a user
    typing it in that repo would run it."""
    return subprocess.run([sys.executable, "-c", CLI_SCRIPT, *args], cwd=cwd, env=dict(os.environ),
                          capture_output=True, text=True, timeout=90)


def test_two_repos_get_two_sandboxes_and_down_in_one_leaves_the_other(home: Path, tmp_path: Path) -> None:
    """Two repos (one a second checkout of the other, as `git worktree add` makes) on one machine:
    each `sandbox up` starts its own server, and `sandbox down` in one never stops the other or
    wipes its buckets."""
    from tests.conftest import git

    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    git(first, "init", "-q")
    git(first, "commit", "-q", "--allow-empty", "-m", "start")
    git(first, "worktree", "add", "-q", str(second))
    (first / "envs").mkdir()  # `up` from a sub-folder finds the repo's sandbox too

    ups = [_cli_in(first / "envs", "sandbox", "up", "--json"), _cli_in(second, "sandbox", "up", "--json")]
    assert [u.returncode for u in ups] == [0, 0], [u.stderr for u in ups]
    one, two = (json.loads(u.stdout) for u in ups)
    started = [one["pid"], two["pid"]]
    try:
        assert not two["already_running"], "the second repo was handed the first repo's sandbox"
        assert one["endpoint"] != two["endpoint"] and one["pid"] != two["pid"]
        client("s3", "us-east-1", {}, two["endpoint"]).create_bucket(Bucket="second-state")

        down = _cli_in(first, "sandbox", "down")
        assert down.returncode == 0, down.stderr
        assert "sandbox stopped" in down.stdout
        # Says what is lost: the sandbox's data lives in the server's memory only.
        assert "discarded" in down.stdout and "ledger" in down.stdout
        assert not sb.pid_alive(one["pid"])
        assert sb.pid_alive(two["pid"]) and sb.answers(two["endpoint"])
        buckets = client("s3", "us-east-1", {}, two["endpoint"]).list_buckets()["Buckets"]
        assert [b["Name"] for b in buckets] == ["second-state"]
        status = _cli_in(second, "sandbox", "status", "--json")
        assert json.loads(status.stdout)["endpoint"] == two["endpoint"]
        assert json.loads(_cli_in(first, "sandbox", "status", "--json").stdout)["running"] is False
        env = _cli_in(second, "sandbox", "env")
        assert f"export TFDEPLOY_SANDBOX_ENDPOINT={two['endpoint']}" in env.stdout
    finally:
        for pid in started:
            _kill_if_alive(pid)
