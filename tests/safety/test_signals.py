"""SIGTERM, SIGINT and SIGKILL to tfdeploy mid-apply (real Terraform, moto, a `local-exec` sleep):
Terraform stops gracefully, state is saved, the lock is released, nothing is left running, and
the next apply succeeds without a manual unlock."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import boto3
import pytest

from tests.e2e.conftest import TFDEPLOY, tag, tfdeploy

pytestmark = pytest.mark.safety

REGIONAL = "dev_us-east-1/research/1.0"
BUCKET = "demo-tfstate-dev"
KEY = "research/dev-us-east-1/terraform.tfstate"
LOCK_TABLE = "demo-tfstate-lock-dev"
LOCK_ID = f"{BUCKET}/{KEY}"


class Run:
    """A `tfdeploy` started on its own (its own session: signals reach only the pid we name)."""

    def __init__(self, repo: Path, *args: str, env: dict[str, str] | None = None):
        self.proc = subprocess.Popen([TFDEPLOY, *args], cwd=repo, env={**os.environ, **(env or {})},
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     start_new_session=True)
        self.out: list[str] = []
        self.err: list[str] = []
        self._threads = [threading.Thread(target=self._pump, args=(self.proc.stdout, self.out)),
                         threading.Thread(target=self._pump, args=(self.proc.stderr, self.err))]
        for thread in self._threads:
            thread.start()

    @staticmethod
    def _pump(stream, keep: list[str]) -> None:
        for line in stream:
            keep.append(line)

    def wait_for(self, text: str, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in line for line in self.out + self.err):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        self.finish(kill=True)
        pytest.fail(f"never saw {text!r}:\n{''.join(self.out)}\n{''.join(self.err)}")

    def finish(self, timeout: float = 90, kill: bool = False) -> int:
        if kill:
            self.proc.kill()
        code = self.proc.wait(timeout=timeout)
        for thread in self._threads:
            thread.join(timeout=30)
        return code

    @property
    def stderr(self) -> str:
        return "".join(self.err)

    @property
    def workdir(self) -> str:
        return next(line.split("work dir ", 1)[1].strip() for line in self.err if "work dir " in line)


def processes_in(workdir: str) -> list[str]:
    """Live processes whose cwd is the work dir (Terraform, its providers, provisioners)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
            if cwd == workdir or cwd.startswith(workdir + "/"):
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
                if stat != "Z":
                    found.append(f"{entry.name} {cmd}")
        except OSError:
            continue
    return found


def wait_until_no_processes(workdir: str, timeout: float) -> list[str]:
    deadline = time.monotonic() + timeout
    while (left := processes_in(workdir)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def state() -> dict:
    body = boto3.client("s3", region_name="us-east-1").get_object(Bucket=BUCKET, Key=KEY)["Body"].read()
    return json.loads(body)


def lock_held() -> bool:
    items = boto3.client("dynamodb", region_name="us-east-1").scan(TableName=LOCK_TABLE)["Items"]
    return any(i["LockID"]["S"] == LOCK_ID and "Info" in i for i in items)


def start_slow_apply(repo: Path, delay: int = 5) -> Run:
    tag(repo, REGIONAL)
    tfdeploy(repo, "bootstrap", "--env", "dev")
    run = Run(repo, "apply", "--tag", REGIONAL, "--auto-approve", env={"TF_VAR_apply_delay_seconds": str(delay)})
    run.wait_for("(local-exec): Executing:")  # the apply is creating the resource now
    return run


def assert_next_apply_is_clean(repo: Path) -> None:
    tfdeploy(repo, "apply", "--tag", REGIONAL, "--auto-approve")
    instances = [i for r in state()["resources"] for i in r["instances"]]
    assert instances and all(i.get("status") != "tainted" for i in instances)
    assert not lock_held()


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130), (signal.SIGHUP, 129)])
def test_signal_mid_apply_stops_terraform_cleanly(repo, signum, code):
    run = start_slow_apply(repo)
    workdir = run.workdir
    os.kill(run.proc.pid, signum)
    assert run.finish() == code, run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith("tfdeploy: error:")]
    assert len(errors) == 1, run.stderr
    line = errors[0]
    name = signal.Signals(signum).name
    assert line.startswith(f"tfdeploy: error: interrupted ({name}): terraform apply of dev-us-east-1-research")
    assert "state saved at s3://demo-tfstate-dev/research/dev-us-east-1/terraform.tfstate" in line
    assert "lock released" in line and f"tfdeploy plan --tag {REGIONAL}" in line
    assert "Aborted!" not in run.stderr and "Traceback" not in run.stderr
    assert processes_in(workdir) == []
    # What Terraform created before it stopped is recorded (tainted: its provisioner was cut short).
    assert [r["type"] for r in state()["resources"]] == ["terraform_data"]
    assert not lock_held()
    assert_next_apply_is_clean(repo)


def test_second_signal_escalates_and_leaves_nothing_running(repo):
    run = start_slow_apply(repo)
    workdir = run.workdir
    os.kill(run.proc.pid, signal.SIGTERM)
    run.wait_for("Interrupt received")
    os.kill(run.proc.pid, signal.SIGTERM)
    assert run.finish() == 143, run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith("tfdeploy: error:")]
    assert len(errors) == 1 and "interrupted (SIGTERM" in errors[0], run.stderr
    assert "Traceback" not in run.stderr
    assert processes_in(workdir) == []


def test_sigkill_of_tfdeploy_still_stops_terraform_gracefully(repo):
    """SIGKILL leaves tfdeploy no chance to act: the kernel's death signal must cut Terraform's
    apply short. The provisioner sleeps far longer than the test waits, so a Terraform left to run
    to its end fails here (still running, or its resource finished untainted)."""
    delay = 60
    run = start_slow_apply(repo, delay=delay)
    workdir = run.workdir
    killed_at = time.monotonic()
    os.kill(run.proc.pid, signal.SIGKILL)
    run.finish()
    try:
        # Terraform (not the provisioner's `sleep` it may leave behind) is gone long before the
        # sleep would have ended: it was interrupted, it did not finish the apply.
        deadline = killed_at + 20
        while (terraform := [p for p in processes_in(workdir) if " sleep " not in f" {p.split(' ', 1)[1]} "]) \
                and time.monotonic() < deadline:
            time.sleep(0.2)
        assert terraform == [], terraform
        assert time.monotonic() - killed_at < delay / 2
        assert not lock_held()
        # Saved state records the cut-short apply: the resource was created but its provisioner
        # never finished, so Terraform tainted it (a completed apply leaves it untainted).
        [instance] = [i for r in state()["resources"] for i in r["instances"]]
        assert instance.get("status") == "tainted", instance
    finally:
        for leftover in processes_in(workdir):  # the orphaned `sleep` (not ours to wait 60 s for)
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(leftover.split(" ", 1)[0]), signal.SIGKILL)
    assert_next_apply_is_clean(repo)


_WORKER_SCRIPT = """
import os, sys, threading
from pathlib import Path
from tfdeploy.engine import supervise
from tfdeploy.engine.terraform import Terraform, base_environment

workdir, binary = Path(sys.argv[1]), sys.argv[2]
terraform = Terraform(binary, workdir, base_environment(workdir.parent / "cache", os.environ))
terraform.check("init", "-no-color")
outcome = {}

def work():  # what fan-out will do: Terraform in a worker thread
    try:
        terraform.run("apply", "-auto-approve", "-no-color")
        outcome["line"] = "finished without an interrupt"
    except supervise.Interrupted as exc:
        outcome["line"] = f"{exc.exit_code} {exc}"

with supervise.handling_signals():  # installed once, by the main thread
    worker = threading.Thread(target=work)
    worker.start()
    while worker.is_alive():
        worker.join(0.1)
print("OUTCOME", outcome["line"], flush=True)
"""

_SLOW_TF = """
resource "terraform_data" "slow" {
  input = "x"
  provisioner "local-exec" {
    command = "sleep 5"
  }
}
"""


def test_terraform_in_a_worker_thread_gets_the_interrupt(tmp_path, terraform_bin):
    workdir = tmp_path / "work"
    workdir.mkdir()
    (workdir / "main.tf").write_text(_SLOW_TF)
    script = tmp_path / "fanout.py"
    script.write_text(_WORKER_SCRIPT)
    proc = subprocess.Popen([os.sys.executable, str(script), str(workdir), terraform_bin],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    seen: list[str] = []
    reader = threading.Thread(target=lambda: seen.extend(proc.stdout))
    reader.start()
    deadline = time.monotonic() + 60
    while not any("Executing:" in line for line in list(seen)) and time.monotonic() < deadline:
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    reader.join(timeout=10)
    outcome = next(line for line in seen if line.startswith("OUTCOME"))
    assert outcome.startswith("OUTCOME 143 interrupted (SIGTERM): terraform apply stopped cleanly"), "".join(seen)
    state = json.loads((workdir / "terraform.tfstate").read_text())
    assert [r["type"] for r in state["resources"]] == ["terraform_data"]
    assert processes_in(str(workdir)) == []


def _result(code: int, out: str = "", err: str = ""):
    from tfdeploy.engine.terraform import TerraformResult

    return TerraformResult(("terraform",), code, out, err)


@pytest.mark.parametrize("signals, command, result, expected", [
    (1, "apply", _result(1, err="Error: execution halted"),
     "interrupted (SIGTERM): terraform apply of dev-us-east-1-research stopped cleanly; state saved at "
     "s3://b/k, lock released; run tfdeploy plan --tag T to see what remains"),
    (1, "apply", _result(1, err="Failed to save state ... wrote errored.tfstate"), "could NOT save its state"),
    (2, "apply", _result(1, out="Two interrupts received. Exiting immediately."), "was stopped forcibly"),
    (3, "apply", _result(-9), "was stopped forcibly"),
    (1, "apply", _result(1, err="Error releasing the state lock\nLock Info:\n  ID: abc-123\n"),
     "lock was NOT released; once nothing runs: tfdeploy locks, then tfdeploy unlock --tag T --lock-id abc-123"),
    (1, "plan", _result(1), "it changes no state"),
    (1, "apply", _result(0), "it completed, state saved at s3://b/k"),
])
def test_interrupt_line(signals, command, result, expected):
    from tfdeploy.engine.terraform import RunContext, describe_interrupt

    line = describe_interrupt(signal.SIGTERM, signals, command, result, RunContext("dev-us-east-1-research",
                              "T", "s3://b/k"), Path("/w"))
    assert expected in line and "\n" not in line
    assert "force-unlock" not in line  # README: tfdeploy's own unlock, never a raw terraform force-unlock


def _catches_sigterm(pid: int) -> bool:
    """Has process `pid` installed a SIGTERM handler? (Linux: SigCgt in /proc/<pid>/status)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    mask = next((line.split()[1] for line in text.splitlines() if line.startswith("SigCgt:")), "0")
    return bool(int(mask, 16) & (1 << (signal.SIGTERM - 1)))


def test_the_console_script_installs_the_handler_before_it_loads_the_cli():
    """The window in which a signal kills tfdeploy by default is Python's own start-up only: the
    entry module installs the handler first, then imports click and the commands."""
    code = ("import sys, signal; import tfdeploy.entry as e; assert 'click' not in sys.modules, 'click'; "
            "assert 'tfdeploy.cli' not in sys.modules, 'cli'; from tfdeploy.engine import supervise; "
            "supervise.install_for_process(); assert signal.getsignal(signal.SIGTERM) is supervise._handle")
    subprocess.run([sys.executable, "-c", code], check=True)
    scripts = Path(TFDEPLOY).read_text()
    assert "tfdeploy.entry" in scripts  # the installed `tfdeploy` is this entry point


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc to see the handler installed")
def test_a_signal_at_any_moment_outside_terraform_is_one_line_and_128_plus_n(tmp_path):
    """From the handler's installation (before the CLI is imported) to the last line printed: a
    signal is never a silent death by signal (a negative return code to the CI) nor a traceback.
    Delays sweep the import of the commands, the command and the printing of its result."""
    from tfdeploy.adopt.example import write_example_repo

    from tests.conftest import git

    repo = tmp_path / "infra"
    write_example_repo(repo, lock="s3")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "init")
    git(repo, "tag", "-a", REGIONAL, "-m", "r")
    outcomes = []
    for delay in (0.0, 0.01, 0.03, 0.06, 0.1, 0.15, 0.2, 0.3):
        run = Run(repo, "resolve", "--tag", REGIONAL, "--json")
        deadline = time.monotonic() + 30
        while not _catches_sigterm(run.proc.pid) and run.proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
        time.sleep(delay)
        try:
            os.kill(run.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        code = run.finish(timeout=30)
        outcomes.append((delay, code))
        assert code in (0, 143), (delay, code, run.stderr)
        assert "Traceback" not in run.stderr, run.stderr
        if code == 143:
            lines = run.stderr.strip().splitlines()
            assert lines[-1].startswith("tfdeploy: error: interrupted (SIGTERM)"), run.stderr
    assert any(code == 143 for _, code in outcomes), outcomes  # the sweep did hit the run
