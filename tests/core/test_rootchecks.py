"""Which root guard rails a `-target` plan skips, and the configuration that evaluates them alone
(engine/rootchecks.py, model/hclrefs.py; pure parts; tests/safety/test_root_checks.py runs them
with real Terraform)."""

from __future__ import annotations

from tfdeploy.engine.rootchecks import alone_config, find_root_guards, skipped_by_target, var_files
from tfdeploy.model.hcl import loads
from tfdeploy.model.hclrefs import references

ROOT = """\
variable "region" {
  type = string
  validation {
    condition     = length(var.region) > 0
    error_message = "region must be set, e.g. us-east-1."
  }
}

variable "size" {
  type    = number
  default = 3
  validation {
    condition     = var.size <= local.max
    error_message = "too big."
  }
}

variable "limit" {
  type    = number
  default = 1
  validation {
    condition     = var.limit > 0
    error_message = "limit must be positive."
  }
}

locals {
  max    = 5
  prefix = "${var.region}-x"
}

check "named" {
  assert {
    condition     = var.limit < 10
    error_message = "limit below 10."
  }
}

check "reads" {
  data "http" "site" {
    url = "https://127.0.0.1/"
  }
  assert {
    condition     = data.http.site.status_code == 200
    error_message = "down."
  }
}

module "regional" {
  source = "./modules/regional"
  name   = local.prefix
}

module "global" {
  source = "./modules/global"
  size   = var.size
}
"""


def test_references_are_objects_not_words():
    assert references("${var.a == local.b && module.m.out != aws_s3_bucket.x.id}") == {
        "var.a", "local.b", "module.m", "aws_s3_bucket.x"}
    assert references("${data.http.site.status_code}") == {"data.http.site"}
    assert references("e.g. us-east-1, see docs.example") == frozenset()


def test_the_target_skips_checks_and_validations_of_variables_it_does_not_use():
    parsed = [loads(ROOT, "main.tf")]
    regional = {s.label: s.why_not_alone for s in skipped_by_target(parsed, "module.regional")}
    # var.region reaches module.regional through local.prefix: Terraform validates it.
    assert regional == {"var.size's validation": "refers to local.max", "var.limit's validation": "",
                        "check.named": "", "check.reads": "refers to data.http.site"}
    glob = {s.label for s in skipped_by_target(parsed, "module.global")}
    assert glob == {"var.region's validation", "var.limit's validation", "check.named", "check.reads"}


def test_the_alone_config_holds_every_variable_and_the_checks_that_need_only_variables(tmp_path):
    (tmp_path / "main.tf").write_text(ROOT)
    guards = find_root_guards(tmp_path, "module.regional")
    text, where = alone_config(guards)
    assert 'variable "size" {}\n' in text  # its validation needs local.max: dropped, kept untyped
    assert "var.limit > 0" in text and "var.limit < 10" in text and "length(var.region)" in text
    assert "data.http" not in text and "module" not in text and "local." not in text
    assert sorted(where.values()) == ["check.named", "var.limit", "var.region", "var.size"]
    lines = text.splitlines()
    assert all(lines[line - 1].startswith(("variable", "check")) for line in where)
    loads(text, "rootchecks.tf")  # valid HCL


def test_var_files_in_terraforms_order(tmp_path):
    for name in ("b.auto.tfvars", "terraform.tfvars", "a.auto.tfvars.json", "other.tfvars"):
        (tmp_path / name).write_text("")
    assert [p.name for p in var_files(tmp_path, ["envs/dev/t/variables.tfvars"])] == [
        "terraform.tfvars", "a.auto.tfvars.json", "b.auto.tfvars", "variables.tfvars"]
