"""Which environment variables may reach Terraform (pure).

Terraform reads some variables that silently change *where* state goes or *what* a command does:
`TF_WORKSPACE` writes state under `env:/<name>/...`, `TF_CLI_ARGS*` add arguments such as
`-target`, `-lock=false` or `-state` to commands tfdeploy builds, `TF_DATA_DIR` moves the backend
and workspace selection, `TF_REATTACH_PROVIDERS` swaps providers for already-running processes,
and `TF_VAR_<name>` for a value tfdeploy derives from the tag would contradict it. tfdeploy refuses
these instead of dropping them quietly: whoever set them expected an effect, and should learn it
will not happen. Everything else (`TF_LOG*`, `TF_PLUGIN_CACHE_DIR`, `TF_CLI_CONFIG_FILE`,
`TF_IN_AUTOMATION`, `TF_INPUT`, `TF_TOKEN_*`, `TF_REGISTRY_*`, other `TF_VAR_*`, ...) passes.
"""

from __future__ import annotations

from typing import Mapping

from ..errors import ConfigError

# The variables tfdeploy writes into every work dir's generated tfvars (see provider.deployment_tfvars).
GENERATED_VARIABLES = ("env", "region", "team", "account", "release_version")

_REFUSED = {
    "TF_WORKSPACE": "selects another workspace, so state would go to env:/<workspace>/...",
    "TF_CLI_ARGS": "adds arguments to every Terraform command",
    "TF_DATA_DIR": "moves Terraform's backend and workspace selection out of the work dir",
    "TF_REATTACH_PROVIDERS": "replaces the providers with already-running processes",
}
_REFUSED_PREFIXES = {
    "TF_CLI_ARGS_": "adds arguments to a Terraform command",
}


def why_refused(name: str, generated: tuple[str, ...] = GENERATED_VARIABLES) -> str | None:
    """Why `name` may not steer Terraform, or None when it is harmless (pure)."""
    if name in _REFUSED:
        return _REFUSED[name]
    for prefix, reason in _REFUSED_PREFIXES.items():
        if name.startswith(prefix):
            return reason
    if name.startswith("TF_VAR_") and name[len("TF_VAR_"):] in generated:
        return "overrides a value tfdeploy derives from the tag"
    return None


def refused_variables(environ: Mapping[str, str],
                      generated: tuple[str, ...] = GENERATED_VARIABLES) -> dict[str, str]:
    """Set (non-empty) variables that would steer Terraform, with why (pure).

    An empty value is ignored: Terraform treats it as unset.
    """
    return {name: reason for name in sorted(environ)
            if environ[name] != "" and (reason := why_refused(name, generated)) is not None}


def controlled_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """`environ` as Terraform may see it; raises ConfigError naming every steering variable."""
    refused = refused_variables(environ)
    if refused:
        names = ", ".join(refused)
        reasons = "; ".join(f"{name} {reason}" for name, reason in refused.items())
        raise ConfigError(f"refusing to run Terraform with {names} set ({reasons}); unset "
                          f"{'it' if len(refused) == 1 else 'them'}: the tag decides the workspace, "
                          "arguments and generated variables")
    # Empty ones are inert, but drop them so nothing downstream has to know that.
    return {name: value for name, value in environ.items() if why_refused(name) is None or value != ""}
