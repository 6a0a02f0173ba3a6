"""What must be known about a cell's state before Terraform reads or writes it, asked beside
`terraform init`.

Two questions, both answered from the state bucket: is this run in the cell's lock mode
(lockmode.py; refused otherwise), and does the state hold AWS resources the code no longer has
(provider.py; then the provider is added and init runs again)? Answering them costs botocore's
start (~0.12 s of CPU) and a few S3 requests, while `terraform init -reconfigure` needs neither
answer and never locks, migrates or writes a state. So they run side by side, and nothing after
init (plan, apply, destroy, refresh) starts before the answers are in: a refused run has run init
and nothing else. One GET of the state object serves both questions.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import IO, Any, Callable, TypeVar

from ..background import started
from .lockmode import ensure_mode
from .provider import peek_state

T = TypeVar("T")


@dataclass(frozen=True)
class Answers:
    needs_provider: bool  # the state holds AWS resources and the work dir has no provider for them


def ask(session: Any) -> Answers:
    """Both questions (raises the lock-mode refusal, or why S3 could not tell). The state is read
    only when the code has no AWS resources (else the provider is there already), and then at
    the same time as the lock-mode record: one round trip for both."""
    d = session.deployment
    env, endpoint = session.terraform.env, session.sandbox_endpoint
    if session.workdir.aws_provider:
        ensure_mode(d.backend, cell=d.tag.cell, tag=d.tag.name, environ=env, endpoint=endpoint)
        return Answers(needs_provider=False)
    peeked = started(lambda: peek_state(d.backend, env, endpoint), f"peek-{d.tag.cell}")
    ensure_mode(d.backend, cell=d.tag.cell, tag=d.tag.name, environ=env, endpoint=endpoint,
                state_exists=lambda: peeked().exists)
    return Answers(needs_provider=peeked().has_aws)


def beside(session: Any, work: Callable[[], T]) -> tuple[T, Answers]:
    """Run `work` (terraform init) while `ask` runs on a thread; both results once both are done.

    A refusal (or a failure to ask) wins over whatever else `work` did or raised: it is the reason
    the run must stop. A signal wins over both, and the thread is not waited for then. What
    Terraform prints meanwhile is held until the answers are in, and dropped with a refusal: a
    refused run must not end with "Terraform has been successfully initialized!" above its
    reason (the answers usually come first, so init's output is held a fraction of a second)."""
    from .supervise import Interrupted

    terraform = session.terraform
    held = HeldOutput(terraform.sink), HeldOutput(terraform.err_sink)
    terraform.sink, terraform.err_sink = held

    def asked() -> Answers:
        try:
            answers = ask(session)
        except BaseException:
            for output in held:
                output.drop()
            raise
        for output in held:
            output.release()
        return answers

    try:
        answers = started(asked, f"preflight-{session.tag.cell}")
        try:
            done = work()
        except (KeyboardInterrupt, SystemExit, Interrupted):
            raise
        except BaseException:
            try:
                answers()
            except BaseException as refusal:
                raise refusal from None
            raise
        return done, answers()
    finally:
        terraform.sink, terraform.err_sink = held[0].target, held[1].target
        for output in held:  # a signal came first: what Terraform said is shown, not lost
            output.release()


class HeldOutput:
    """A text stream that holds what is written until `release` (then writes it, and what comes
    after, to `target`) or `drop` (then discards it, and what comes after). Thread-safe: Terraform's
    output is written by the thread running it, the answer comes from another."""

    def __init__(self, target: IO[str]):
        self.target = target
        self._held: list[str] | None = []  # None once released
        self._dropped = False
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        with self._lock:
            if self._dropped:
                return len(text)
            if self._held is not None:
                self._held.append(text)
                return len(text)
            return self.target.write(text)

    def flush(self) -> None:
        with self._lock:
            if self._held is None and not self._dropped:
                self.target.flush()

    def release(self) -> None:
        with self._lock:
            if self._held is None or self._dropped:
                return
            text, self._held = "".join(self._held), None
            if text:
                self.target.write(text)
                self.target.flush()

    def drop(self) -> None:
        with self._lock:
            self._dropped, self._held = True, None

