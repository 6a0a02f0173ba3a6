"""envs/: the per-team, per-environment configuration tfdeploy reads and passes to Terraform.

Static checks with python-hcl2 and ipaddress, plus the real (embedded) Terraform evaluating the
root module's variable declarations against every deployable tfvars combination, exactly as
tfdeploy passes them: tfdeploy.auto.tfvars.json, then -var-file variables.tfvars, then the
Region's or global file. No provider is involved, so this runs offline.
"""

from __future__ import annotations

import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from infra_support import (
    ACCOUNT_RE,
    ENVS,
    REGION_RE,
    REPO,
    TEAMS,
    load_envs,
    networks_overlap,
    run_terraform,
    tfdeploy_setting,
)

ENVIRONMENTS = tuple(tfdeploy_setting("environments"))
GLOBAL_REGION = tfdeploy_setting("global_region")
# Only variables.tfvars may define these: tfdeploy reads them from there, not from Region files.
TEAM_LEVEL_ONLY = {"account", "allowed_regions"}


def deployments() -> list[tuple[str, str, str]]:
    """(env, team, scope) for every deployment envs/ makes possible; scope is a Region or global."""
    found = []
    for (env, team), cfg in sorted(load_envs().items()):
        found += [(env, team, region) for region in cfg.deployable_regions()]
        found.append((env, team, "global"))
    return found


# --- envs layout and accounts -----------------------------------------------------------------


def test_every_environment_and_team_is_deployable(envs):
    missing = [f"envs/{e}/{t}/variables.tfvars" for e in ENVIRONMENTS for t in TEAMS if (e, t) not in envs]
    assert not missing, f"missing: {missing}"
    unknown = sorted({e for e, _ in envs} - set(ENVIRONMENTS))
    assert not unknown, f"envs/ has environments tfdeploy does not know: {unknown}"


def test_every_team_has_a_quoted_12_digit_account(envs):
    for (env, team), cfg in envs.items():
        account = cfg.variables.get("account")
        assert isinstance(account, str) and ACCOUNT_RE.match(account), (
            f"envs/{env}/{team}/variables.tfvars: account must be a quoted 12-digit string, got {account!r}"
        )


def test_accounts_are_distinct_and_documented_as_placeholders(envs):
    by_account: dict[str, list[str]] = {}
    for (env, team), cfg in envs.items():
        by_account.setdefault(cfg.variables["account"], []).append(f"{env}/{team}")
        text = (cfg.path / "variables.tfvars").read_text(encoding="utf-8")
        assert "PLACEHOLDER" in text, f"envs/{env}/{team}: say that the account id is a placeholder"
    shared = {a: who for a, who in by_account.items() if len(who) > 1}
    assert not shared, f"one account per team and environment; shared: {shared}"


def test_allowed_regions_are_region_codes(envs):
    for (env, team), cfg in envs.items():
        allowed = cfg.allowed_regions
        if allowed is None:
            continue
        assert isinstance(allowed, list) and allowed, f"envs/{env}/{team}: allowed_regions must be a non-empty list"
        assert all(isinstance(r, str) and REGION_RE.match(r) for r in allowed), allowed
        assert len(set(allowed)) == len(allowed), f"envs/{env}/{team}: duplicate Regions"


def test_region_files_are_for_allowed_regions_only(envs):
    for (env, team), cfg in envs.items():
        for region, values in cfg.regions.items():
            where = f"envs/{env}/{team}/{region}.tfvars"
            assert REGION_RE.match(region), f"{where}: not named after a Region"
            if cfg.allowed_regions is not None:
                assert region in cfg.allowed_regions, f"{where}: {region} is not in allowed_regions"
            assert not TEAM_LEVEL_ONLY & set(values), f"{where}: sets {TEAM_LEVEL_ONLY & set(values)}"
        if cfg.global_vars is not None:
            assert not TEAM_LEVEL_ONLY & set(cfg.global_vars), f"envs/{env}/{team}/global.tfvars"


def test_every_deployable_region_has_a_vpc_cidr(envs):
    missing = [f"envs/{env}/{team}/{region}.tfvars"
               for (env, team), cfg in envs.items() for region in cfg.deployable_regions()
               if "vpc_cidr" not in cfg.regions.get(region, {})]
    assert not missing, f"no vpc_cidr for: {missing}"


def test_vpc_cidrs_do_not_overlap_within_an_account(envs):
    by_account: dict[str, dict[str, str]] = {}
    for (env, team), cfg in envs.items():
        cidrs = by_account.setdefault(cfg.variables["account"], {})
        for region, values in cfg.regions.items():
            if "vpc_cidr" in values:
                cidrs[f"{env}/{team}/{region}"] = values["vpc_cidr"]
    problems = {account: networks_overlap(cidrs) for account, cidrs in by_account.items()}
    assert not any(problems.values()), {a: p for a, p in problems.items() if p}


def test_overlap_check_detects_overlaps():
    # The checker itself: a /16 and a /20 inside it overlap, neighbours do not.
    assert networks_overlap({"a": "10.10.0.0/16", "b": "10.10.16.0/20", "c": "10.11.0.0/16"}) == [("a", "b")]


def test_staging_and_prod_regions_have_certificates(envs):
    """The root refuses plain HTTP outside dev/qa, so every such Region needs a certificate."""
    missing = [f"envs/{env}/{team}/{region}.tfvars"
               for (env, team), cfg in envs.items() if env not in ("dev", "qa")
               for region in cfg.deployable_regions()
               if not cfg.regions.get(region, {}).get("alb_certificate_arn")]
    assert not missing, f"no alb_certificate_arn: {missing}"


def test_every_tfvars_key_is_a_declared_root_variable(root, envs):
    declared = set(root.named("variable"))
    undeclared = {}
    for (env, team), cfg in envs.items():
        files = {"variables.tfvars": cfg.variables, "global.tfvars": cfg.global_vars or {}}
        files.update({f"{r}.tfvars": v for r, v in cfg.regions.items()})
        for name, values in files.items():
            extra = set(values) - declared
            if extra:
                undeclared[f"envs/{env}/{team}/{name}"] = sorted(extra)
    assert not undeclared, f"Terraform would warn about undeclared variables: {undeclared}"


def test_env_readme_explains_adding_things():
    text = (ENVS / "README.md").read_text(encoding="utf-8").lower()
    for topic in ("add a team", "add a region", "add an environment", "placeholder"):
        assert topic in text, f"envs/README.md does not cover: {topic}"


# --- the real Terraform on the root variables --------------------------------------------------


def plan_variables(terraform_bin: str, work: Path, values: dict[str, str], var_files: list[Path]):
    """`terraform plan` of a config holding only the root variables.tf, inputs passed as tfdeploy does."""
    work.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "variables.tf", work / "variables.tf")
    (work / "tfdeploy.auto.tfvars.json").write_text(json.dumps(values), encoding="utf-8")
    args = ["plan", "-input=false", "-no-color", "-lock=false", "-refresh=false"]
    args += [f"-var-file={f}" for f in var_files]
    return run_terraform(terraform_bin, args, work)


@pytest.fixture(scope="module")
def deployment_plans(tmp_path_factory, terraform_bin):
    """One plan per deployment, run concurrently (each Terraform start costs ~0.3 s)."""
    base = tmp_path_factory.mktemp("deployments")

    def one(deployment: tuple[str, str, str]):
        env, team, scope = deployment
        cfg = load_envs()[(env, team)]
        scoped = cfg.path / f"{scope}.tfvars"
        var_files = [cfg.path / "variables.tfvars"] + ([scoped] if scoped.exists() else [])
        values = {"env": env, "region": GLOBAL_REGION if scope == "global" else scope, "team": team,
                  "account": cfg.variables["account"], "release_version": "1.0"}
        return deployment, plan_variables(terraform_bin, base / "-".join(deployment), values, var_files)

    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(pool.map(one, deployments()))


@pytest.mark.parametrize("deployment", deployments(), ids=lambda d: "-".join(d))
def test_terraform_accepts_every_deployment_without_warnings(deployment_plans, deployment):
    proc = deployment_plans[deployment]
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "Warning" not in output, output


@pytest.mark.parametrize("override,message", [
    ({"region": "global"}, "AWS Region code"),
    ({"region": "EU-CENTRAL-1"}, "AWS Region code"),
    ({"account": "12345"}, "12-digit"),
    ({"env": "dev_x"}, "no underscore"),
    ({"team": "research-analytics"}, "at most 20 characters"),
    ({"release_version": "latest"}, "release_version must be a version"),
])
def test_terraform_rejects_invalid_deployment_values(terraform_bin, tmp_path, override, message):
    values = {"env": "dev", "region": "us-east-1", "team": "research", "account": "111111111111",
              "release_version": "1.0", **override}
    proc = plan_variables(terraform_bin, tmp_path / "work", values, [])
    assert proc.returncode != 0
    assert message in " ".join((proc.stdout + proc.stderr).split()), proc.stderr


def test_terraform_rejects_an_invalid_vpc_cidr(terraform_bin, tmp_path):
    bad = tmp_path / "eu-central-1.tfvars"
    bad.write_text('vpc_cidr = "10.0.0.0/8"\n', encoding="utf-8")
    values = {"env": "dev", "region": "eu-central-1", "team": "research", "account": "111111111111",
              "release_version": "1.0"}
    proc = plan_variables(terraform_bin, tmp_path / "work", values, [bad])
    assert proc.returncode != 0 and "between /16 and /22" in proc.stderr
