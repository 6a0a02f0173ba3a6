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


_WHOLE_EVENT = ('pass the whole EventBridge CodeCommit event: {"detail": {"event": "referenceCreated", '
                '"referenceType": "tag", "referenceName": "<tag>", ...}, ...}')


def _detail_field(detail: Mapping[str, Any], name: str, meaning: str) -> str:
    """detail.<name> as a non-empty string, or one line naming what is missing."""
    value = detail.get(name)
    if value is None:
        raise ValidationError(f"event has no detail.{name} ({meaning}); {_WHOLE_EVENT}")
    if not isinstance(value, str) or not value:
        raise ValidationError(f"event detail.{name} is {show(str(value))}, not {meaning}; {_WHOLE_EVENT}")
    return value


def check_configured_env(env: str, environments: tuple[str, ...]) -> None:
    """Refuse an env the repo does not deploy to (pure): its pattern would start nothing useful."""
    if env not in environments:
        raise ValidationError(f"--env {env} is not one of the configured environments "
                              f"({', '.join(environments)}); add it to environments in [tool.tfdeploy] "
                              "or pass one of those")


def tag_from_event(event: Mapping[str, Any], extra_regions: frozenset[str] = frozenset()) -> str:
    """The validated tag name a CodeCommit tag-creation event carries.

    Every malformed event is one line naming the first field that is missing or wrong.
    """
    if not isinstance(event, Mapping):
        raise ValidationError(f"event must be a JSON object; {_WHOLE_EVENT}")
    detail = event.get("detail")
    if not isinstance(detail, Mapping):
        raise ValidationError(f"event has no detail object; {_WHOLE_EVENT}")
    if event.get("source", SOURCE) != SOURCE or event.get("detail-type", DETAIL_TYPE) != DETAIL_TYPE:
        raise ValidationError(
            f"event is {show(str(event.get('source')))} / {show(str(event.get('detail-type')))}, "
            f"not a {DETAIL_TYPE} event from {SOURCE}"
        )
    kind = _detail_field(detail, "event", "the change, e.g. 'referenceCreated'")
    ref_type = _detail_field(detail, "referenceType", "'tag' or 'branch'")
    if ref_type != "tag" or kind != "referenceCreated":
        raise ValidationError(
            f"event is {show(kind)} of a {show(ref_type)}; only the creation of a tag "
            "(referenceCreated, referenceType tag) is deployed"
        )
    name = _detail_field(detail, "referenceName", "the tag's name")
    try:
        parse_tag(name, extra_regions)
    except TagError as exc:
        raise TagError(f"event tag: {exc}") from None
    return name
