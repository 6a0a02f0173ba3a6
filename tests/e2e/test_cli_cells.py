"""Naming cells where a command reads the fleet: --env/--team/--scope filters and --global
(real moto, real git repo); the pure CLI parts are in tests/core/test_cli_groups.py."""

from __future__ import annotations

import json

from tests.e2e.conftest import tag, tfdeploy


def test_status_filters_by_scope(repo):
    tag(repo, "dev_global/research/1.0")  # a tagged global cell is a row of the fleet
    tfdeploy(repo, "bootstrap", "--env", "dev")
    rows = json.loads(tfdeploy(repo, "status", "--env", "dev", "--json").stdout)["cells"]
    scopes = {r["scope"] for r in rows}
    assert {"global", "us-east-1", "eu-central-1"} <= scopes
    only = json.loads(tfdeploy(repo, "status", "--env", "dev", "--scope", "us-east-1", "--json").stdout)["cells"]
    assert {r["scope"] for r in only} == {"us-east-1"}
    both = json.loads(tfdeploy(repo, "status", "--env", "dev", "--scope", "us-east-1", "--global",
                               "--json").stdout)["cells"]
    assert {r["scope"] for r in both} == {"us-east-1", "global"}
    regions = json.loads(tfdeploy(repo, "status", "--env", "dev", "--scope", "all", "--json").stdout)["cells"]
    assert {r["scope"] for r in regions} == scopes - {"global"}
