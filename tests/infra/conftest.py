"""Fixtures for the infrastructure contract tests: the repo's Terraform and envs/, parsed.

Everything is static (python-hcl2, the embedded Terraform without providers, checkov): the AWS
provider cannot be downloaded here, so nothing in tests/infra needs network or credentials.
`terraform_bin` and `checkov_bin` come from tests/conftest.py.
"""

from __future__ import annotations

import pytest
from infra_support import MODULES, REPO, TeamEnv, TfDir, all_tf_dirs, load_dir, load_envs, module_names


@pytest.fixture(scope="session")
def root() -> TfDir:
    """The root composition (repo root *.tf)."""
    return load_dir(REPO)


@pytest.fixture(scope="session")
def modules() -> dict[str, TfDir]:
    """Every module under modules/, by name."""
    return {name: load_dir(MODULES / name) for name in module_names()}


@pytest.fixture(scope="session")
def tf_dirs() -> list[TfDir]:
    """Root, every module and every module example."""
    return [load_dir(p) for p in all_tf_dirs()]


@pytest.fixture(scope="session")
def envs() -> dict[tuple[str, str], TeamEnv]:
    """envs/<env>/<team>/ by (env, team)."""
    return load_envs()
