"""The `tfdeploy` console script: signal handling first, then the CLI.

The script imports only this module before calling `main`, so the handler is in place before
click and the commands are imported (~100 ms): a Ctrl-C or a CI cancel at any moment after
Python itself started is one line and exit 128+n, never a silent death by signal or a traceback.
"""

from __future__ import annotations

import sys


def main() -> None:
    from .engine.supervise import Interrupted, install_for_process, ignore_while_exiting

    install_for_process()
    try:
        from .cli import cli

        cli(prog_name="tfdeploy")
    except Interrupted as exc:  # outside a command's own handling (start-up, printing the result)
        print(f"tfdeploy: error: {exc}", file=sys.stderr, flush=True)
        sys.exit(exc.exit_code)
    finally:
        # Python puts the default handlers back while it shuts down; a signal then would kill
        # the process after it already said and decided how it ends.
        ignore_while_exiting()
