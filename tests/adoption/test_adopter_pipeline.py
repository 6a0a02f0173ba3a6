"""An adopter's infra repo deploys through the generated buildspecs, install phases included.

The repo the test writes is not this one: its own pyproject.toml (a `[project]` of its own plus
`[tool.tfdeploy]`), main.tf, modules/, envs/ — no toolkit source. The toolkit's wheel is built into
a folder; every build runs its install phase like a fresh CodeBuild container (new venvs under the
source dir, `PIP_FIND_LINKS` at the wheel folder, dependencies from PyPI with pip's cache kept),
then `tfdeploy ci STAGE` from that venv: source -> tflint -> checkov -> plan -> apply, ending with
the state object at its key in moto. The runner itself (`tfdeploy buildspec run`, this tree's code)
stands in for CodeBuild; nothing of this tree reaches the builds' environment (no PYTHONPATH, no
venv on PATH). tflint is the TEST DOUBLE (tests/quality), served as the release zip from a file://
URL with its real SHA-256, so the install commands (curl, sha256sum -c, unzip) run as written.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import boto3
import pytest
from tfdeploy import __version__
from tfdeploy.adopt.example import example_files

from tests.adoption.toolkit_wheel import build_wheel
from tests.conftest import REPO_ROOT, git
from tests.delivery.conftest import collect_plan_artifact, create_pipeline, unzip_source

pytestmark = pytest.mark.slow

TAG = "dev_us-east-1/research/1.0"
PREFIX = "acme-tfstate"
STATE_KEY = "research/dev-us-east-1/terraform.tfstate"
DOUBLE = REPO_ROOT / "tests" / "quality" / "tflint_test_double.py"
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def write_adopter_repo(root: Path) -> Path:
    files = example_files(backend_prefix=PREFIX, lock="s3")
    # The adopter's own Python project: `pip install .` here is what used to break
    # (a flat layout with envs/ and modules/).
    files["pyproject.toml"] = ('[project]\nname = "acme-infra"\nversion = "1.0.0"\n\n'
                               + files["pyproject.toml"])
    files[".gitignore"] = ".tfdeploy/\n.tfdeploy-results/\n.terraform/\n"
    for rel, content in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(content)
    assert not (root / "toolkit").exists()
    return root


def runner_script(tmp: Path) -> Path:
    """`tfdeploy` for the test's side (the local CodeBuild), importing this tree without PYTHONPATH,
    so the builds it starts inherit nothing of it."""
    script = tmp / "runner" / "tfdeploy"
    script.parent.mkdir()
    script.write_text(f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(REPO_ROOT / 'toolkit')!r})\n"
                      "from tfdeploy.cli import main\nmain()\n")
    script.chmod(0o755)
    return script


def tflint_release(tmp: Path) -> tuple[str, str]:
    """A release-shaped zip holding the tflint TEST DOUBLE; (file:// URL, sha256)."""
    double = tmp / "tflint"
    double.write_text(f"#!{sys.executable}\n" + DOUBLE.read_text())
    double.chmod(0o755)
    archive = tmp / "tflint_linux_amd64.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo("tflint")
        info.external_attr = 0o755 << 16
        zf.writestr(info, double.read_bytes())
    return archive.as_uri(), hashlib.sha256(archive.read_bytes()).hexdigest()


def build_env(tmp: Path) -> dict[str, str]:
    """A clean environment like a CodeBuild container's: system PATH, the sandbox, nothing of this tree."""
    keep = ("HOME", "LANG", "LC_ALL", "TMPDIR", "TF_CLI_CONFIG_FILE", "TFDEPLOY_SANDBOX_ENDPOINT",
            "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")
    env = {name: os.environ[name] for name in keep if name in os.environ}
    env.update({name: value for name, value in os.environ.items() if name.startswith("AWS_ENDPOINT_URL")})
    clean = tmp / "tflint-clean.json"
    clean.write_text('{"issues": [], "errors": []}')
    env.update(PATH=SYSTEM_PATH, TFDEPLOY_HOME=str(tmp / "home"), TFLINT_DOUBLE_OUTPUT=str(clean),
               PIP_DISABLE_PIP_VERSION_CHECK="1")
    return env


def run_spec(runner: Path, env: dict[str, str], spec: Path, src: Path, *pairs: str) -> dict:
    """`tfdeploy buildspec run SPEC` with its install phase; the JSON document."""
    # The embedded Terraform of the venv the install phase makes (the image's other terraform on
    # PATH must not be what runs).
    venv_bin = src / ".tfdeploy" / "tools" / "tfdeploy" / "bin"
    args = [str(runner), "buildspec", "run", str(spec), "--src-dir", str(src), "--json",
            "--env", "ENV=dev", "--env", f"TFDEPLOY_TERRAFORM={venv_bin / 'tfdeploy-terraform'}"]
    for pair in pairs:
        args += ["--env", pair]
    proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"{spec.name} build failed:\n{proc.stderr[-6000:]}\n{proc.stdout}"
    doc = json.loads(proc.stdout)
    assert [p["status"] for p in doc["phases"]] == ["succeeded"] * 3, doc
    # The stage ran the toolkit installed from the wheel, nothing else.
    assert "tfdeploy, version " + __version__ in proc.stderr or f"tfdeploy {__version__}" in proc.stderr
    return doc




def test_adopter_repo_deploys_through_the_generated_buildspecs(tmp_path, sandbox_env):
    wheels = tmp_path / "wheels"
    build_wheel(wheels)
    runner = runner_script(tmp_path)
    repo = write_adopter_repo(tmp_path / "acme-infra")
    git(repo, "init", "-q", "-b", "main")
    generated = subprocess.run([str(runner), "buildspec", "generate"], cwd=repo, capture_output=True,
                               text=True, env=build_env(tmp_path), timeout=60)
    assert generated.returncode == 0, generated.stderr
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "acme infra")
    git(repo, "tag", "-a", TAG, "-m", f"release {TAG}")

    s3 = boto3.client("s3", region_name="us-east-1")
    for bucket in (f"{PREFIX}-source-dev", f"{PREFIX}-dev"):
        s3.create_bucket(Bucket=bucket)
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    create_pipeline("dev")

    env = build_env(tmp_path)
    url, sha = tflint_release(tmp_path)
    find_links = f"PIP_FIND_LINKS={wheels}"
    specs = repo / "buildspecs"

    # Source build: the EventBridge target passes the tag; runs on the repo's checkout.
    source = run_spec(runner, env, specs / "source.yml", repo, f"TFDEPLOY_TAG={TAG}", find_links)
    assert source["exported_variables"]["TAG"] == TAG
    version = s3.head_object(Bucket=f"{PREFIX}-source-dev", Key="source/dev/source.zip")["VersionId"]
    executions = boto3.client("codepipeline", region_name="us-east-1").list_pipeline_executions(
        pipelineName="tfdeploy-dev")["pipelineExecutionSummaries"]
    assert len(executions) == 1

    pinned = (f"TFDEPLOY_EXPECTED_TAG={TAG}", find_links)
    src = unzip_source(f"{PREFIX}-source-dev", tmp_path / "src", version)
    tflint = run_spec(runner, env, specs / "tflint.yml", src, *pinned, f"TFLINT_URL={url}",
                      f"TFLINT_SHA256={sha}")
    assert tflint["exported_variables"]["TARGET_MODULE"] == "module.regional"
    assert (src / "reports" / "tflint.xml").is_file()

    checkov = run_spec(runner, env, specs / "checkov.yml", src, *pinned)
    assert checkov["exported_variables"]["CHECKOV_FAILED"] == "0"
    assert (src / "reports" / "checkov.xml").is_file()

    plan = run_spec(runner, env, specs / "plan.yml", src, *pinned)
    assert (plan["exported_variables"]["PLAN_ADD"], plan["exported_variables"]["PLAN_DESTROY"]) == ("1", "0")
    artifact = collect_plan_artifact(src, tmp_path / "plan-artifact")

    fresh = unzip_source(f"{PREFIX}-source-dev", tmp_path / "src-apply", version)
    apply = run_spec(runner, env, specs / "apply.yml", fresh, *pinned, f"CODEBUILD_SRC_DIR_plan={artifact}")
    assert apply["exported_variables"]["TAG"] == TAG

    state = json.loads(s3.get_object(Bucket=f"{PREFIX}-dev", Key=STATE_KEY)["Body"].read())
    assert {r.get("module") for r in state["resources"]} == {"module.regional"}

    # The stage venv is the core install from the wheel: the toolkit, no sandbox extra.
    venv_python = src / ".tfdeploy" / "tools" / "tfdeploy" / "bin" / "python"
    probe = subprocess.run([str(venv_python), "-c", "import importlib.util, tfdeploy; print(tfdeploy.__file__); "
                            "print(importlib.util.find_spec('moto') is None)"],
                           capture_output=True, text=True, env=env, check=True)
    where, no_moto = probe.stdout.split()
    assert where.startswith(str(src / ".tfdeploy" / "tools" / "tfdeploy")) and no_moto == "True"
    sandbox = subprocess.run([str(venv_python.parent / "tfdeploy"), "sandbox", "up"], capture_output=True,
                             text=True, env={**env, "TFDEPLOY_HOME": str(tmp_path / "home2")}, timeout=60)
    assert sandbox.returncode == 3
    assert sandbox.stderr.strip().splitlines() == [
        "tfdeploy: error: moto server is not installed (the sandbox is an extra): "
        "pip install 'tfdeploy-toolkit[sandbox]'"]
