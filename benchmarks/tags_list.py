"""`tfdeploy tags list` on a repo with many annotated tags, next to the bare git call it wraps
and to walking the same tags with gitpython (the approach it avoids).

    python benchmarks/tags_list.py [--tags 10000] [--runs 5]

Prints medians and ratios measured side by side in one run.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from sidebyside import measure, report

ENV = {"GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@e", "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@e"}


def make_repo(root: Path, count: int) -> None:
    def git(*args: str, **kw) -> str:
        return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True,
                              env={**ENV, "PATH": "/usr/bin:/bin"}, **kw).stdout

    git("init", "-q", "-b", "main")
    (root / "f").write_text("x")
    git("add", ".")
    git("commit", "-qm", "c")
    head = git("rev-parse", "HEAD").strip()
    envs, scopes, teams = ["dev", "qa", "staging", "prod"], ["us-east-1", "eu-central-1", "global"], ["research", "risk"]
    lines = []
    for i in range(count):
        name = f"{envs[i % 4]}_{scopes[i % 3]}/{teams[i % 2]}/{i // 24}.{i % 24}"
        if i % 500 == 0:
            name = f"junk-{i}"  # malformed ones must not slow anything down
        message = f"release {name}\n"
        lines.append(f"tag {name}\nfrom {head}\ntagger b <b@e> {1700000000 + i} +0000\n"
                     f"data {len(message.encode())}\n{message}\n")
    git("fast-import", "--quiet", input="".join(lines))



def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tags", type=int, default=10000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    exe = str(Path(sys.executable).parent / "tfdeploy")
    gitpython_walk = [sys.executable, "-c",
                      "import git; r = git.Repo('.'); "
                      "[(t.name, t.tag.tagged_date if t.tag else 0, t.commit.hexsha) for t in r.tags]"]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_repo(root, args.tags)
        commands = {
            "git for-each-ref": ["git", "for-each-ref", "--sort=-creatordate", "refs/tags"],
            "tfdeploy tags list --json": [exe, "tags", "list", "--json"],
            "tfdeploy tags list": [exe, "tags", "list"],
            "gitpython walk": gitpython_walk,
        }
        samples = measure(commands, args.runs, root)
    print(f"{args.tags} annotated tags")
    print(report(samples, "git for-each-ref", "x git"))


if __name__ == "__main__":
    main()
