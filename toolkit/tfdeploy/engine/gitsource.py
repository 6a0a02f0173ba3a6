"""The code a deployment runs: the tagged commit, checked and exported (git + git archive).

Guards, in order: the tag exists; it is annotated (a lightweight tag has no author or date and is
easy to move by accident); its commit is reachable from the default branch (so only reviewed,
merged code is deployed — this also catches a tag left on a commit that was later amended).
"""

from __future__ import annotations

import io
import os
import posixpath
import re
import subprocess
import sys
import tarfile
import threading
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import Sequence

from ..errors import TfdeployError, ValidationError


@dataclass(frozen=True)
class SourceRef:
    """Where a work dir's code came from."""

    tag: str
    commit: str  # full sha; for --worktree, HEAD's sha
    annotated: bool
    tagger: str = ""  # name
    tagger_email: str = ""
    date: str = ""  # when the tag was made (ISO 8601)
    worktree: bool = False  # True: the working tree, not the tagged commit

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _open(repo_root: Path):
    import git  # gitpython: only the rare tag it is needed for pays its import (~130 ms)

    try:
        return git.Repo(repo_root)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise ValidationError(f"{repo_root} is not a git repository; pass --repo PATH") from None


# One `git for-each-ref` answers every tag of a run: name, kind, commit, tagger and dates.
_TAG_FIELDS = ("%(refname)", "%(objecttype)", "%(objectname)", "%(*objecttype)", "%(*objectname)",
               "%(taggername)", "%(taggeremail:trim)", "%(taggerdate:iso-strict)", "%(committerdate:iso-strict)")


def _missing(repo_root: Path, tag: str) -> ValidationError:
    return ValidationError(f"tag {tag!r} does not exist in {repo_root}; create it with "
                           f"git tag -a {tag} -m '...' (or git fetch --tags)")


def _lightweight(tag: str, commit: str) -> ValidationError:
    return ValidationError(f"tag {tag!r} is a lightweight tag; deployment tags must be annotated: "
                           f"git tag -d {tag} && git tag -a {tag} {commit[:12]} -m '...' "
                           "(or pass --allow-lightweight)")


def _no_branch(repo_root: Path, branch: str) -> ValidationError:
    return ValidationError(f"default branch {branch!r} not found in {repo_root}; set default_branch in "
                           "[tool.tfdeploy] or pass --skip-branch-check")


def _off_branch(tag: str, commit: str, branch: str) -> ValidationError:
    return ValidationError(f"tag {tag!r} points at {commit[:12]}, which is not on {branch} "
                           f"(unmerged, or the commit was amended/rebased); merge it or re-tag a commit on "
                           f"{branch}, or pass --skip-branch-check")


def _read_tags(repo_root: Path, names: Sequence[str]) -> dict[str, list[str]]:
    """name -> the _TAG_FIELDS of refs/tags/<name>, for the names that exist (one git process)."""
    if not (Path(repo_root) / ".git").exists():
        probe = _git(repo_root, "rev-parse", "--git-dir")
        if probe.returncode != 0:
            raise ValidationError(f"{repo_root} is not a git repository; pass --repo PATH")
    found: dict[str, list[str]] = {}
    wanted = set(names)
    for start in range(0, len(names), 500):  # keep the command line short on huge releases
        chunk = [f"refs/tags/{name}" for name in names[start:start + 500]]
        proc = _git(repo_root, "for-each-ref", "--format=" + "%00".join(_TAG_FIELDS), *chunk)
        if proc.returncode != 0:
            raise ValidationError(f"cannot read the tags of {repo_root}: {proc.stderr.strip()}; "
                                  "is it a git repository? (pass --repo PATH)")
        for line in proc.stdout.splitlines():
            fields = line.split("\0")
            name = fields[0].removeprefix("refs/tags/")
            if len(fields) == len(_TAG_FIELDS) and name in wanted:  # for-each-ref also matches below a name
                found[name] = fields
    return found


def branch_commit(repo_root: Path, branch: str) -> str | None:
    """The commit the branch (local, else origin's) points at; None when this clone has neither."""
    for name in (f"refs/heads/{branch}", f"refs/remotes/origin/{branch}"):
        proc = _git(repo_root, "rev-parse", "--verify", "--quiet", f"{name}^{{commit}}")
        if proc.returncode == 0 and proc.stdout.strip():
            return proc.stdout.strip()
    return None


def _is_ancestor(repo_root: Path, commit: str, head: str) -> bool:
    return _git(repo_root, "merge-base", "--is-ancestor", commit, head).returncode == 0


def tag_sources(repo_root: Path, tags: Sequence[str], *, default_branch: str = "main",
                allow_lightweight: bool = False,
                skip_branch_check: bool = False) -> dict[str, SourceRef | ValidationError]:
    """Check every tag and return the commit each deploys, or why it may not be deployed.

    git subprocesses: one for-each-ref for all tags, one rev-parse for the branch and one
    merge-base per distinct commit, so a release of 50 tags at one commit costs 3 git runs. A
    tag of a tag (rare) is peeled by gitpython."""
    rows = _read_tags(repo_root, list(dict.fromkeys(tags)))
    out: dict[str, SourceRef | ValidationError] = {}
    branch_head: str | None = None
    if not skip_branch_check and rows:
        branch_head = branch_commit(repo_root, default_branch)
    reachable: dict[str, bool] = {}
    for tag in tags:
        row = rows.get(tag)
        if row is None:
            out[tag] = _missing(repo_root, tag)
            continue
        _ref, kind, sha, peeled_kind, peeled, tagger, email, tag_date, commit_date = row
        if kind == "tag" and peeled_kind != "commit":
            try:
                out[tag] = _tag_source_gitpython(repo_root, tag, default_branch=default_branch,
                                                 allow_lightweight=allow_lightweight,
                                                 skip_branch_check=skip_branch_check)
            except ValidationError as exc:
                out[tag] = exc
            continue
        annotated = kind == "tag"
        commit = peeled if annotated else sha
        if not annotated and not allow_lightweight:
            out[tag] = _lightweight(tag, commit)
            continue
        if not skip_branch_check:
            if branch_head is None:
                out[tag] = _no_branch(repo_root, default_branch)
                continue
            if commit not in reachable:
                reachable[commit] = _is_ancestor(repo_root, commit, branch_head)
            if not reachable[commit]:
                out[tag] = _off_branch(tag, commit, default_branch)
                continue
        if annotated:
            out[tag] = SourceRef(tag=tag, commit=commit, annotated=True, tagger=tagger,
                                 tagger_email=email, date=tag_date)
        else:
            out[tag] = SourceRef(tag=tag, commit=commit, annotated=False, date=_commit_date(repo_root, commit)
                                 if not commit_date else commit_date)
    return out


def _commit_date(repo_root: Path, commit: str) -> str:
    proc = _git(repo_root, "show", "-s", "--format=%cI", commit)
    return proc.stdout.strip()


def tag_source(repo_root: Path, tag: str, *, default_branch: str = "main",
               allow_lightweight: bool = False, skip_branch_check: bool = False) -> SourceRef:
    """Check a tag and return the commit it deploys (see tag_sources)."""
    found = tag_sources(repo_root, [tag], default_branch=default_branch, allow_lightweight=allow_lightweight,
                        skip_branch_check=skip_branch_check)[tag]
    if isinstance(found, ValidationError):
        raise found
    return found


def _branch_ref(repo, branch: str):
    for name in (f"refs/heads/{branch}", f"refs/remotes/origin/{branch}"):
        try:
            return repo.commit(name)
        except Exception:  # gitpython raises several types for a missing ref
            continue
    return None


def _tag_source_gitpython(repo_root: Path, tag: str, *, default_branch: str = "main",
                          allow_lightweight: bool = False, skip_branch_check: bool = False) -> SourceRef:
    """The same checks through gitpython, which peels a tag of a tag down to its commit."""
    repo = _open(repo_root)
    try:
        ref = repo.tags[tag]
    except IndexError:
        raise _missing(repo_root, tag) from None
    annotated = ref.tag is not None
    if not annotated and not allow_lightweight:
        raise _lightweight(tag, ref.commit.hexsha)
    commit = ref.commit
    if not skip_branch_check:
        branch_head = _branch_ref(repo, default_branch)
        if branch_head is None:
            raise _no_branch(repo_root, default_branch)
        if not repo.is_ancestor(commit, branch_head):
            raise _off_branch(tag, commit.hexsha, default_branch)
    if annotated:
        tag_object = ref.tag
        tagger = tag_object.tagger
        from git.objects.util import from_timestamp

        when = from_timestamp(tag_object.tagged_date, tag_object.tagger_tz_offset).isoformat()
        return SourceRef(tag=tag, commit=commit.hexsha, annotated=True,
                         tagger=tagger.name or "" if tagger else "",
                         tagger_email=tagger.email or "" if tagger else "", date=when)
    return SourceRef(tag=tag, commit=commit.hexsha, annotated=False,
                     date=commit.committed_datetime.isoformat())


def _git(repo_root: Path, *args: str) -> subprocess.CompletedProcess:
    # The ceiling keeps git from using a repo above the infra repo when this one is not a git repo.
    env = {**os.environ, "GIT_CEILING_DIRECTORIES": str(Path(repo_root).resolve().parent)}
    return subprocess.run(["git", *args], cwd=repo_root, capture_output=True, text=True, env=env)


def tag_commit(repo_root: Path, tag: str) -> str | None:
    """The commit a tag points at, or None when there is no such tag (git subprocess, no gitpython).

    No checks on the tag itself (annotated, on the default branch): that is `tag_source`'s job."""
    proc = _git(repo_root, "rev-parse", "--verify", "--quiet", f"refs/tags/{tag}^{{commit}}")
    return proc.stdout.strip() if proc.returncode == 0 and proc.stdout.strip() else None


def committed_file(repo_root: Path, commit: str, path: str) -> str | None:
    """The text of `path` as committed at `commit`; None when the commit has no such file."""
    proc = _git(repo_root, "show", f"{commit}:{path}")
    return proc.stdout if proc.returncode == 0 else None


def existing_paths(repo_root: Path, commit: str, paths: Sequence[str]) -> list[str]:
    """Which of the top-level `paths` the commit's tree holds."""
    proc = _git(repo_root, "ls-tree", "--name-only", commit, "--", *paths)
    if proc.returncode != 0:
        raise TfdeployError(f"git ls-tree {commit[:12]} failed: {proc.stderr.strip()}")
    return proc.stdout.splitlines()


def worktree_source(repo_root: Path, tag: str) -> SourceRef:
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo_root, capture_output=True, text=True)
    commit = head.stdout.strip() if head.returncode == 0 else "0" * 40
    return SourceRef(tag=tag, commit=commit, annotated=False, worktree=True)


# Terraform's local state and workspace selection: a tagged tree carrying them would steer where
# state goes (`.terraform/environment` selects a workspace, so state lands under `env:/<name>/`)
# or hand Terraform a stale state. They never come from the repo.
_LOCAL_STATE_DIRS = (".terraform", "terraform.tfstate.d")
ENVS_DIR = "envs"


def is_local_terraform_state(rel: str) -> bool:
    """Is this repo-relative path Terraform's local state or data dir? (pure)"""
    parts = PurePosixPath(rel).parts
    if not parts:
        return False
    name = parts[-1]
    return (any(part in _LOCAL_STATE_DIRS for part in parts)
            or name.endswith(".tfstate") or ".tfstate." in name)


def link_problem(rel: str, target: str, hard: bool = False) -> str | None:
    """Why a link in the tree may not be exported, or None (pure).

    Any link under envs/ is refused (see model.envs.refuse_symlinks); elsewhere a link must stay
    inside the tree, its target resolved against the link's own directory (a hard link's against
    the root)."""
    kind = "hard link" if hard else "symlink"
    if PurePosixPath(rel).parts[:1] == (ENVS_DIR,):
        return (f"{rel} is a {kind} (to {target!r}); files under {ENVS_DIR}/ must be regular files in "
                "the repo: commit the file itself")
    base = "" if hard else posixpath.dirname(rel)
    resolved = posixpath.normpath(posixpath.join(base, target))
    if target.startswith("/") or resolved == ".." or resolved.startswith("../"):
        return (f"{rel} is a {kind} to {target!r}, outside the repo; commit the file itself "
                "instead of a link")
    return None


def _announce_ignored(ignored: list[str], what: str) -> None:
    if ignored:
        shown = ", ".join(ignored[:10]) + (f" (+{len(ignored) - 10} more)" if len(ignored) > 10 else "")
        print(f"tfdeploy: ignored from {what}: {shown} (Terraform's local state and workspace "
              "never come from the repo)", file=sys.stderr)


# A commit's archive never changes, and a fleet exports the same commit into every cell's work
# dir: one `git archive` per commit per process, kept in memory (small trees; 8 entries at most).
_ARCHIVES: dict[tuple[str, str, tuple[str, ...]], bytes] = {}
_ARCHIVES_LOCK = threading.Lock()
_FULL_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


def _archive(repo_root: Path, commit: str, paths: tuple[str, ...]) -> bytes:
    key = (str(Path(repo_root).resolve()), commit, paths)
    with _ARCHIVES_LOCK:
        found = _ARCHIVES.get(key)
    if found is not None:
        return found
    proc = subprocess.run(["git", "archive", "--format=tar", commit, "--", *paths], cwd=repo_root,
                          capture_output=True)
    if proc.returncode != 0:
        raise TfdeployError(f"git archive {commit[:12]} failed: {proc.stderr.decode().strip()}")
    if not _FULL_SHA.fullmatch(commit):  # a ref name can move: only a full sha is kept
        return proc.stdout
    with _ARCHIVES_LOCK:
        if len(_ARCHIVES) >= 8:
            _ARCHIVES.pop(next(iter(_ARCHIVES)))
        _ARCHIVES[key] = proc.stdout
    return proc.stdout


def export_commit(repo_root: Path, commit: str, dest: Path, paths: Sequence[str] = ()) -> list[str]:
    """Write the commit's tree (or only `paths` of it) into `dest` (which must exist and be empty).

    Returns the paths left out as Terraform local state (announced once on stderr). Refuses,
    before anything is written, a link under envs/ or a link leaving the tree.
    """
    ignored: list[str] = []
    with tarfile.open(fileobj=io.BytesIO(_archive(repo_root, commit, tuple(paths)))) as archive:
        members = []
        for member in archive.getmembers():
            rel = member.name.rstrip("/")
            if is_local_terraform_state(rel):
                ignored += [rel] if not member.isdir() else []
                continue
            if member.issym() or member.islnk():
                problem = link_problem(rel, member.linkname, hard=member.islnk())
                if problem:
                    raise ValidationError(f"the tagged tree at {commit[:12]}: {problem}")
            members.append(member)
        try:
            if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4: a second guard on links/paths
                archive.extractall(dest, members=members, filter="data")
            else:
                archive.extractall(dest, members=members)
        except tarfile.TarError as exc:  # FilterError and friends: one line, not a traceback
            raise ValidationError(f"the tagged tree at {commit[:12]} cannot be exported safely: {exc}") from None
    _announce_ignored(ignored, "the tagged tree")
    return ignored


def export_worktree(repo_root: Path, dest: Path) -> list[str]:
    """Copy tracked and untracked-but-not-ignored files of the working tree into `dest`.

    Same rules as export_commit: local Terraform state is left out, links are kept as links and
    refused under envs/ or when they leave the tree (never followed to copy an outside file).
    """
    proc = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                          cwd=repo_root, capture_output=True)
    if proc.returncode != 0:
        raise TfdeployError(f"git ls-files failed: {proc.stderr.decode().strip()}")
    import shutil

    ignored: list[str] = []
    for rel in filter(None, proc.stdout.decode().split("\0")):
        src = repo_root / rel
        if is_local_terraform_state(rel):
            ignored.append(rel)
            continue
        if src.is_symlink():
            problem = link_problem(rel, os.readlink(src))
            if problem:
                raise ValidationError(f"the working tree: {problem}")
        elif not src.is_file():  # deleted in the working tree
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target, follow_symlinks=False)
    _announce_ignored(ignored, "the working tree")
    return ignored
