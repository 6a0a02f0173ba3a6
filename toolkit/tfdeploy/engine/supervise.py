"""Supervise Terraform processes: a signal to tfdeploy becomes ONE graceful interrupt to Terraform,
and nothing Terraform started outlives its run.

Why each piece:

* Terraform runs in its own session (`start_new_session`), so a terminal Ctrl-C, which signals the
  whole foreground process group, reaches it only through tfdeploy, once. Terraform treats a second
  interrupt as "exit immediately, data loss may occur".
* While any Terraform runs, SIGINT, SIGTERM and SIGHUP to tfdeploy are forwarded: the first as a
  SIGINT (Terraform finishes in-flight operations, writes state, releases the lock), the second as
  another SIGINT (Terraform's own "exit now"), the third as SIGKILL to its process group. The run
  then ends with `Interrupted` (exit 128 + signal number). With no Terraform running, the first
  signal raises `Interrupted` at once, like Python's KeyboardInterrupt.
* Signal handlers can only be installed from the main thread. The handler is installed there
  (`handling_signals`, by the CLI around every command, or by `Terraform.run` itself when it runs
  in the main thread) and acts on a registry of live Terraform children, so runs started from
  worker threads (fan-out) are covered as long as the main thread installed it.
* On Linux the child asks the kernel for SIGINT when its parent dies (`PR_SET_PDEATHSIG`), so a
  SIGKILLed tfdeploy still gets Terraform's graceful stop. Caveat: the signal fires when the
  *thread* that started the child exits; `Terraform.run` waits in that thread, so it outlives it.
* Remote work tfdeploy started is supervised the same way (`supervising_remote`: a release's
  CodeBuild batch, delivery/release_stage.py): a signal is recorded, not raised, and the code that
  owns the work stops it (StopBuildBatch), then raises `Interrupted` itself.
* When Terraform has exited, whatever is left in its process group (providers, provisioner
  commands) is terminated: SIGTERM, a short grace, SIGKILL. The leader is reaped only after that,
  so its pid (= the group id) cannot be reused meanwhile.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Callable, Iterator, Mapping

from ..errors import TfdeployError

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
GROUP_GRACE_S = 2.0
POLL_S = 0.05
POLL_MIN_S = 0.002


class Interrupted(TfdeployError):
    """tfdeploy was told to stop. Exit code 128 + the signal number (130 SIGINT, 143 SIGTERM)."""

    def __init__(self, message: str, signum: int, completed: bool = False):
        super().__init__(message)
        self.signum = signum
        self.exit_code = 128 + signum
        self.completed = completed  # the Terraform command it stopped had completed (exit 0) first


def signal_name(signum: int) -> str:
    return signal.Signals(signum).name


# Signals received, in order. Appended from the handler (main thread), read anywhere: list.append
# and len are atomic under the GIL, and no lock is taken in the handler (it could deadlock).
_received: list[int] = []
_live: dict[int, subprocess.Popen] = {}  # pid -> child, the Terraform processes running now
# How many supervised runs are in progress (any thread): Terraform processes, and remote work
# tfdeploy started and must stop itself (`supervising_remote`). While any is, a signal is recorded
# and forwarded, never raised: the run that owns the work ends it.
_supervising = [0]
# `+= 1` is not atomic across threads (fan-out runs Terraform from workers); the handler only reads.
_count_lock = threading.Lock()
_installed = {"depth": 0, "previous": {}}


def received() -> int | None:
    """The first signal tfdeploy received (None: none)."""
    return _received[0] if _received else None


def signal_count() -> int:
    return len(_received)


def _handle(signum: int, frame: object) -> None:
    _received.append(signum)
    if not _supervising[0]:
        if len(_received) > 1:
            return  # already on the way out after the first one
        raise Interrupted(f"interrupted ({signal_name(signum)}); no Terraform was running, so no "
                          "state is affected; run the command again when ready", signum)
    count = len(_received)
    for pid in list(_live):
        try:
            if count <= 2:
                os.kill(pid, signal.SIGINT)  # 1st: graceful stop; 2nd: Terraform's "exit now"
            else:
                os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def install_for_process() -> None:
    """Install the handler for the rest of the process (the CLI's first act, in the main thread).

    A signal between Python's start and a command's own handling, or after it while the result
    is printed, would otherwise take Python's default: a silent death by signal, or a traceback.
    Installed here, it is one Interrupted (one line, exit 128+n) wherever it lands."""
    if threading.current_thread() is not threading.main_thread() or _installed["depth"]:
        return
    for signum in SIGNALS:
        signal.signal(signum, _handle)
    _installed["depth"] = 1


def ignore_while_exiting() -> None:
    """The process is ending (its exit code is decided, no Terraform runs): ignore further signals
    (main thread only)."""
    if threading.current_thread() is threading.main_thread():
        for signum in SIGNALS:
            signal.signal(signum, signal.SIG_IGN)


@contextlib.contextmanager
def handling_signals(until_exit: bool = False) -> Iterator[None]:
    """Install tfdeploy's SIGINT/SIGTERM/SIGHUP handler for the block, then restore the previous
    ones. A no-op outside the main thread (Python allows handlers only there) and when nested.

    `until_exit`: the block is the whole command; once interrupted, further signals are ignored
    (not restored to the default, which would kill the process before it has reported and
    exited; Python itself resets its own handlers to the default while finalizing)."""
    if threading.current_thread() is not threading.main_thread() or _installed["depth"]:
        yield  # installed by an outer block already, or impossible in this thread
        return
    previous = {signum: signal.signal(signum, _handle) for signum in SIGNALS}
    _installed["depth"] = 1
    try:
        yield
    finally:
        _installed["depth"] = 0
        for signum, handler in previous.items():
            if until_exit and _received:
                handler = signal.SIG_IGN
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)


@contextlib.contextmanager
def supervising_remote() -> Iterator[None]:
    """A block that owns remote work which a signal must not orphan (a release's CodeBuild batch:
    abandoned, it would go on deploying with no one watching). Inside it, SIGINT/SIGTERM/SIGHUP are
    recorded, not raised, so no call is cut in half (a StartBuildBatch whose answer never arrived
    leaves a batch nobody can name); the block polls `received()` (`pause` wakes on a signal),
    stops its work, then raises `Interrupted` itself."""
    with _count_lock:
        _supervising[0] += 1
    try:
        yield
    finally:
        with _count_lock:
            _supervising[0] -= 1


def pause(seconds: float, *, until_signals: int = 1) -> bool:
    """Sleep `seconds`, waking early once tfdeploy has received `until_signals` signals; True when
    it woke for them. (A signal does not cut `time.sleep` short: its handler returns and the sleep
    goes on, PEP 475.)"""
    deadline = time.monotonic() + seconds
    while len(_received) < until_signals:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(left, 4 * POLL_S))
    return True


def _death_signal() -> Callable[[], None] | None:
    """A function for the forked child that asks for SIGINT when its parent dies (Linux only).

    Resolved in the parent: the child must not load libraries between fork and exec."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    parent = os.getpid()
    pr_set_pdeathsig = 1

    def setup() -> None:
        prctl(pr_set_pdeathsig, signal.SIGINT, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the request took effect
            os._exit(111)

    return setup


def spawn(argv: list[str], cwd: Path, env: Mapping[str, str], stdout: IO[bytes],
          stderr: IO[bytes]) -> subprocess.Popen:
    """Start a supervised Terraform (own session, death signal) and register it."""
    if _received:
        raise Interrupted(f"interrupted ({signal_name(_received[0])}); not starting terraform "
                          f"{argv[1] if len(argv) > 1 else ''}".rstrip(), _received[0])
    with _count_lock:
        _supervising[0] += 1
    try:
        # preexec_fn is documented as unsafe with threads; ours only calls an already-resolved
        # prctl and getppid, which take no Python-level locks that another thread could hold.
        child = subprocess.Popen(argv, cwd=cwd, env=dict(env), stdout=stdout, stderr=stderr,
                                 stdin=subprocess.DEVNULL, start_new_session=True,
                                 preexec_fn=_death_signal())
    except BaseException:
        with _count_lock:
            _supervising[0] -= 1
        raise
    _live[child.pid] = child
    if _received:  # a signal arrived while it was starting: it gets its interrupt too
        with contextlib.suppress(ProcessLookupError):
            os.kill(child.pid, signal.SIGINT)
    return child


def wait(child: subprocess.Popen, tick: Callable[[], None]) -> int:
    """Wait for `child`, calling `tick` (output tailing) meanwhile; clean its process group; reap it.

    If `tick` fails (e.g. our stdout is gone), Terraform is still stopped gracefully, not abandoned.
    """
    try:
        naps = _exit_waiter(child.pid)
        try:
            while not _exited(child.pid):
                tick()
                next(naps)
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signal.SIGINT)
            while not _exited(child.pid):
                time.sleep(POLL_S)
            raise
        finally:
            naps.close()
            clean_group(child.pid)
            child.wait()
    finally:
        _live.pop(child.pid, None)
        with _count_lock:
            _supervising[0] -= 1
    return child.returncode


def _exit_waiter(pid: int) -> Iterator[None]:
    """Each step waits until `pid` exits or POLL_S passes, whichever is first.

    Init, plan and apply of a small cell take well under a tenth of a second each, so any fixed
    nap adds its average to every Terraform process a cell runs. A pidfd (Linux >= 5.3) wakes the
    moment the child exits; a signal interrupts the wait too (its handler runs, then the wait goes
    on). Elsewhere: naps from 2 ms up to POLL_S."""
    fd = None
    with contextlib.suppress(AttributeError, OSError):
        fd = os.pidfd_open(pid)
    if fd is None:
        nap = POLL_MIN_S
        while True:
            time.sleep(nap)
            nap = min(nap * 2, POLL_S)
            yield
    import select

    try:
        while True:
            select.select([fd], [], [], POLL_S)
            yield
    finally:
        os.close(fd)


def _exited(pid: int) -> bool:
    """Has `pid` exited? Leaves it unreaped (a zombie keeps its pid and group id reserved)."""
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return True
    return info is not None and info.si_pid == pid


def group_members(pgid: int) -> list[int] | None:
    """Live (non-zombie) processes of group `pgid` other than its leader; None without /proc."""
    proc = Path("/proc")
    if not (proc / "self" / "stat").exists():
        return None
    members = []
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == pgid:
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            members.append(int(entry.name))
    return members


def clean_group(pgid: int, grace: float = GROUP_GRACE_S) -> None:
    """Terminate what is left of Terraform's process group: SIGTERM, `grace` seconds, SIGKILL."""
    if group_members(pgid) == []:
        return
    for signum in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, signum)
        except (ProcessLookupError, PermissionError):
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if group_members(pgid) == []:
                return
            time.sleep(POLL_S)
