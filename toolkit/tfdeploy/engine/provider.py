"""The generated AWS provider for a deployment: Region + assume-role + default tags.

The repo holds no `provider "aws"` block; each deployment gets one written into its work dir. It
is generated when the configuration uses the AWS provider OR the cell's current state holds AWS
resources (the state is read beside `terraform init`, engine/preflight.py): rolling back to a
version without them must destroy them through the cell's own provider (an unconfigured one
would refresh them away, or act in the caller's account). Stacks that never had AWS resources
(like the example repo) stay provider-free.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ..errors import TfdeployError
from ..model.backend import BackendConfig
from ..model.deployment import Deployment

PROVIDER_FILE = "tfdeploy_provider.tf"


def _mentions_aws(parsed: dict) -> bool:
    for block in parsed.get("resource", []) + parsed.get("data", []):
        if any(str(kind).startswith("aws_") for kind in block):
            return True
    for block in parsed.get("terraform", []):
        for providers in block.get("required_providers", []):
            if "aws" in providers:
                return True
    return any("aws" in block for block in parsed.get("provider", []))


def uses_aws_provider(root: Path) -> bool:
    """Does the configuration Terraform would load from `root` use the AWS provider?

    Only what `terraform init` reads counts (engine/modulegraph.py): the root's own .tf files and
    the local modules they call. Other folders in the tree (a `pipeline/` root, examples) are
    separate configurations and must not make every cell get an AWS provider.
    """
    from .modulegraph import loaded_files

    return any(_mentions_aws(f.parsed) for f in loaded_files(root) if f.path.name != PROVIDER_FILE)


AWS_PROVIDER_ADDR = 'provider["registry.terraform.io/hashicorp/aws"]'


def state_has_aws(state: Mapping[str, Any]) -> bool:
    """Does a Terraform state document hold resources of the AWS provider? (pure).

    A resource's `provider` is the provider configuration's address, e.g.
    `provider["registry.terraform.io/hashicorp/aws"]` or `module.x.provider[...].alias`."""
    for resource in state.get("resources") or []:
        provider = str(resource.get("provider", ""))
        if AWS_PROVIDER_ADDR in provider and resource.get("instances"):
            return True
    return False


@dataclass(frozen=True)
class StatePeek:
    """What one read of a cell's state object told (engine/preflight.py shares it)."""

    exists: bool
    has_aws: bool


def peek_state(backend: BackendConfig, environ: Mapping[str, str], endpoint: str | None) -> StatePeek:
    """Read the cell's state object (if any): does it exist, does it hold AWS resources?"""
    from ..aws.clients import client

    s3 = client("s3", backend.region, environ, endpoint)
    try:
        body = s3.get_object(Bucket=backend.bucket, Key=backend.key)["Body"].read()
    except Exception as exc:
        code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
        if code in ("NoSuchKey", "NoSuchBucket", "404"):
            return StatePeek(exists=False, has_aws=False)  # no state yet (or no bucket: init explains)
        raise TfdeployError(f"cannot read s3://{backend.bucket}/{backend.key} to tell whether the cell "
                            f"holds AWS resources: {str(exc).splitlines()[0]}") from None
    try:
        return StatePeek(exists=True, has_aws=state_has_aws(json.loads(body)))
    except ValueError:
        raise TfdeployError(f"s3://{backend.bucket}/{backend.key} is not a readable Terraform state; "
                            "inspect it before running Terraform on this cell") from None


def _hcl(value: str) -> str:
    # JSON string quoting is valid HCL string quoting; escape HCL's template introducers too.
    return json.dumps(value).replace("${", "$${").replace("%{", "%%{")


def _attributes(pairs: list[tuple[str, str]], indent: int) -> str:
    """Attribute lines aligned on `=` the way `terraform fmt` aligns consecutive attributes."""
    width = max(len(key) for key, _ in pairs)
    return "".join(f"{' ' * indent}{key.ljust(width)} = {value}\n" for key, value in pairs)


def render_provider(d: Deployment, sandbox: bool = False) -> str:
    """HCL for the deployment's provider, already in `terraform fmt` form (pure)."""
    top = [("region", _hcl(d.region))]
    if sandbox:
        # moto accepts any credentials and account; skip the calls it cannot answer like AWS.
        top += [("skip_credentials_validation", "true"), ("skip_requesting_account_id", "true"),
                ("skip_metadata_api_check", "true"), ("s3_use_path_style", "true")]
    # Stable across releases by default (the default_tags setting): a tag of unchanged code
    # must plan no changes, so the version is not stamped on every resource.
    tags = [(_hcl(k), _hcl(v)) for k, v in d.default_tags]
    role = [("role_arn", _hcl(d.role_arn)), ("session_name", _hcl(d.session_name))]
    default_tags = ("  default_tags {\n    tags = {\n" + _attributes(tags, 6) + "    }\n  }\n") if tags else ""
    return (
        "# Generated by tfdeploy for this deployment; not part of the repo.\n"
        'provider "aws" {\n'
        + _attributes(top, 2)
        + "  assume_role {\n" + _attributes(role, 4) + "  }\n"
        + default_tags
        + "}\n"
    )


def deployment_tfvars(d: Deployment) -> dict[str, str]:
    """Values every deployment passes to the root module (`tfdeploy.auto.tfvars.json`).

    The version is `release_version`: Terraform reserves the variable name `version`.
    """
    return {
        "env": d.tag.env,
        "region": d.region,
        "team": d.tag.team,
        "account": d.account,
        "release_version": d.tag.version,
    }
