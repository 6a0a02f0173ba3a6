"""Telling people when something went wrong: one SNS message per event to `notify_topic_arn`.

A notification is a side effect of a command that has already succeeded or failed on its own, so it
never changes that outcome: a message that cannot be sent is one warning line on stderr, and the
command exits as it would have. Subscribers (mail, chat, a queue) are the topic owner's business.

The message is JSON: event, tag, cell, result, who, when, a hint where the log is, the tfdeploy
version, plus whatever the caller adds (the error line, the state address, drifted resources).
"""

from __future__ import annotations

import getpass
import json
import socket
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from .. import __version__

EVENTS = ("apply-failed", "promotion-refused", "drift-detected", "fleet-failed")
_SUBJECT_MAX = 100  # SNS: at most 100 printable ASCII characters, no line breaks


def subject_line(text: str) -> str:
    """An SNS-safe subject (pure): printable ASCII, one line, at most 100 characters."""
    cleaned = "".join(c if c.isascii() and c.isprintable() else " " for c in text)
    cleaned = " ".join(cleaned.split())
    return cleaned if len(cleaned) <= _SUBJECT_MAX else cleaned[: _SUBJECT_MAX - 3] + "..."


def _who(environ: Mapping[str, str]) -> str:
    # In CodeBuild the initiator (codepipeline/<name>, or the IAM user) says more than the container's user.
    if environ.get("CODEBUILD_INITIATOR"):
        return environ["CODEBUILD_INITIATOR"]
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def _log_hint(payload: Mapping[str, Any], environ: Mapping[str, str]) -> str:
    build = environ.get("CODEBUILD_BUILD_ID")
    if build:
        return f"CodeBuild build {build}" + (f": {environ['CODEBUILD_BUILD_URL']}" if environ.get("CODEBUILD_BUILD_URL") else "")
    command = payload.get("command") or "tfdeploy"
    return f"the output of `{command}` on {socket.gethostname()}"


def build_message(event: str, payload: Mapping[str, Any], environ: Mapping[str, str],
                  now: datetime | None = None) -> dict[str, Any]:
    """The JSON document published for `event` (pure but for the host and user names).

    The caller's payload wins over the defaults (e.g. a `who` from STS)."""
    if event not in EVENTS:
        raise ValueError(f"unknown notification event {event!r}; one of {', '.join(EVENTS)}")
    when = (now or datetime.now().astimezone()).isoformat(timespec="seconds")
    defaults = {"event": event, "tag": None, "cell": None, "result": None, "who": _who(environ),
                "when": when, "log": _log_hint(payload, environ), "tfdeploy_version": __version__}
    return {**defaults, **payload, "event": event}


def notify(event: str, subject: str, payload: dict, settings: Any, environ: Mapping[str, str]) -> bool:
    """Publish `event` to the settings' `notify_topic_arn`; True when sent.

    False when no topic is set, or when publishing failed (then one warning line on stderr):
    never raises for a failed send, so the command's own result stands."""
    topic = getattr(settings, "notify_topic_arn", None)
    if not topic:
        return False
    message = build_message(event, payload, environ)
    try:
        from ..aws.clients import client
        from ..aws.sandbox import active_endpoint

        region = topic.split(":")[3]
        sns = client("sns", region, environ, active_endpoint(environ))
        extra: dict[str, str] = {}
        if topic.endswith(".fifo"):  # FIFO topics need a group (and a dedup id unless content-based)
            extra = {"MessageGroupId": str(message.get("cell") or "tfdeploy"),
                     "MessageDeduplicationId": f"{event}-{message['when']}-{message.get('cell')}"[:128]}
        sns.publish(TopicArn=topic, Subject=subject_line(subject), Message=json.dumps(message, indent=2), **extra)
        return True
    except Exception as exc:  # noqa: BLE001 - any failure to notify is reported, never fatal
        reason = " ".join(str(exc).split())[:300] or type(exc).__name__
        print(f"tfdeploy: warning: could not send the {event} notification to {topic}: {reason}; "
              "the command's result is unchanged (check the topic and its policy)", file=sys.stderr)
        return False


def first_line(text: str) -> str:
    """The first non-empty line of an error (pure): what a reader of the message needs first."""
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def fleet_failed(action: str, tag_args: Sequence[str], results: Sequence[Any], log_dir: str) -> tuple[str, dict]:
    """Subject and payload of the one `fleet-failed` message of a fan-out run (pure): every cell
    that did not succeed, with its error's first line and its log."""
    failed = [r for r in results if not r.ok]
    command = f"tfdeploy {action} " + " ".join(f"--tag {a}" for a in tag_args)
    cells = [{"cell": r.cell, "tag": r.tag, "result": r.result, "error": first_line(r.error), "log": r.log}
             for r in failed]
    subject = f"tfdeploy: {action} failed in {len(failed)} of {len(results)} cells: " + ", ".join(r.cell for r in failed)
    return subject, {"action": action, "result": "failed", "failed": len(failed), "total": len(results),
                     "cells": cells, "logs": log_dir, "command": command}


def run_failed(action: str, tag_args: Sequence[str], results: Sequence[Any], log_dir: str) -> tuple[str, str, dict] | None:
    """The one message of an apply or destroy run that did not succeed (pure): event, subject and
    payload; None when there is nothing to say. A single tag and a fan-out are both a run of
    cells, so both come here: an apply of one cell says that cell's `apply-failed` (its error,
    its state), unless the promotion gate refused it and already sent `promotion-refused`; more
    cells (or a destroy) say `fleet-failed`, every cell that did not succeed in one message. A
    destroy someone declined is no failure to report."""
    if action not in ("apply", "destroy") or all(r.ok or r.cause == "declined" for r in results):
        return None
    if action == "apply" and len(results) == 1:
        (cell,) = results
        if cell.cause == "promotion-refused":
            return None
        result = "interrupted" if cell.result == "interrupted" else "refused" if cell.cause == "state-locked" else "failed"
        return ("apply-failed", f"tfdeploy: apply {result}: {cell.tag}",
                {"tag": cell.tag, "cell": cell.cell, "result": result, "error": cell.error,
                 "state": cell.state or None, "command": f"tfdeploy apply --tag {cell.tag}"})
    return ("fleet-failed", *fleet_failed(action, tag_args, results, log_dir))
