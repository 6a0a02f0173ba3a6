"""The `tfdeploy` console script: signal handling first, then the CLI.

The script imports only this module before calling `main`, so the handler is in place before
click and the commands are imported (~100 ms): a Ctrl-C or a CI cancel at any moment after
Python itself started is one line and exit 128+n, never a silent death by signal or a traceback.
"""

from __future__ import annotations

import sys
from typing import NoReturn


def main() -> None:
    from .engine.supervise import Interrupted, install_for_process, ignore_while_exiting

    install_for_process()
    code: int | str | None = 0
    try:
        from .cli import cli

        cli(prog_name="tfdeploy")
    except Interrupted as exc:  # outside a command's own handling (start-up, printing the result)
        print(f"tfdeploy: error: {exc}", file=sys.stderr, flush=True)
        code = exc.exit_code
    except SystemExit as exc:  # how click ends every command
        code = exc.code
    finally:
        # Python puts the default handlers back while it shuts down; a signal then would kill
        # the process after it already said and decided how it ends.
        ignore_while_exiting()
    leave(code)


def leave(code: int | str | None) -> NoReturn:
    """End the process with `code` (as `sys.exit` takes it) without Python's teardown when nothing
    else runs.

    Tearing down the interpreter frees every object a command loaded (botocore's service models
    above all): 40-60 ms per command, after the command already said and decided how it ends, and
    paid by every tag of a loop. So: exit handlers run, output is flushed, then the process ends
    at once. While a thread that is not a daemon still runs, the normal exit waits for it instead.
    """
    import os
    import threading

    if isinstance(code, str):
        print(code, file=sys.stderr)
        code = 1
    code = 0 if code is None else int(code)
    ignore = threading.main_thread(), threading.current_thread()
    if any(t.is_alive() and not t.daemon and t not in ignore for t in threading.enumerate()):
        sys.exit(code)
    import atexit

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (`| head`), a closed stream: nothing to save
            pass
    os._exit(code)
