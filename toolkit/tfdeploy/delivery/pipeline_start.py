"""Start an env's pipeline pinned to one published source: the S3 object version of ONE tag.

Why: every tag of an env is published to the same object key. An S3 source action takes the
newest object version when the execution's Source stage runs, so with several tags pushed at once
(a multi-Region release) an execution started by an S3 event could deploy another tag's code.
`publish` therefore starts each execution itself, naming the exact object version it uploaded
(`sourceRevisions`, S3_OBJECT_VERSION_ID) and the tag (pipeline variable TFDEPLOY_TAG, which
modules/pipeline hands every CodeBuild action as TFDEPLOY_EXPECTED_TAG; `tfdeploy ci` refuses a
source whose tag differs). The pipeline must not also be started by S3 events or polling.
"""

from __future__ import annotations

from typing import Any, Mapping

from ..errors import TfdeployError
from ..model.settings import Settings

# modules/pipeline: the S3 source action of the Source stage, and the pipeline-level variable.
SOURCE_ACTION = "SourceBundle"
TAG_VARIABLE = "TFDEPLOY_TAG"


def pipeline_name(settings: Settings, env: str) -> str:
    """`<pipeline_name_prefix>-<env>`, as modules/pipeline names it (pure)."""
    return f"{settings.pipeline_name_prefix}-{env}"


def start_request(pipeline: str, version_id: str, tag: str) -> dict[str, Any]:
    """The StartPipelineExecution request that deploys exactly `tag` at `version_id` (pure).

    No clientRequestToken: publishing a tag again must start a new execution (a re-deploy after
    a failed one); a duplicate execution of the same version only plans no changes.
    """
    return {
        "name": pipeline,
        "sourceRevisions": [{"actionName": SOURCE_ACTION, "revisionType": "S3_OBJECT_VERSION_ID",
                             "revisionValue": version_id}],
        "variables": [{"name": TAG_VARIABLE, "value": tag}],
    }


def codepipeline_client(region: str, environ: Mapping[str, str]) -> Any:
    from ..aws.clients import client
    from .publish import sandbox_endpoint

    return client("codepipeline", region, environ, endpoint=sandbox_endpoint(environ))


def start_execution(codepipeline: Any, request: Mapping[str, Any], tag: str) -> str:
    """Start the execution; its id. Failures are one line saying what to run next."""
    from botocore.exceptions import BotoCoreError, ClientError

    name = request["name"]
    again = f"fix it, then run: tfdeploy publish --tag {tag} (starts the pipeline for the upload)"
    try:
        response = codepipeline.start_pipeline_execution(**request)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "?"))
        if code == "PipelineNotFoundException":
            raise TfdeployError(f"pipeline {name} does not exist: create the env's pipeline "
                                "(modules/pipeline), or set pipeline_name_prefix to its name prefix; "
                                f"then run: tfdeploy publish --tag {tag}") from None
        raise TfdeployError(f"cannot start pipeline {name}: {code}: "
                            f"{error.get('Message', '')}; {again}") from None
    except BotoCoreError as exc:
        raise TfdeployError(f"cannot start pipeline {name}: {exc}; {again}") from None
    return str(response["pipelineExecutionId"])
