"""The sandbox's AWS stand-in: moto's server app behind a request handler that sends each response whole.

Why not `python -m moto.server` as it comes: its werkzeug server writes a response's status line and
headers in one `send` and the body in the next. Terraform's AWS SDK now and then gives up on a
response whose headers arrived without the body, closes the connection and sends the request again.
For the DynamoDB `PutItem` of Terraform's state lock, moto already stored the first attempt, so the
second one fails its `attribute_not_exists` condition: Terraform reports "Error acquiring the state
lock" against the lock it has just taken, and leaves that lock behind. Seen as about one flaky lock
failure per full test run; with a 5 ms pause between headers and body, 3 of 6 runs of 16 parallel
plans failed. Holding the headers until the body is written and sending both in one call closes that
window (0 of 6 runs with the same pause before the whole answer).

`python -m tfdeploy.aws.motoserver -H HOST -p PORT` is what `tfdeploy sandbox up` starts;
`start()` runs the same server in a thread of the calling process (the tests, the benchmarks).
"""

from __future__ import annotations

import argparse
import io
import os
import signal
import sys
import threading
from dataclasses import dataclass
from typing import Any, Sequence


class HeldWriter(io.BufferedIOBase):
    """A socket writer that keeps what is written until `flush`, then sends it in one `sendall`.

    werkzeug writes the headers, then the body, then flushes; http.server's own error pages are
    flushed when the handler finishes. So each answer leaves in one call, whatever its size.
    """

    def __init__(self, sock: Any):
        super().__init__()
        self._sock = sock
        self._held: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self._held.append(chunk)
        return len(chunk)

    def flush(self) -> None:
        if self._held:
            data = b"".join(self._held)
            self._held.clear()
            self._sock.sendall(data)


def _handler_class() -> type:
    """moto's request handler (it keeps S3 metadata headers' spelling) with the held writer.

    Built on first use: importing moto's server app takes about a second."""
    from moto.moto_server.werkzeug_app import MotoRequestHandler

    class WholeResponseHandler(MotoRequestHandler):
        def setup(self) -> None:
            super().setup()
            self.wfile = HeldWriter(self.connection)

        # A client that sent `Expect: 100-continue` waits for that line before it sends the body
        # (botocore for a second), so it must not be held. werkzeug writes it just before it builds
        # the WSGI environ; http.server's own would be a second one, so it is not written at all.
        def handle_expect_100(self) -> bool:
            return True

        def make_environ(self) -> dict[str, Any]:
            self.wfile.flush()
            return super().make_environ()

    return WholeResponseHandler


# What tfdeploy asks a fresh sandbox for first (the ledger key, state buckets, lock tables, the
# caller's account). moto builds each service's app on its first request, importing its backend,
# and parses the service's botocore model on its first answer (0.05-0.2 s of CPU each); done
# ahead in a thread, that overlaps the client starting up instead of delaying its first calls.
WARM_SERVICES = ("kms", "s3", "dynamodb", "sts")


def warm(app: Any, services: Sequence[str] = WARM_SERVICES) -> None:
    """Build the apps of `services` and load their models before their first request (best
    effort: a moto that looks different inside builds them on first use, as it does anyway)."""
    try:
        from moto.core.utils import get_service_model  # cached: the one moto's answers use

        for service in services:
            with app.lock:  # the dispatcher's own lock: a request meanwhile waits, it does not build twice
                if service not in app.app_instances:
                    app.app_instances[service] = app.create_app(service)
            get_service_model(service)
    except Exception as exc:  # noqa: BLE001 - only a head start is lost
        print(f"moto server: warming {services} failed ({exc}); each builds on first use", file=sys.stderr)


def make_server(host: str = "127.0.0.1", port: int = 0) -> Any:
    """A threaded werkzeug server running moto's whole app (S3, DynamoDB, STS, the moto API)."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server as werkzeug_server

    _list_moto_modules_once()
    app = DomainDispatcherApplication(create_backend_app)
    return werkzeug_server(host, port, app, threaded=True, request_handler=_handler_class())


def _list_moto_modules_once() -> None:
    """moto's dispatcher asks `list_of_moto_modules()` on every request, under its lock: a listdir
    and an isdir of each of its ~200 service folders, the same answer each time. Listed once."""
    from moto import backends

    listed = getattr(backends.list_of_moto_modules, "listed", None)
    if listed is None:
        listed = tuple(backends.list_of_moto_modules())

        def list_of_moto_modules() -> tuple[str, ...]:
            return listed

        list_of_moto_modules.listed = listed  # type: ignore[attr-defined]
        backends.list_of_moto_modules = list_of_moto_modules


@dataclass
class RunningServer:
    """A server started by `start`; `server.app` may be wrapped (the benchmark adds latency)."""

    server: Any
    thread: threading.Thread

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


def start(host: str = "127.0.0.1", port: int = 0) -> RunningServer:
    """Serve in a daemon thread of this process; returns once the socket is listening."""
    server = make_server(host, port)
    thread = threading.Thread(target=server.serve_forever, name="motoserver", daemon=True)
    thread.start()
    return RunningServer(server, thread)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tfdeploy.aws.motoserver",
                                     description="moto's AWS stand-in, each response sent whole.")
    parser.add_argument("-H", "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("-p", "--port", type=int, default=5000, help="port to listen on (default 5000)")
    args = parser.parse_args(argv)
    server = make_server(args.host, args.port)
    threading.Thread(target=warm, args=(server.app,), name="warm", daemon=True).start()

    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"moto server (whole responses) on http://{args.host}:{server.server_port}", file=sys.stderr,
          flush=True)
    try:
        server.serve_forever()
    except SystemExit:  # SIGTERM or SIGINT: stop
        server.server_close()
        # Everything it held was in memory and is meant to go: ending now, without the interpreter's
        # teardown of moto's modules (0.3-1 s), lets `sandbox down` (and the demo) return at once.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
