"""`tfdeploy` with its AWS side patched out, for benchmarks/fanout.py's decomposition rows only.

What is left is the engine: the CLI, git, the work dirs, the schedule and threads, Terraform's
processes and their output. Patched out: botocore's import and clients, the lock-mode check and
state probe beside `terraform init` (engine/preflight.py) and the ledger record of every apply
(fleet/recording.py). Side by side with the real command, the difference is what those S3
requests and botocore cost on this machine; the rest is what the engine costs.

Never a way to run tfdeploy: it skips the checks that keep a state safe. It lives here, not in
the package, so no command line, setting or environment variable of tfdeploy can turn them off.
Any AWS client still asked for fails the cell (and so the benchmark), so a new AWS call in the
engine cannot hide in these rows.

    python benchmarks/engine_only.py apply --tag 'dev_*/research/1.0' --auto-approve
"""

from __future__ import annotations

import sys
from typing import Any


def _replace(owner: Any, name: str, value: Any) -> None:
    """Replace what tfdeploy calls `name`; an error when it no longer has one (renamed or moved):
    a patch that replaced nothing would let these rows measure the AWS side after all."""
    if not hasattr(owner, name):
        raise SystemExit(f"engine_only.py: {owner.__name__}.{name} is gone; patch what replaced it")
    setattr(owner, name, value)


def patch() -> None:
    import tfdeploy.aws.clients as clients
    import tfdeploy.engine.preflight as preflight
    import tfdeploy.fleet.recording as recording

    def no_client(service: str, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"engine-only run asked for an AWS {service} client: patch it out in "
                           "benchmarks/engine_only.py, or these rows measure AWS work too")

    def keep_session(self: Any, session: Any) -> None:
        self._session = session  # without `prepare`: the ledger reads

    _replace(clients, "client", no_client)
    _replace(clients, "prewarm", lambda *args, **kwargs: None)
    _replace(preflight, "ask", lambda session: preflight.Answers(needs_provider=False))
    _replace(recording.Recording, "session", recording.Recording.session.setter(keep_session))
    _replace(recording, "write", lambda *args, **kwargs: None)


if __name__ == "__main__":
    patch()
    from tfdeploy.entry import main

    sys.argv[0] = "tfdeploy"
    main()
