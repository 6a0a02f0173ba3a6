"""The local AWS sandbox: a moto server on 127.0.0.1 that stands in for S3, DynamoDB and STS.

`start` runs it detached (it outlives the CLI process) and records pid, port and endpoint in
`sandbox.json` in the repo's own sandbox folder (`sandbox_dir`: one per repo or checkout, so two
repos on one machine never share, stop or wipe each other's sandbox); every later command run in
that repo finds it there. `active_endpoint`,
`aws_env` and `backend_overrides` tell the rest of the toolkit how to point boto3 and Terraform
at it. Only `start`/`stop`/`status` touch processes or files.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator, Mapping

from .. import procs
from ..errors import TfdeployError, ToolMissingError, ValidationError
from ..paths import user_state_dir
from ..results import write_atomic

HOST = "127.0.0.1"
STATE_FILE = "sandbox.json"
LOG_FILE = "sandbox.log"
LOCK_FILE = "sandbox.lock"
ENDPOINT_VAR = "TFDEPLOY_SANDBOX_ENDPOINT"
DUMMY_CREDENTIAL = "testing"
DEFAULT_REGION = "us-east-1"
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 5.0
HEALTH_PATH = "/moto-api/"
UP_HINT = "run `tfdeploy sandbox up`"

# Services whose endpoint variables both boto3 and Terraform's S3 backend read. AWS_ENDPOINT_URL
# (all services) is set too; the per-service ones win for SDKs that predate it.
SERVICE_ENDPOINT_VARS = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_STS")

# Verified with Terraform 1.15.5 against moto 5.2.5 (see tests/test_sandbox.py):
# - use_path_style: without it the backend addresses `<bucket>.127.0.0.1`, which does not resolve.
# - skip_credentials_validation / skip_requesting_account_id: without them the backend calls
#   STS GetCallerIdentity and IAM GetUser/ListRoles, at the real AWS endpoints unless every one of
#   those services is redirected; with them the backend never leaves the sandbox for those calls.
# Not needed (checked): skip_s3_checksum, skip_region_validation, and skip_metadata_api_check
# (aws_env always supplies credentials and sets AWS_EC2_METADATA_DISABLED, which Terraform honours).
_BACKEND_OVERRIDES = {
    "use_path_style": "true",
    "skip_credentials_validation": "true",
    "skip_requesting_account_id": "true",
}


@dataclass(frozen=True)
class SandboxInfo:
    endpoint: str
    port: int
    pid: int
    started_at: str  # ISO 8601, UTC
    log_path: str

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


# ---- pure helpers -----------------------------------------------------------------------------


def endpoint_for(port: int) -> str:
    return f"http://{HOST}:{port}"


def backend_overrides() -> dict[str, str]:
    """Extra `terraform init -backend-config=K=V` values for the S3 backend against the sandbox."""
    return dict(_BACKEND_OVERRIDES)


def aws_env(endpoint: str, environ: Mapping[str, str]) -> dict[str, str]:
    """Environment variables that send boto3 and Terraform to `endpoint` instead of AWS.

    Credentials are added only when none are set: moto accepts any, and a user's own keys are
    left alone. The instance metadata service is switched off so nothing waits on it.
    """
    env = {ENDPOINT_VAR: endpoint, "AWS_ENDPOINT_URL": endpoint, "AWS_EC2_METADATA_DISABLED": "true"}
    env.update({name: endpoint for name in SERVICE_ENDPOINT_VARS})
    env["AWS_DEFAULT_REGION"] = environ.get("AWS_DEFAULT_REGION") or environ.get("AWS_REGION") or DEFAULT_REGION
    if not environ.get("AWS_ACCESS_KEY_ID"):
        env["AWS_ACCESS_KEY_ID"] = DUMMY_CREDENTIAL
        env["AWS_SECRET_ACCESS_KEY"] = DUMMY_CREDENTIAL
    return env


def shell_exports(env: Mapping[str, str]) -> str:
    """`export K=V` lines for `eval "$(tfdeploy sandbox env)"`; values are shell-quoted."""
    import shlex

    return "\n".join(f"export {name}={shlex.quote(value)}" for name, value in env.items())


def parse_info(text: str, log_path: Path) -> SandboxInfo | None:
    """sandbox.json -> SandboxInfo; None when it is unreadable (treated as not running)."""
    try:
        data = json.loads(text)
        return SandboxInfo(endpoint=str(data["endpoint"]), port=int(data["port"]), pid=int(data["pid"]),
                           started_at=str(data.get("started_at", "")),
                           log_path=str(data.get("log_path", log_path)))
    except (ValueError, KeyError, TypeError):
        return None


def _check_endpoint(value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise ValidationError(f"{ENDPOINT_VAR}={value!r} is not a URL: set it to http://HOST:PORT, "
                              f"or unset it and {UP_HINT}")
    return value.rstrip("/")


def sandbox_dir(environ: Mapping[str, str], start: Path | None = None) -> Path:
    """The sandbox folder of the repo (or checkout) enclosing `start` (default: the working
    directory): `<user state dir>/sandboxes/<repo folder name>-<hash of its path>`. Outside any
    repo, the user state dir itself (one sandbox for repo-less use)."""
    import hashlib

    from ..repo import find_repo_root

    base = user_state_dir(environ)
    try:
        # A second checkout (`git worktree add`) has its own root (its `.git` is a file): its own sandbox.
        root = find_repo_root(start or Path.cwd())
    except (ValidationError, OSError):  # not in a repo (or the working directory is gone)
        return base
    return base / "sandboxes" / f"{root.name}-{hashlib.sha256(str(root).encode()).hexdigest()[:12]}"


# ---- process and file state -------------------------------------------------------------------


def _reap(pid: int) -> None:
    """Collect the exit status if `pid` is our child, so a stopped sandbox does not linger as a zombie
    (which would still count as alive)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def pid_alive(pid: int) -> bool:
    """Alive, after reaping it if it is our own exited child (a zombie would count as alive)."""
    if pid > 0:
        _reap(pid)
    return procs.pid_alive(pid)


def _is_moto(pid: int) -> bool:
    """True when `pid` is alive and (where /proc tells) is a moto server, not a recycled pid."""
    if not pid_alive(pid):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True  # no /proc: trust the pid
    return b"moto" in cmdline


def answers(endpoint: str, timeout: float = 1.0) -> bool:
    """True when a moto server answers at `endpoint`."""
    # No proxy: an HTTP(S)_PROXY without 127.0.0.1 in NO_PROXY would send the probe elsewhere.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(endpoint + HEALTH_PATH, timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _read(state_dir: Path) -> SandboxInfo | None:
    path = state_dir / STATE_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    return parse_info(text, state_dir / LOG_FILE)


def _running(state_dir: Path) -> SandboxInfo | None:
    """The recorded sandbox if its process is still alive; no side effects."""
    info = _read(state_dir)
    return info if info is not None and _is_moto(info.pid) else None


@contextlib.contextmanager
def _locked(state_dir: Path) -> Iterator[None]:
    """Serialise up/down so two concurrent `up`s cannot start two servers."""
    state_dir.mkdir(parents=True, exist_ok=True)
    with open(state_dir / LOCK_FILE, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _free_port(port: int = 0) -> int:
    """`port` if it can be bound on 127.0.0.1 (any free port for 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            # Checked up front: another server already answering there would pass for ours.
            raise TfdeployError(f"port {port} on {HOST} is in use; pick another --port or leave it out") from None
        return int(sock.getsockname()[1])


def _server_command(port: int) -> list[str]:
    import importlib.util

    # moto[server] needs flask; plain `moto` installs lack it and the server would die on start.
    if importlib.util.find_spec("moto") is None or importlib.util.find_spec("flask") is None:
        raise ToolMissingError("moto server is not installed (the sandbox is an extra): "
                               "pip install 'tfdeploy-toolkit[sandbox]'")
    # moto's app behind a handler that sends each answer whole (motoserver.py says why).
    return [sys.executable, "-m", "tfdeploy.aws.motoserver", "-H", HOST, "-p", str(port)]


def _log_tail(log_path: Path, lines: int = 3) -> str:
    try:
        text = log_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(line.strip() for line in text[-lines:])


def _terminate(pid: int, timeout: float = STOP_TIMEOUT_S) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)


def _launch(port: int, log_path: Path, timeout: float) -> int | None:
    """Start moto on `port`; return its pid once it answers, None if it exited (e.g. port taken)."""
    command = _server_command(port)
    with open(log_path, "ab") as log:
        log.write(f"--- tfdeploy sandbox: {' '.join(command)}\n".encode())
        log.flush()
        # start_new_session: the server must survive the CLI and not get the terminal's Ctrl-C.
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True, close_fds=True)
    endpoint = endpoint_for(port)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return None
        if answers(endpoint, timeout=0.5):
            # Forget the Popen object without a ResourceWarning: the server is meant to outlive it.
            process.returncode = 0
            return process.pid
        time.sleep(0.1)
    _terminate(process.pid)
    process.wait(timeout=STOP_TIMEOUT_S)
    raise TfdeployError(f"moto server did not answer on {endpoint} within {timeout:.0f} s; "
                        f"see {log_path}")


def start(state_dir: Path, port: int | None = None, *, timeout: float = START_TIMEOUT_S) -> SandboxInfo:
    """Start the sandbox (or return the one already running) and record it in sandbox.json."""
    with _locked(state_dir):
        existing = _running(state_dir)
        if existing is not None:
            return existing
        (state_dir / STATE_FILE).unlink(missing_ok=True)
        log_path = state_dir / LOG_FILE
        # A free port can be taken between probing and binding; with no fixed port, try again.
        attempts = 1 if port else 3
        for _ in range(attempts):
            chosen = _free_port(port or 0)
            pid = _launch(chosen, log_path, timeout)
            if pid is not None:
                info = SandboxInfo(endpoint=endpoint_for(chosen), port=chosen, pid=pid,
                                   started_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                                   log_path=str(log_path))
                write_atomic(state_dir / STATE_FILE, json.dumps(info.to_dict(), indent=2) + "\n")
                # A ledger signing key at a stable alias, so a repo can commit
                # ledger_signing_key = "alias/tfdeploy-ledger" and sign offline.
                from .signingkey import ensure_signing_key

                ensure_signing_key(info.endpoint)
                return info
        where = f"port {port}" if port else "a free port"
        raise TfdeployError(f"moto server exited right after starting on {where} "
                            f"({_log_tail(log_path) or 'no output'}); see {log_path}")


def stop(state_dir: Path) -> bool:
    """Stop the sandbox and remove sandbox.json; False when none was running."""
    with _locked(state_dir):
        info = _running(state_dir)
        if info is not None:
            _terminate(info.pid)
        (state_dir / STATE_FILE).unlink(missing_ok=True)
        return info is not None


def status(state_dir: Path) -> SandboxInfo | None:
    """The running sandbox, or None; a sandbox.json left by a dead process is removed."""
    info = _running(state_dir)
    if info is None and (state_dir / STATE_FILE).exists():
        with _locked(state_dir):
            if _running(state_dir) is None:
                (state_dir / STATE_FILE).unlink(missing_ok=True)
    return info


def listening(endpoint: str, timeout: float = 1.0) -> bool:
    """Does anything accept connections at the endpoint's host and port? (not only moto: the
    variable may name another AWS stand-in)."""
    parsed = urllib.parse.urlsplit(endpoint)
    try:
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        with socket.create_connection((parsed.hostname or "", port), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def active_endpoint(environ: Mapping[str, str], state_dir: Path | None = None) -> str | None:
    """Where AWS calls go when the sandbox is in use: TFDEPLOY_SANDBOX_ENDPOINT, else the running
    sandbox of the working directory's repo, else None (real AWS)."""
    if environ.get(ENDPOINT_VAR):
        endpoint = _check_endpoint(environ[ENDPOINT_VAR])
        # A variable left from a stopped sandbox would otherwise surface as a raw S3 dial error
        # deep inside boto3 or Terraform.
        if not listening(endpoint):
            raise TfdeployError(f"the sandbox at {endpoint} ({ENDPOINT_VAR}) is not running: "
                                f"run `tfdeploy sandbox up` and eval \"$(tfdeploy sandbox env)\", "
                                f"or unset {ENDPOINT_VAR}")
        return endpoint
    info = _running(state_dir if state_dir is not None else sandbox_dir(environ))
    return info.endpoint if info is not None else None
