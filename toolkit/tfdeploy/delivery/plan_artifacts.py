"""Each cell's plan, carried from a release's plan batch to its apply batch.

A release's plan stage build hands every cell build of its batch one prefix,
`TFDEPLOY_PLAN_ARTIFACTS=s3://<artifact bucket>/tfdeploy/releases/<execution>/plan/` (the execution
is the pipeline's: the apply stage of the same execution finds the same prefix). The plan build of
a cell saves its plan work dir (the code, the saved plan, `tfdeploy.plan.json` with its sha256;
the same files as the one-cell plan artifact, buildspec.py: PLAN_ARTIFACT_FILES) as
`<prefix><identifier>.zip`, and its counts as `<prefix><identifier>.json` for the approval's plan
matrix. The apply build of that cell fetches exactly `<prefix><identifier>.zip` into its own
source dir and applies it as `apply` applies a saved plan: `tfdeploy ci apply` -> `apply --tag`,
whose checks (engine/planfile.py, through fleet/applycell.py) refuse a plan made for another cell,
another commit or another state.

Why not CodeBuild's own artifacts: a batch build's per-build artifact layout under
`combineArtifacts: false` is CodeBuild's choice, and secondary sources (how a build would get
another build's artifact) are limited to 12 per build, far below a release's cells. Here each cell's
artifact has a key tfdeploy chose, written and read by the cell's own build with the deploy role's
existing rights on the pipeline's artifact bucket.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any, Mapping

from ..errors import TfdeployError, ValidationError

PREFIX_VAR = "TFDEPLOY_PLAN_ARTIFACTS"
ARTIFACT_BUCKET_VAR = "TFDEPLOY_ARTIFACT_BUCKET"
FETCHED_DIR = ".tfdeploy/ci/plan-artifact"


def prefix(bucket: str, execution_id: str) -> str:
    return f"s3://{bucket}/tfdeploy/releases/{execution_id}/plan/"


def split(uri: str) -> tuple[str, str]:
    """`s3://bucket/key` -> (bucket, key)."""
    if not uri.startswith("s3://") or "/" not in uri[5:]:
        raise ValidationError(f"{PREFIX_VAR} must be s3://BUCKET/PREFIX/, not {uri!r}")
    bucket, key = uri[5:].split("/", 1)
    return bucket, key


def cell_uri(environ: Mapping[str, str], identifier: str, ext: str = "zip") -> str | None:
    base = environ.get(PREFIX_VAR)
    return f"{base}{identifier}.{ext}" if base else None


def _s3(environ: Mapping[str, str]) -> Any:
    from .publish import s3_client

    return s3_client(environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or "us-east-1", environ)


def pack(plan_dir: Path) -> bytes:
    """The plan work dirs under `plan_dir/work/`, without providers (apply's init re-installs them)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted((plan_dir / "work").rglob("*")):
            rel = path.relative_to(plan_dir)
            if len(rel.parts) > 2 and rel.parts[2] == ".terraform":
                continue
            if path.is_file() and not path.is_symlink():
                archive.write(path, str(rel))
    return buffer.getvalue()


def save(environ: Mapping[str, str], identifier: str, plan_dir: Path, result: Mapping[str, Any]) -> str:
    """Upload this cell's plan and its counts; the plan's URI."""
    uri = cell_uri(environ, identifier)
    assert uri is not None
    bucket, key = split(uri)
    s3 = _s3(environ)
    try:
        s3.put_object(Bucket=bucket, Key=key, Body=pack(plan_dir))
        s3.put_object(Bucket=bucket, Key=key[:-len("zip")] + "json", Body=json.dumps(dict(result)).encode())
    except Exception as exc:  # botocore's errors: one line, the build fails
        raise TfdeployError(f"cannot save the plan artifact {uri}: {exc}") from None
    return uri


def fetch(environ: Mapping[str, str], identifier: str, dest: Path) -> str:
    """Unpack this cell's plan artifact into `dest` (emptied first); its URI."""
    import shutil

    uri = cell_uri(environ, identifier)
    assert uri is not None
    bucket, key = split(uri)
    try:
        body = _s3(environ).get_object(Bucket=bucket, Key=key)["Body"].read()
    except Exception as exc:
        raise TfdeployError(f"no plan artifact for this cell at {uri} ({exc}); the apply batch needs the plan "
                            "batch of the same execution") from None
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        for name in archive.namelist():
            target = (dest / name).resolve()
            if not str(target).startswith(str(dest.resolve()) + "/"):
                raise ValidationError(f"the plan artifact {uri} holds a path outside its dir ({name!r}); refusing it")
        archive.extractall(dest)
    return uri


def read_result(s3: Any, environ: Mapping[str, str], identifier: str) -> dict[str, Any]:
    """The counts a cell's plan build saved ({} when it saved none: it failed before)."""
    uri = cell_uri(environ, identifier, "json")
    if not uri:
        return {}
    bucket, key = split(uri)
    try:
        return dict(json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read()))
    except Exception:
        return {}
