"""How the `tfdeploy` process ends: it skips Python's teardown (tens of ms per command, see
entry.leave) but never at the cost of an exit code, a line of output or a thread still working."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def run(code: str, *, shell_tail: str = "") -> subprocess.CompletedProcess:
    argv = [sys.executable, "-c", code]
    # Output buffered as it is by default (this machine's PYTHONUNBUFFERED would hide a lost flush).
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    if shell_tail:  # through a pipe a reader may close early
        import shlex

        return subprocess.run(f"{shlex.join(argv)} {shell_tail}", shell=True, capture_output=True, text=True,
                              timeout=60, executable="/bin/bash", env=env)
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)


@pytest.mark.parametrize("code, rc", [("None", 0), ("0", 0), ("2", 2), ("130", 130)])
def test_the_exit_code_and_all_buffered_output_are_kept(code, rc):
    done = run("from tfdeploy.entry import leave\nimport sys\nprint('x' * 1_000_000)\n"
               f"print('last line', file=sys.stderr, end='')\nleave({code})")
    assert done.returncode == rc
    assert done.stdout == "x" * 1_000_000 + "\n"
    assert done.stderr == "last line"


def test_a_message_as_the_exit_code_is_printed_and_exits_1_like_sys_exit():
    done = run("from tfdeploy.entry import leave\nleave('tfdeploy: error: no such tag')")
    assert (done.returncode, done.stderr) == (1, "tfdeploy: error: no such tag\n")


def test_a_reader_that_closes_the_pipe_early_costs_no_traceback():
    # The output waits in the buffer until the reader (one that reads nothing) is gone: the flush on
    # the way out meets the closed pipe.
    done = run("from tfdeploy.entry import leave\nimport time\nprint('y' * 5000)\ntime.sleep(0.5)\nleave(3)",
               shell_tail="| true; exit ${PIPESTATUS[0]}")
    assert (done.returncode, done.stdout, done.stderr) == (3, "", "")


def test_a_thread_still_working_is_waited_for(tmp_path):
    """Only a process where nothing else runs ends at once; a thread that is not a daemon (an
    executor still writing) is waited for, as Python's own exit does."""
    marker = tmp_path / "written"
    done = run("import threading, time, pathlib, sys\n"
               f"t = threading.Thread(target=lambda: (time.sleep(0.5), pathlib.Path({str(marker)!r}).write_text('ok')))\n"
               "t.start()\nsys.argv = ['tfdeploy', '--version']\nfrom tfdeploy.entry import main\nmain()")
    assert done.returncode == 0 and "version" in done.stdout
    assert marker.read_text() == "ok"


def test_the_console_script_ends_through_leave(tmp_path):
    """The installed `tfdeploy` keeps click's exit codes: 0, and 2 for a usage error with its line."""
    import shutil

    script = shutil.which("tfdeploy") or str(__import__("pathlib").Path(sys.executable).parent / "tfdeploy")
    ok = subprocess.run([script, "--version"], capture_output=True, text=True, timeout=60)
    bad = subprocess.run([script, "no-such-command"], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and ok.stdout.startswith("tfdeploy, version")
    assert bad.returncode == 2 and "No such command 'no-such-command'" in bad.stderr
