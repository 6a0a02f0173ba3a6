"""TFDEPLOY_PROVIDER_MIRROR: Terraform installs mirrored providers from disk, never the registry."""

from __future__ import annotations

import pytest
from tfdeploy.engine.terraform import base_environment, mirror_cli_config, mirror_providers
from tfdeploy.errors import ConfigError


def _mirror(tmp_path):
    root = tmp_path / "mirror"
    (root / "registry.terraform.io/hashicorp/aws/5.100.0/linux_amd64").mkdir(parents=True)
    (root / "registry.terraform.io/hashicorp/null/3.2.0/linux_amd64").mkdir(parents=True)
    return root


def test_mirror_providers_and_config(tmp_path):
    root = _mirror(tmp_path)
    providers = mirror_providers(root)
    assert providers == ["registry.terraform.io/hashicorp/aws", "registry.terraform.io/hashicorp/null"]
    text = mirror_cli_config(root, providers)
    assert f'path    = "{root}"' in text
    assert 'include = ["registry.terraform.io/hashicorp/aws", "registry.terraform.io/hashicorp/null"]' in text
    assert 'exclude = ["registry.terraform.io/hashicorp/aws", "registry.terraform.io/hashicorp/null"]' in text


def test_base_environment_points_terraform_at_the_mirror(tmp_path):
    root = _mirror(tmp_path)
    env = base_environment(tmp_path / "cache", {"TFDEPLOY_PROVIDER_MIRROR": str(root), "TF_CLI_CONFIG_FILE": "/nope"})
    config = env["TF_CLI_CONFIG_FILE"]
    assert config.endswith("terraformrc-mirror") and "filesystem_mirror" in open(config).read()
    assert env["TF_PLUGIN_CACHE_DIR"].endswith("plugin-cache") and env["TF_IN_AUTOMATION"] == "1"


def test_missing_cli_config_file_is_replaced_by_an_empty_one(tmp_path):
    env = base_environment(tmp_path / "cache", {"TF_CLI_CONFIG_FILE": str(tmp_path / "missing")})
    assert open(env["TF_CLI_CONFIG_FILE"]).read() == ""


def test_empty_mirror_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="holds no providers"):
        base_environment(tmp_path / "cache", {"TFDEPLOY_PROVIDER_MIRROR": str(tmp_path / "empty")})
