"""The generated provider file: content, canonical formatting (real terraform fmt), detection."""

from __future__ import annotations

import subprocess

import pytest
from tfdeploy.engine.provider import render_provider, uses_aws_provider
from tfdeploy.model.deployment import build_deployment
from tfdeploy.model.envs import TeamConfig
from tfdeploy.model.settings import merge_settings
from tfdeploy.model.tags import parse_tag


def _deployment(tag="dev_us-gov-west-1/research/1.0", **table):
    settings = merge_settings({"backend_prefix": "acme", **table}, {}, {})
    return build_deployment(parse_tag(tag), settings, TeamConfig("111111111111", None, ()))


@pytest.mark.parametrize("sandbox, tags", [(False, None), (True, None), (False, []), (False, ["version"])])
def test_provider_is_terraform_fmt_clean(tmp_path, terraform_bin, sandbox, tags):
    path = tmp_path / "provider.tf"
    table = {} if tags is None else {"default_tags": tags}
    path.write_text(render_provider(_deployment(**table), sandbox=sandbox))
    proc = subprocess.run([terraform_bin, "fmt", "-check", "-diff", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout


def test_provider_assumes_the_role_in_the_region_with_default_tags():
    text = render_provider(_deployment())
    assert 'region = "us-gov-west-1"' in text
    assert 'role_arn     = "arn:aws-us-gov:iam::111111111111:role/InfraBuildRole"' in text
    assert 'session_name = "INFRA_BUILD"' in text
    # Stable across releases: never the version or the tag (a new tag of unchanged code plans no change).
    assert '"tfdeploy:env"        = "dev"' in text
    assert '"tfdeploy:scope"      = "us-gov-west-1"' in text
    assert '"tfdeploy:managed-by" = "tfdeploy"' in text
    assert "tfdeploy:version" not in text and "tfdeploy:tag" not in text
    assert "skip_credentials_validation" not in text
    assert "skip_credentials_validation = true" in render_provider(_deployment(), sandbox=True)


def test_default_tags_setting_decides_what_goes_in():
    chosen = render_provider(_deployment(default_tags=["team", "version"]))
    assert '"tfdeploy:team"    = "research"' in chosen and '"tfdeploy:version" = "1.0"' in chosen
    assert "tfdeploy:env" not in chosen
    assert "default_tags" not in render_provider(_deployment(default_tags=[]))


def test_unknown_default_tag_is_refused():
    from tfdeploy.errors import ConfigError

    with pytest.raises(ConfigError, match="'owner' is not a default tag tfdeploy knows; choose from env"):
        merge_settings({"default_tags": ["env", "owner"]}, {}, {})


def test_aws_usage_detection(tmp_path):
    (tmp_path / "main.tf").write_text('resource "terraform_data" "x" {}\n')
    assert not uses_aws_provider(tmp_path)
    (tmp_path / "modules" / "m").mkdir(parents=True)
    (tmp_path / "modules" / "m" / "main.tf").write_text('data "aws_region" "current" {}\n')
    # Only what terraform init loads counts: a module nobody calls, or another root such as a
    # scaffolded pipeline/, does not give every cell an AWS provider.
    (tmp_path / "pipeline").mkdir()
    (tmp_path / "pipeline" / "main.tf").write_text('provider "aws" {}\n')
    assert not uses_aws_provider(tmp_path)
    (tmp_path / "main.tf").write_text('resource "terraform_data" "x" {}\n'
                                      'module "m" {\n  source = "./modules/m"\n}\n')
    assert uses_aws_provider(tmp_path)
    (tmp_path / "modules" / "m" / "main.tf").write_text(
        'terraform {\n  required_providers {\n    aws = { source = "hashicorp/aws" }\n  }\n}\n')
    assert uses_aws_provider(tmp_path)
