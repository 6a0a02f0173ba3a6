"""Static contract of the repo's Terraform: root composition, modules, examples.

What a reviewer checks by eye, asserted over every .tf file: typed and described variables,
described outputs, pinned providers, no provider blocks (tfdeploy generates them), the two
deployment namespaces, relative module sources, no hard-coded Regions, nothing declared unused.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from infra_support import MODULES, REPO, TfDir, all_tf_dirs, example_dirs, load_dir, module_names, unwrap

AWS_CONSTRAINT = ">= 5.40.0, < 6.0.0"
TF_CONSTRAINT = ">= 1.10.0, < 2.0.0"
# Deliberately broad: any Region-looking literal, so a new Region name is caught too.
REGION_LITERAL = re.compile(
    r"\b[a-z]{2}(?:-gov|-iso[a-z]?)?-(?:north|south|east|west|central|"
    r"northeast|northwest|southeast|southwest)-[0-9]{1,2}\b"
)
IDS = [str(p.relative_to(REPO)) or "root" for p in all_tf_dirs()]


def _dirs(tf_dirs: list[TfDir]) -> dict[str, TfDir]:
    return {d.rel: d for d in tf_dirs}


# --- variables and outputs --------------------------------------------------------------------


def test_every_variable_is_typed_and_described(tf_dirs):
    problems = []
    for d in tf_dirs:
        for name, body in d.named("variable").items():
            if not body.get("type"):
                problems.append(f"{d.rel}: variable {name} has no type")
            if len(str(body.get("description", "")).strip()) < 10:
                problems.append(f"{d.rel}: variable {name} has no real description")
    assert not problems, "\n".join(problems)


def test_every_output_is_described(tf_dirs):
    problems = [
        f"{d.rel}: output {name} has no description"
        for d in tf_dirs
        for name, body in d.named("output").items()
        if len(str(body.get("description", "")).strip()) < 10
    ]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", all_tf_dirs(), ids=IDS)
def test_nothing_declared_is_unused(path: Path):
    """What tflint's terraform_unused_declarations reports, checked offline."""
    d = load_dir(path)
    text = d.text()
    unused = [f"var.{n}" for n in d.named("variable") if not re.search(rf"\bvar\.{re.escape(n)}\b", text)]
    unused += [f"local.{n}" for n in d.locals() if not re.search(rf"\blocal\.{re.escape(n)}\b", text)]
    unused += [f"data.{t}.{n}" for t, n in d.typed("data")
               if not re.search(rf"\bdata\.{re.escape(t)}\.{re.escape(n)}\b", text)]
    assert not unused, f"{d.rel}: declared but never used: {', '.join(unused)}"


# --- versions and providers -------------------------------------------------------------------


@pytest.mark.parametrize("path", all_tf_dirs(), ids=IDS)
def test_terraform_and_aws_provider_are_pinned(path: Path):
    d = load_dir(path)
    terraform_blocks = [b for _, b in d.blocks("terraform")]
    assert len(terraform_blocks) == 1, f"{d.rel}: expected exactly one terraform block"
    block = terraform_blocks[0]
    assert block.get("required_version") == TF_CONSTRAINT, f"{d.rel}: required_version"
    providers = {k: v for entry in block.get("required_providers", []) for k, v in entry.items()}
    assert providers.get("aws") == {"source": "hashicorp/aws", "version": AWS_CONSTRAINT}, (
        f"{d.rel}: aws must be hashicorp/aws pinned to {AWS_CONSTRAINT!r}, got {providers.get('aws')}"
    )
    assert set(providers) == {"aws"}, f"{d.rel}: unexpected providers {sorted(providers)}"


def test_aws_constraint_excludes_the_next_major_version():
    # The pin must have an upper bound below 6.0 (breaking changes to data.aws_region etc.).
    lower, upper = (part.strip() for part in AWS_CONSTRAINT.split(","))
    assert lower.startswith(">= 5.") and upper == "< 6.0.0"


def test_no_provider_aws_block_anywhere():
    offenders = []
    for path in REPO.rglob("*.tf"):
        rel = path.relative_to(REPO)
        # Hidden folders (.venv*, .tfdeploy work dirs, .terraform) are not the repo's code.
        if rel.parts[0].startswith(".") or ".terraform" in rel.parts or rel.parts[0] in ("tests", "toolkit"):
            continue
        if re.search(r'^\s*provider\s+"aws"', path.read_text(encoding="utf-8"), re.M):
            offenders.append(str(rel))
    assert not offenders, f"provider \"aws\" blocks (tfdeploy generates the provider): {offenders}"


def test_root_uses_a_partial_s3_backend(root):
    (block,) = [b for _, b in root.blocks("terraform")]
    assert block["backend"] == [{"s3": {}}], "backend must be an empty s3 block; tfdeploy fills it"


# --- root composition -------------------------------------------------------------------------


def test_root_has_the_two_namespaces_and_nothing_else(root):
    calls = root.named("module")
    assert set(calls) == {"regional", "global"}
    assert calls["regional"]["source"] == "./modules/regional"
    assert calls["global"]["source"] == "./modules/global"
    # Anything outside the two modules would be in neither -target and never deployed.
    assert not root.typed("resource"), "root must not declare resources outside the namespaces"
    assert not root.typed("data"), "root must not read data outside the namespaces"


def test_root_declares_the_variables_tfdeploy_writes(root):
    variables = root.named("variable")
    for name in ("env", "region", "team", "account", "release_version"):
        assert unwrap(variables[name]["type"]) == "string", name
        assert "default" not in variables[name], f"{name} must be required (tfdeploy always sets it)"
        assert variables[name].get("validation"), f"{name} must be validated"
    allowed = variables["allowed_regions"]
    assert unwrap(allowed["type"]) == "list(string)" and allowed["default"] == []
    # Terraform rejects a variable named "version"; the tag version arrives as release_version.
    assert "version" not in variables


def test_root_region_validation_is_a_region_format_check(root):
    (validation,) = root.named("variable")["region"]["validation"]
    match = re.search(r'regex\("(.+?)", var\.region\)', validation["condition"])
    assert match, validation["condition"]
    pattern = re.compile(match.group(1).replace("\\\\", "\\"))
    for good in ("us-east-1", "eu-central-1", "ap-southeast-1", "us-gov-west-1", "il-central-1"):
        assert pattern.match(good), good
    for bad in ("global", "US-EAST-1", "us-east", "useast1", "us_east_1"):
        assert not pattern.match(bad), bad


def test_namespaces_pass_every_regional_and_global_input(root, modules):
    """Every required input of the namespace modules is wired from the root."""
    calls = root.named("module")
    for name in ("regional", "global"):
        declared = modules[name].named("variable")
        required = {v for v, body in declared.items() if "default" not in body}
        passed = set(calls[name]) - {"source"}
        assert required <= passed, f"module.{name} misses {sorted(required - passed)}"
        assert passed <= set(declared), f"module.{name} gets unknown inputs {sorted(passed - set(declared))}"


# --- modules ----------------------------------------------------------------------------------


REQUIRED_MODULES = {"network", "web", "iam", "tf-backend", "pipeline"}


def test_required_modules_exist():
    assert REQUIRED_MODULES <= set(module_names())


@pytest.mark.parametrize("name", module_names())
def test_module_is_documented_with_an_example(name):
    module = load_dir(MODULES / name)
    readme = MODULES / name / "README.md"
    assert readme.is_file(), f"modules/{name}/README.md missing"
    text = readme.read_text(encoding="utf-8")
    missing = [f"variable {v}" for v in module.named("variable") if f"`{v}`" not in text]
    missing += [f"output {o}" for o in module.named("output") if f"`{o}`" not in text]
    assert not missing, f"modules/{name}/README.md does not document: {', '.join(missing)}"
    examples = [p for p in example_dirs() if p.parent.parent.name == name]
    assert examples, f"modules/{name} has no examples/ directory"
    for example in examples:
        calls = load_dir(example).named("module")
        assert any(str(c.get("source", "")).rstrip("/") == "../.." for c in calls.values()), (
            f"{example.relative_to(REPO)} does not call its module"
        )


def test_module_sources_are_relative_or_exactly_pinned(tf_dirs):
    """Inside the repo, modules are versioned by the git tag; anything external needs an exact pin."""
    problems = []
    for d in tf_dirs:
        for name, body in d.named("module").items():
            source = str(body["source"])
            if source.startswith(("./", "../")):
                if not (d.path / source).resolve().is_dir():
                    problems.append(f"{d.rel}: module {name} points at missing {source}")
                continue
            if not re.fullmatch(r"\d+\.\d+\.\d+", str(body.get("version", ""))) and "?ref=" not in source:
                problems.append(f"{d.rel}: external module {name} ({source}) is not pinned to an exact version")
    assert not problems, "\n".join(problems)


def test_no_hard_coded_region_in_module_or_root_code(tf_dirs):
    """Region-dependent code must read data.aws_region, so a new Region needs no code change."""
    offenders = []
    for d in tf_dirs:
        if "examples" in d.path.parts:
            continue  # examples illustrate concrete values on purpose
        for name in d.files:
            for lineno, line in enumerate((d.path / name).read_text(encoding="utf-8").splitlines(), 1):
                code = line.split("#", 1)[0]
                if re.match(r"\s*(description|error_message)\s*=", code):
                    continue  # prose for humans, not configuration
                if REGION_LITERAL.search(code):
                    offenders.append(f"{d.rel}/{name}:{lineno}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


@pytest.mark.parametrize("name", ["context", "network", "web", "tf-backend", "pipeline"])
def test_region_dependent_modules_read_the_provider_region(modules, name):
    assert ("aws_region", "current") in modules[name].typed("data")


def test_region_guard_checks_the_provider_against_the_deployment(modules):
    context = modules["context"].typed("data")
    region_checks = context[("aws_region", "current")]["lifecycle"][0]["postcondition"]
    conditions = " ".join(c["condition"] for c in region_checks)
    assert "self.name == var.expected_region" in conditions
    assert "var.allowed_regions" in conditions
    (account_check,) = context[("aws_caller_identity", "current")]["lifecycle"][0]["postcondition"]
    assert "self.account_id == var.expected_account" in account_check["condition"]
    for namespace in ("regional", "global"):
        assert modules[namespace].named("module")["context"]["source"] == "../context"


def test_network_locks_down_the_default_security_group(modules):
    resources = modules["network"].typed("resource")
    default_sg = resources[("aws_default_security_group", "this")]
    assert "ingress" not in default_sg and "egress" not in default_sg
    assert ("aws_flow_log", "this") in resources
    nat_count = modules["network"].locals()["nat_count"]
    assert 'var.nat_gateway_mode == "single" ? 1 : var.az_count' in nat_count


def test_web_alb_is_hardened(modules):
    resources = modules["web"].typed("resource")
    alb = resources[("aws_lb", "this")]
    assert alb["drop_invalid_header_fields"] is True
    assert alb["internal"] is False
    assert alb["access_logs"][0]["enabled"] is True
    redirect = resources[("aws_lb_listener", "http_redirect")]["default_action"][0]
    assert redirect["type"] == "redirect" and redirect["redirect"][0]["protocol"] == "HTTPS"
    https = resources[("aws_lb_listener", "https")]
    assert https["protocol"] == "HTTPS" and https["ssl_policy"] == "${var.ssl_policy}"
    # The fixed response names the Region read from the provider.
    assert "${local.region}" in modules["web"].locals()["response_body"]
    plaintext = resources[("aws_lb_listener", "http")]
    (precondition,) = plaintext["lifecycle"][0]["precondition"]
    assert precondition["condition"] == "${var.allow_plaintext_http}"


def test_plaintext_http_is_only_allowed_below_staging(root):
    assert root.locals()["allow_plaintext_http"] == '${contains(["dev", "qa"], var.env)}'


def test_tf_backend_names_and_hardening(modules):
    backend = modules["tf-backend"]
    local = backend.locals()
    assert local["bucket_name"] == "${var.prefix}-${var.env}"
    assert local["table_name"] == "${var.prefix}-lock-${var.env}"
    table = backend.typed("resource")[("aws_dynamodb_table", "lock")]
    assert table["hash_key"] == "LockID"
    assert table["attribute"] == [{"name": "LockID", "type": "S"}]
    assert table["billing_mode"] == "PAY_PER_REQUEST"
    assert table["point_in_time_recovery"] == [{"enabled": True}]
    assert table["count"] == "${var.create_lock_table ? 1 : 0}"
    assert backend.named("module")["state_bucket"]["source"] == "../s3-bucket"


def test_shared_bucket_module_blocks_public_access_and_plain_http(modules):
    bucket = modules["s3-bucket"]
    resources = bucket.typed("resource")
    pab = resources[("aws_s3_bucket_public_access_block", "this")]
    assert all(pab[k] is True for k in ("block_public_acls", "block_public_policy",
                                         "ignore_public_acls", "restrict_public_buckets"))
    assert resources[("aws_s3_bucket_versioning", "this")]["versioning_configuration"] == [{"status": "Enabled"}]
    policy = bucket.typed("data")[("aws_iam_policy_document", "this")]
    secure_transport = [s for s in policy["statement"] if s.get("sid") == "DenyInsecureTransport"]
    assert secure_transport and secure_transport[0]["effect"] == "Deny"
    assert secure_transport[0]["condition"][0]["variable"] == "aws:SecureTransport"
