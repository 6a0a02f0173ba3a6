"""Work started on a thread now, its result asked for later (shared by the engine and the fleet).

Used to overlap a few S3 round trips with Terraform: the state checks beside `terraform init`
(engine/preflight.py) and the ledger reads during a run (fleet/ledger.py `prepare`).
"""

from __future__ import annotations

import threading
from typing import Any, Callable, TypeVar

T = TypeVar("T")


def started(call: Callable[[], T], name: str) -> Callable[[], T]:
    """`call` running on a thread; the function returned waits for it and returns its result or
    raises its exception. A daemon thread: an S3 call stuck on a dead endpoint must not hold the
    exit of a process that was told to stop."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = call()
        except BaseException as exc:  # handed to the thread that asks for the result
            box["error"] = exc

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()

    def result() -> T:
        thread.join()
        if "error" in box:
            raise box["error"]
        return box["value"]

    return result
