from tests.e2e.conftest import repo, sandbox_env  # noqa: F401
