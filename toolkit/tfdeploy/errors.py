"""Error types the CLI turns into one line and an exit code (never a traceback)."""

from __future__ import annotations

# Exit codes are part of the CLI contract (documented in the README).
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_TOOL_MISSING = 3


class TfdeployError(Exception):
    """A failure the user can act on. The message is one line saying what and what to do."""

    exit_code = EXIT_FAILURE


class ValidationError(TfdeployError):
    """Bad input: a tag, a setting or a config file. Exit code 2."""

    exit_code = EXIT_USAGE


class TagError(ValidationError):
    """A tag that does not follow `<env>_<region|global>/<team>/<version>`.

    `what`: the wrong part alone (e.g. "region 'us-east-9' is not a known AWS Region ..."), for
    commands that take the parts as options rather than a tag."""

    def __init__(self, message: str, what: str = ""):
        super().__init__(message)
        self.what = what or message


class ConfigError(ValidationError):
    """Repo settings or envs/ files that are missing or malformed."""


class ToolMissingError(TfdeployError):
    """An external executable (terraform, tflint, checkov) is not available."""

    exit_code = EXIT_TOOL_MISSING
