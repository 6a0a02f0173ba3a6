"""The safety tests use the end-to-end fixtures: a real example repo, moto and embedded Terraform."""

from tests.e2e.conftest import repo, sandbox_env  # noqa: F401 (fixtures, shared with tests/e2e)
