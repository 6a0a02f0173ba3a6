"""Item 11, honest lint: `terraform validate` is skipped only when what failed in
`terraform init -backend=false` is a download that could not reach the network, and the skip
names what was not checked; a configuration's own error fails the stage.

Real `tfdeploy lint --tag` on real tagged repos with the embedded Terraform. "The network" is
simulated on 127.0.0.1 only: a Terraform CLI config points the registry's provider/module
services at 127.0.0.1:9 (connection refused), or at a local HTTP server that answers 404 like the
real registry does for a provider that does not exist. tflint is not installable here, so it is
skipped visibly with --allow-missing tflint.
"""

from __future__ import annotations

import http.server
import json
import threading
from pathlib import Path

import pytest

from tests.conftest import git
from tests.e2e.conftest import make_repo, tag, tfdeploy

pytestmark = pytest.mark.safety

TAG = "dev_us-east-1/research/1.0"
PROVIDER_TYPO = """\
terraform {
  required_providers {
    awz = {
      source = "hashicorp/awz"
    }
  }
}
"""
DUPLICATE_VARIABLE = """\
variable "team" {
  type = string
}
"""
REMOTE_MODULE = """\
module "remote" {
  source = "git::http://127.0.0.1:9/x.git"
}
"""


def _registry_rc(path: Path, base_url: str) -> Path:
    path.write_text(
        'host "registry.terraform.io" {\n  services = {\n'
        f'    "providers.v1" = "{base_url}/v1/providers/"\n'
        f'    "modules.v1"   = "{base_url}/v1/modules/"\n'
        "  }\n}\n")
    return path


@pytest.fixture
def offline_rc(tmp_path) -> Path:
    """The registry is unreachable (127.0.0.1:9 refuses connections)."""
    return _registry_rc(tmp_path / "offline.tfrc", "http://127.0.0.1:9")


@pytest.fixture
def reachable_rc(tmp_path):
    """A reachable registry that knows no provider (answers 404, as registry.terraform.io does)."""

    class NotFound(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's naming)
            self.send_response(404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"errors":["Not Found"]}')

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield _registry_rc(tmp_path / "reachable.tfrc", f"http://127.0.0.1:{server.server_port}")
    server.shutdown()
    thread.join()


def _lint(tmp_path: Path, terraform_bin: str, rc: Path, files: dict[str, str] | None = None,
          edit: tuple[str, str, str] | None = None):
    repo = make_repo(tmp_path / "infra", lock="dynamodb")
    for rel, text in (files or {}).items():
        (repo / rel).write_text(text)
    if edit:
        rel, old, new = edit
        assert old in (repo / rel).read_text()
        (repo / rel).write_text((repo / rel).read_text().replace(old, new))
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "change", "--allow-empty")
    tag(repo, TAG)
    proc = tfdeploy(repo, "lint", "--tag", TAG, "--allow-missing", "tflint", "--exports", check=False,
                    env={"TFDEPLOY_TERRAFORM": terraform_bin, "TF_CLI_CONFIG_FILE": str(rc),
                         "TFDEPLOY_HOME": str(tmp_path / "home")})
    assert "Traceback" not in proc.stderr, proc.stderr
    exports = dict(line.split("=", 1) for line in proc.stdout.splitlines()
                   if "=" in line and line.split("=", 1)[0].isupper())
    return proc, exports


def test_clean_configuration_is_validated(tmp_path, terraform_bin, offline_rc):
    proc, exports = _lint(tmp_path, terraform_bin, offline_rc)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert exports["VALIDATE_STATUS"] == "passed"


def test_module_source_typo_fails(tmp_path, terraform_bin, offline_rc):
    proc, exports = _lint(tmp_path, terraform_bin, offline_rc,
                          edit=("main.tf", '"./modules/regional"', '"./modulez/regional"'))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert exports["VALIDATE_STATUS"] == "failed" and exports["LINT_STATUS"] == "failed"
    assert "Unreadable module directory" in proc.stdout


def test_duplicate_block_fails(tmp_path, terraform_bin, offline_rc):
    proc, exports = _lint(tmp_path, terraform_bin, offline_rc, files={"dup.tf": DUPLICATE_VARIABLE})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert exports["VALIDATE_STATUS"] == "failed"
    assert "Duplicate variable declaration" in proc.stdout


def test_misspelled_provider_fails_when_the_registry_answers(tmp_path, terraform_bin, reachable_rc):
    proc, exports = _lint(tmp_path, terraform_bin, reachable_rc, files={"providers.tf": PROVIDER_TYPO})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert exports["VALIDATE_STATUS"] == "failed"
    result = json.loads((tmp_path / "infra/.tfdeploy/work/dev-us-east-1-research/.tfdeploy-results"
                         / "lint.result.json").read_text())
    [finding] = result["findings"]
    assert "does not have a provider named registry.terraform.io/hashicorp/awz" in finding["message"]


def test_misspelled_provider_offline_is_a_skip_naming_the_provider(tmp_path, terraform_bin, offline_rc):
    proc, exports = _lint(tmp_path, terraform_bin, offline_rc, files={"providers.tf": PROVIDER_TYPO})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert exports["VALIDATE_STATUS"] == "skipped" and "VALIDATE_ERRORS" not in exports
    note = next(line for line in proc.stdout.splitlines() if "validate skipped" in line)
    assert "network is unreachable" in note and "provider hashicorp/awz" in note
    assert "NOT checked" in note


def test_unreachable_remote_module_is_a_skip_naming_the_module(tmp_path, terraform_bin, offline_rc):
    proc, exports = _lint(tmp_path, terraform_bin, offline_rc, files={"remote.tf": REMOTE_MODULE})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert exports["VALIDATE_STATUS"] == "skipped"
    note = next(line for line in proc.stdout.splitlines() if "validate skipped" in line)
    assert 'module "remote"' in note and "NOT checked" in note
