"""The code a deployment runs: the tagged commit, checked and exported (gitpython + git archive).

Guards, in order: the tag exists; it is annotated (a lightweight tag has no author or date and is
easy to move by accident); its commit is reachable from the default branch (so only reviewed,
merged code is deployed — this also catches a tag left on a commit that was later amended).
"""

from __future__ import annotations

import io
import subprocess
import tarfile
from dataclasses import asdict, dataclass
from pathlib import Path

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
    import git  # gitpython: only commands that touch git objects pay its import

    try:
        return git.Repo(repo_root)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise ValidationError(f"{repo_root} is not a git repository; pass --repo PATH") from None


def _branch_ref(repo, branch: str):
    for name in (f"refs/heads/{branch}", f"refs/remotes/origin/{branch}"):
        try:
            return repo.commit(name)
        except Exception:  # gitpython raises several types for a missing ref
            continue
    return None


def tag_source(repo_root: Path, tag: str, *, default_branch: str = "main",
               allow_lightweight: bool = False, skip_branch_check: bool = False) -> SourceRef:
    """Check a tag and return the commit it deploys."""
    repo = _open(repo_root)
    try:
        ref = repo.tags[tag]
    except IndexError:
        raise ValidationError(
            f"tag {tag!r} does not exist in {repo_root}; create it with "
            f"git tag -a {tag} -m '...' (or git fetch --tags)"
        ) from None
    annotated = ref.tag is not None
    if not annotated and not allow_lightweight:
        raise ValidationError(
            f"tag {tag!r} is a lightweight tag; deployment tags must be annotated: "
            f"git tag -d {tag} && git tag -a {tag} {ref.commit.hexsha[:12]} -m '...' "
            "(or pass --allow-lightweight)"
        )
    commit = ref.commit
    if not skip_branch_check:
        branch_head = _branch_ref(repo, default_branch)
        if branch_head is None:
            raise ValidationError(
                f"default branch {default_branch!r} not found in {repo_root}; set default_branch in "
                "[tool.tfdeploy] or pass --skip-branch-check"
            )
        if not repo.is_ancestor(commit, branch_head):
            raise ValidationError(
                f"tag {tag!r} points at {commit.hexsha[:12]}, which is not on {default_branch} "
                f"(unmerged, or the commit was amended/rebased); merge it or re-tag a commit on "
                f"{default_branch}, or pass --skip-branch-check"
            )
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


def worktree_source(repo_root: Path, tag: str) -> SourceRef:
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo_root, capture_output=True, text=True)
    commit = head.stdout.strip() if head.returncode == 0 else "0" * 40
    return SourceRef(tag=tag, commit=commit, annotated=False, worktree=True)


def export_commit(repo_root: Path, commit: str, dest: Path) -> None:
    """Write the commit's tree into `dest` (which must exist and be empty)."""
    proc = subprocess.run(["git", "archive", "--format=tar", commit], cwd=repo_root,
                          capture_output=True)
    if proc.returncode != 0:
        raise TfdeployError(f"git archive {commit[:12]} failed: {proc.stderr.decode().strip()}")
    with tarfile.open(fileobj=io.BytesIO(proc.stdout)) as archive:
        if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4: refuse links/paths outside dest
            archive.extractall(dest, filter="data")
        else:  # git archive of a commit holds only repo-relative paths
            archive.extractall(dest)


def export_worktree(repo_root: Path, dest: Path) -> None:
    """Copy tracked and untracked-but-not-ignored files of the working tree into `dest`."""
    proc = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                          cwd=repo_root, capture_output=True)
    if proc.returncode != 0:
        raise TfdeployError(f"git ls-files failed: {proc.stderr.decode().strip()}")
    import shutil

    for rel in filter(None, proc.stdout.decode().split("\0")):
        src = repo_root / rel
        if not src.is_file():  # deleted in the working tree
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)
