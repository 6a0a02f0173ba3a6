"""The EventBridge side of the pipeline trigger: which CodeCommit events start an env's source build.

A pipeline per env is started only by the *creation* of a tag named `<env>_...`; branch pushes,
tag updates and tag deletions never deploy. The Terraform module modules/pipeline uses the same
pattern; `tfdeploy events pattern --env ENV` prints it for comparison.

Event shape (CodeCommit "Repository State Change", referenceCreated):
    {"source": "aws.codecommit", "detail-type": "CodeCommit Repository State Change",
     "detail": {"event": "referenceCreated", "repositoryName": "...", "referenceType": "tag",
                "referenceName": "dev_us-east-1/research/1.0",
                "referenceFullName": "refs/tags/dev_us-east-1/research/1.0", "commitId": "..."}}
"""

from __future__ import annotations

from typing import Any, Mapping

from ..errors import TagError, ValidationError
from ..model.tags import ENV_RE, parse_tag, show

SOURCE = "aws.codecommit"
DETAIL_TYPE = "CodeCommit Repository State Change"


def event_pattern(env: str) -> dict[str, Any]:
    """The EventBridge rule pattern matching creation of `<env>_...` tags (pure)."""
    if not isinstance(env, str) or not ENV_RE.fullmatch(env):
        raise ValidationError(f"env {show(str(env))} must be 1-20 lowercase letters, digits or '-', "
                              "starting with a letter")
    return {
        "source": [SOURCE],
        "detail-type": [DETAIL_TYPE],
        "detail": {
            "event": ["referenceCreated"],
            "referenceType": ["tag"],
            # The '_' ends the env part of a tag, so prefix "dev_" cannot match "dev-x_..." tags.
            "referenceName": [{"prefix": f"{env}_"}],
        },
    }


def check_configured_env(env: str, environments: tuple[str, ...]) -> None:
    """Refuse an env the repo does not deploy to (pure): its pattern would start nothing useful."""
    if env not in environments:
        raise ValidationError(f"--env {env} is not one of the configured environments "
                              f"({', '.join(environments)}); add it to environments in [tool.tfdeploy] "
                              "or pass one of those")


def tag_from_event(event: Mapping[str, Any], extra_regions: frozenset[str] = frozenset()) -> str:
    """The validated tag name a CodeCommit tag-creation event carries."""
    if not isinstance(event, Mapping):
        raise ValidationError("event must be a JSON object (an EventBridge CodeCommit event)")
    detail = event.get("detail")
    if not isinstance(detail, Mapping):
        raise ValidationError("event has no 'detail' object; pass the whole EventBridge event")
    if event.get("source", SOURCE) != SOURCE or event.get("detail-type", DETAIL_TYPE) != DETAIL_TYPE:
        raise ValidationError(
            f"event is {show(str(event.get('source')))} / {show(str(event.get('detail-type')))}, "
            f"not a {DETAIL_TYPE} event from {SOURCE}"
        )
    if detail.get("referenceType") != "tag" or detail.get("event") != "referenceCreated":
        raise ValidationError(
            f"event is {show(str(detail.get('event')))} of a {show(str(detail.get('referenceType')))}; "
            "only the creation of a tag (referenceCreated, referenceType tag) is deployed"
        )
    name = detail.get("referenceName")
    if not isinstance(name, str):
        raise ValidationError("event detail has no referenceName string")
    try:
        parse_tag(name, extra_regions)
    except TagError as exc:
        raise TagError(f"event tag: {exc}") from None
    return name
