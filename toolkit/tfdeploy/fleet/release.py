"""`tfdeploy release`: the annotated tags of one release (env, team, version) at one commit.

Planning is pure (`plan_release`): which tags, in deploy order (global first), and every reason to
refuse them. The checks read the commit being tagged, as `plan` will read it for each tag
(`pyproject.toml` and `envs/` exported through `gitsource.export_commit`), so a release is refused
for what `plan` would refuse, not for what the working tree happens to hold.

No half-made releases: every check runs before the first tag is created; if creating tag k still
fails (a concurrent git, a full disk), the k-1 tags this run created are deleted again (they were
never pushed, and each is deleted only if it still names the tag object this run made).
"""

from __future__ import annotations

import fnmatch
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from ..errors import ConfigError, TagError, TfdeployError, ValidationError
from ..model.envs import ENVS_DIR, TEAM_FILE, TeamConfig, load_team
from ..model.regions import REGION_SHAPE
from ..model.settings import Settings, load_settings
from ..model.tags import GLOBAL, Tag, parse_tag, show

ALL = "all"


@dataclass(frozen=True)
class ReleaseRequest:
    env: str
    team: str
    version: str
    regions: tuple[str, ...] | None  # None: every Region with tfvars for the team (`all`)
    include_global: bool

    @property
    def name(self) -> str:
        return f"{self.env}/{self.team}/{self.version}"

    @property
    def pattern(self) -> str:
        """The glob that selects this release's tags (`dev_*/research/1.1`)."""
        return f"{self.env}_*/{self.team}/{self.version}"


def parse_regions(text: str | None) -> tuple[str, ...] | None:
    """`--regions` -> Region codes in the order given, without repeats; `all` -> None (pure)."""
    if text is None:
        return ()
    items = [item.strip() for item in text.split(",") if item.strip()]
    if items == [ALL]:
        return None
    if ALL in items:
        raise ValidationError(f"--regions {show(text)}: 'all' stands alone (every Region with tfvars "
                              "for the team); or list Regions: --regions us-east-1,eu-west-1")
    if GLOBAL in items:
        raise ValidationError(f"--regions {show(text)}: global is not a Region; pass --global to tag "
                              "the global cell")
    return tuple(dict.fromkeys(items))


def tag_name(env: str, scope: str, team: str, version: str) -> str:
    return f"{env}_{scope}/{team}/{version}"


def plan_release(request: ReleaseRequest, settings: Settings, team: TeamConfig,
                 tfvars_regions: Sequence[str], existing_tags: Sequence[str]) -> tuple[Tag, ...]:
    """The release's tags, global first then its Regions, or ValidationError naming every
    reason to refuse them (pure: the caller reads the commit and the repo's tags).

    `tfvars_regions`: Regions that have `envs/<env>/<team>/<region>.tfvars` in the commit.
    """
    where = f"{ENVS_DIR}/{request.env}/{request.team}"
    regions = request.regions if request.regions is not None else tuple(sorted(tfvars_regions))
    if not regions and not request.include_global:
        if request.regions is None:
            raise ValidationError(f"release {request.name}: --scope all found no <region>.tfvars in "
                                  f"{where}/ of the commit; add one per Region (or pass --global only)")
        raise ValidationError("nothing to release: pass --scope R1,R2 (or all) and/or --global")
    problems: list[str] = []
    tags: list[Tag] = []
    scopes = ([GLOBAL] if request.include_global else []) + list(regions)
    for scope in scopes:
        name = tag_name(request.env, scope, request.team, request.version)
        try:
            tag = parse_tag(name, settings.extra_regions)
        except TagError as exc:
            problems.append(str(exc).split("; expected")[0])
            continue
        if tag.region is not None:
            if tag.region not in tfvars_regions:
                problems.append(f"{tag.region} has no {where}/{tag.region}.tfvars in the commit "
                                "(add it, or leave the Region out)")
                continue
            if team.allowed_regions is not None and tag.region not in team.allowed_regions:
                problems.append(f"{tag.region} is outside allowed_regions in {where}/{TEAM_FILE} "
                                f"({', '.join(team.allowed_regions) or 'none'})")
                continue
        tags.append(tag)
    taken = sorted(set(existing_tags) & {t.name for t in tags})
    if taken:
        problems.append(f"tag{'s' if len(taken) > 1 else ''} {', '.join(taken)} already exist"
                        f"{'' if len(taken) > 1 else 's'} (a version is released once; use a new version)")
    if problems:
        raise ValidationError(f"release {request.name} refused, nothing tagged: " + "; ".join(problems))
    return tuple(tags)


def release_message(request: ReleaseRequest, tags: Sequence[Tag]) -> str:
    """The annotation of every tag of the release: what was released, and where (pure)."""
    return (f"release {request.name} ({', '.join(t.scope_name for t in tags)})\n\n"
            f"Created by tfdeploy release: {len(tags)} tag(s) of {request.team} {request.version} "
            f"for {request.env}.\n")


def deploy_hint(request: ReleaseRequest, tags: Sequence[Tag], existing_tags: Sequence[str]) -> str:
    """The command that deploys exactly these tags (pure): the release's glob when it selects
    nothing else, else the tags one by one."""
    names = {t.name for t in tags}
    others = [n for n in existing_tags if fnmatch.fnmatchcase(n, request.pattern) and n not in names]
    if others:
        selection = " ".join(f"--tag {t.name}" for t in tags)
    else:
        selection = f"--tag '{request.pattern}'"
    return f"tfdeploy apply {selection} --auto-approve"


# --- git I/O ---------------------------------------------------------------------------------

def _git(repo_root: Path, *args: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess:
    # The ceiling keeps git from using a repo above the infra repo.
    full = {**(env if env is not None else os.environ),
            "GIT_CEILING_DIRECTORIES": str(Path(repo_root).resolve().parent)}
    try:
        return subprocess.run(["git", *args], cwd=repo_root, capture_output=True, text=True, env=full)
    except FileNotFoundError:
        raise TfdeployError("git is not installed or not on PATH; install git") from None


def _last_line(proc: subprocess.CompletedProcess) -> str:
    lines = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
    return lines[-1] if lines else f"exit {proc.returncode}"


def release_commit(repo_root: Path, ref: str | None, default_branch: str) -> str:
    """The commit to tag: `ref`, or the tip of the default branch; it must be on that branch."""
    head = None
    for candidate in (f"refs/heads/{default_branch}", f"refs/remotes/origin/{default_branch}"):
        proc = _git(repo_root, "rev-parse", "--verify", "--quiet", f"{candidate}^{{commit}}")
        if proc.returncode == 0:
            head = proc.stdout.strip()
            break
    if head is None:
        raise ValidationError(f"default branch {default_branch!r} not found in {repo_root}; set "
                              "default_branch in [tool.tfdeploy] or pass --default-branch")
    if ref is None:
        return head
    if ref.startswith("-"):
        raise ValidationError(f"--ref {show(ref)} is not a git ref")
    proc = _git(repo_root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    if proc.returncode != 0:
        raise ValidationError(f"--ref {show(ref)} names no commit in {repo_root}")
    commit = proc.stdout.strip()
    if _git(repo_root, "merge-base", "--is-ancestor", commit, head).returncode != 0:
        raise ValidationError(f"--ref {show(ref)} ({commit[:12]}) is not on {default_branch}: only merged "
                              f"code is released; merge it first or release a commit of {default_branch}")
    return commit


def existing_tag_names(repo_root: Path) -> list[str]:
    proc = _git(repo_root, "for-each-ref", "--format=%(refname:strip=2)", "refs/tags")
    if proc.returncode != 0:
        raise TfdeployError(f"git for-each-ref failed in {repo_root}: {_last_line(proc)}")
    return proc.stdout.split()


@dataclass(frozen=True)
class CommitConfig:
    """What the commit being tagged says about the release's env and team."""

    settings: Settings
    team: TeamConfig
    tfvars_regions: tuple[str, ...]


def read_commit_config(repo_root: Path, commit: str, request: ReleaseRequest, *,
                       environ: Mapping[str, str], overrides: Mapping[str, Any]) -> CommitConfig:
    """Settings and the team's envs/ files of the commit (as `plan` reads a tagged commit)."""
    from ..engine.gitsource import existing_paths, export_commit
    from ..engine.tagview import CONFIG_PATHS
    from ..model.deployment import check_env

    with tempfile.TemporaryDirectory(prefix="tfdeploy-release-") as tmp:
        root = Path(tmp)
        paths = existing_paths(repo_root, commit, CONFIG_PATHS)
        if paths:
            export_commit(repo_root, commit, root, paths)
        settings = load_settings(root, environ, overrides)
        # The grammar of env, team and version first: one line naming the wrong part.
        probe = parse_tag(tag_name(request.env, GLOBAL, request.team, request.version), settings.extra_regions)
        check_env(probe, settings)
        settings.require_backend_prefix()  # plan would refuse every tag without it
        try:
            team = load_team(root, request.env, request.team, GLOBAL)
        except ConfigError as exc:
            raise ConfigError(f"{exc} (in commit {commit[:12]})") from None
        team_dir = root / ENVS_DIR / request.env / request.team
        regions = tuple(sorted(p.stem for p in team_dir.glob("*.tfvars")
                               if p.is_file() and REGION_SHAPE.fullmatch(p.stem)))
    return CommitConfig(settings, team, regions)


def check_identity(repo_root: Path) -> None:
    """An annotated tag needs a tagger; refuse before the first tag, not at it."""
    proc = _git(repo_root, "var", "GIT_COMMITTER_IDENT")
    if proc.returncode != 0:
        raise ConfigError("git has no identity to sign the tags as tagger: git config user.name '...' "
                          "&& git config user.email '...', then run the same command again")


def check_remote(repo_root: Path, remote: str, names: Sequence[str]) -> None:
    """Before any tag is made: the remote exists, answers, and holds none of the tags."""
    if remote.startswith("-") or _git(repo_root, "remote", "get-url", remote).returncode != 0:
        raise ValidationError(f"--remote {show(remote)} is not a git remote of {repo_root}; "
                              "add it (git remote add NAME URL) or pass --remote NAME")
    proc = _git(repo_root, "ls-remote", "--tags", remote, *[f"refs/tags/{n}" for n in names])
    if proc.returncode != 0:
        raise TfdeployError(f"cannot read the tags of remote {remote}: {_last_line(proc)}; nothing tagged")
    on_remote = sorted({line.split("\t", 1)[1].removeprefix("refs/tags/").removesuffix("^{}")
                        for line in proc.stdout.splitlines() if "\t" in line} & set(names))
    if on_remote:
        raise ValidationError(f"remote {remote} already has {', '.join(on_remote)}; nothing tagged "
                              "(git fetch --tags to see them; a version is released once)")


def create_tags(repo_root: Path, commit: str, names: Sequence[str], message: str,
                note: Callable[[str], None] = lambda _: None) -> list[str]:
    """`git tag -a` each name at `commit` (so tag signing settings apply), all or none."""
    created: list[tuple[str, str]] = []  # (name, tag object)
    for name in names:
        proc = _git(repo_root, "tag", "-a", name, commit, "-m", message)
        if proc.returncode != 0:
            raise TfdeployError(f"creating tag {name} failed ({_last_line(proc)}); "
                                + _roll_back(repo_root, created))
        made = _git(repo_root, "rev-parse", "--verify", f"refs/tags/{name}")
        created.append((name, made.stdout.strip()))
        note(name)
    return [name for name, _ in created]


def _roll_back(repo_root: Path, created: list[tuple[str, str]]) -> str:
    if not created:
        return "no tag was created; fix that, then run the same command again"
    deleted, left = [], []
    for name, obj in reversed(created):
        # Conditional delete: only the tag object this run made, never a tag someone re-made.
        proc = _git(repo_root, "update-ref", "-d", f"refs/tags/{name}", obj)
        (deleted if proc.returncode == 0 else left).append(name)
    text = (f"deleted the {len(deleted)} tag(s) this run had created ({', '.join(reversed(deleted))}; "
            "never pushed)" if deleted else "")
    if left:
        text += ("; " if text else "") + (f"could NOT delete {', '.join(left)}: delete by hand "
                                          f"(git tag -d {' '.join(left)})")
    return text + "; nothing was released; fix that, then run the same command again"


def push_tags(repo_root: Path, remote: str, names: Sequence[str]) -> str:
    """Push exactly these tags, atomically where the remote supports it; returns how."""
    refs = [f"refs/tags/{n}:refs/tags/{n}" for n in names]
    proc = _git(repo_root, "push", "--atomic", remote, *refs)
    how = "atomic"
    if proc.returncode != 0 and "does not support --atomic" in proc.stderr:
        proc = _git(repo_root, "push", remote, *refs)
        how = "one by one (the remote does not support atomic pushes)"
    if proc.returncode != 0:
        raise TfdeployError(f"the tags were created here but pushing them to {remote} failed "
                            f"({_last_line(proc)}); once fixed: git push {remote} "
                            + " ".join(f"refs/tags/{n}" for n in names))
    return how
