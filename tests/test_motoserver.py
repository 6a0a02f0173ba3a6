"""The sandbox's moto server sends each answer whole: status line, headers and body in one send.

Real server (moto's app in a thread), real botocore clients and a raw socket on 127.0.0.1. Every
socket the server accepts is wrapped to record what the server sends on it."""

from __future__ import annotations

import socket
import threading

import pytest

pytest.importorskip("flask", reason="moto[server] (the sandbox extra) is not installed")

from tfdeploy.aws import motoserver  # noqa: E402


class RecordingSocket:
    """The accepted socket, with every send recorded (the rest passes through)."""

    def __init__(self, sock: socket.socket, sends: list[bytes], lock: threading.Lock):
        self._sock, self._sends, self._lock = sock, sends, lock

    def sendall(self, data, *args):
        with self._lock:
            self._sends.append(bytes(data))
        return self._sock.sendall(data, *args)

    def send(self, data, *args):
        sent = self._sock.send(data, *args)
        with self._lock:
            self._sends.append(bytes(data[:sent]))
        return sent

    def __getattr__(self, name):
        return getattr(self._sock, name)


@pytest.fixture
def recorded():
    """A running server and the list of every send it made, one entry per call."""
    running = motoserver.start()
    sends: list[bytes] = []
    lock = threading.Lock()
    accept = running.server.get_request

    def get_request():
        sock, address = accept()
        return RecordingSocket(sock, sends, lock), address

    running.server.get_request = get_request
    yield running, sends
    running.stop()


def _clients(url: str):
    import boto3

    kwargs = dict(endpoint_url=url, region_name="us-east-1", aws_access_key_id="testing",
                  aws_secret_access_key="testing")
    return boto3.client("dynamodb", **kwargs), boto3.client("s3", **kwargs)


def _split(send: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = send.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def test_each_answer_leaves_in_one_send_with_its_whole_body(recorded):
    running, sends = recorded
    dynamodb, s3 = _clients(running.url)
    dynamodb.create_table(TableName="locks", BillingMode="PAY_PER_REQUEST",
                          KeySchema=[{"AttributeName": "LockID", "KeyType": "HASH"}],
                          AttributeDefinitions=[{"AttributeName": "LockID", "AttributeType": "S"}])
    # The state lock's request, taken then refused: a 200 and a 400 with their JSON bodies.
    lock = dict(TableName="locks", Item={"LockID": {"S": "bucket/key"}},
                ConditionExpression="attribute_not_exists(LockID)")
    dynamodb.put_item(**lock)
    with pytest.raises(dynamodb.exceptions.ConditionalCheckFailedException):
        dynamodb.put_item(**lock)
    s3.create_bucket(Bucket="state")
    s3.put_object(Bucket="state", Key="big", Body=b"x" * 300_000)  # bigger than any socket buffer
    assert s3.get_object(Bucket="state", Key="big")["Body"].read() == b"x" * 300_000

    answers = [_split(send) for send in sends if send.startswith(b"HTTP/1.1 ") and b" 100 Continue" not in send]
    assert len(answers) >= 6, sends
    for status, headers, body in answers:
        # Each send holds a whole answer: its body is all there, not left for a later send.
        assert len(body) == int(headers["content-length"]), (status, headers, len(body))
    assert {status for status, _, _ in answers} >= {200, 400}
    assert max(len(body) for _, _, body in answers) == 300_000


def test_a_client_waiting_for_100_continue_gets_it_before_sending_the_body(recorded):
    running, _ = recorded
    _, s3 = _clients(running.url)
    s3.create_bucket(Bucket="state")
    host, port = running.server.server_address[:2]
    body = b'{"mode": "dynamodb"}'
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(b"PUT /state/lock-mode.json HTTP/1.1\r\nHost: %s:%d\r\nContent-Length: %d\r\n"
                     b"Expect: 100-continue\r\n\r\n" % (host.encode(), port, len(body)))
        # Held back, the line would never come: the server would wait for the body, and we for it.
        interim = b""
        while b"\r\n\r\n" not in interim:
            interim += sock.recv(4096)
        assert interim.startswith(b"HTTP/1.1 100 Continue\r\n"), interim
        sock.sendall(body)
        answer = interim
        while chunk := sock.recv(4096):  # the server closes the connection after its answer
            answer += chunk
    assert answer.count(b"100 Continue") == 1, answer  # one interim answer, then the final one
    final = answer.split(b"\r\n\r\n", 1)[1]
    assert final.startswith(b"HTTP/1.1 200 OK\r\n"), answer
    assert s3.get_object(Bucket="state", Key="lock-mode.json")["Body"].read() == body


def test_warm_builds_the_apps_the_sandbox_is_asked_first():
    """`sandbox up` builds the apps of the services tfdeploy calls first before their first request,
    and the server then answers them as usual."""
    running = motoserver.start()
    try:
        motoserver.warm(running.server.app)
        assert set(motoserver.WARM_SERVICES) <= set(running.server.app.app_instances)
        s3 = _clients(running.url)[1]
        s3.create_bucket(Bucket="warmed")
        assert "warmed" in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    finally:
        running.stop()


@pytest.mark.parametrize("signum", ["SIGTERM", "SIGINT"])
def test_server_process_stops_cleanly_on_a_signal(signum):
    """`sandbox down` sends SIGTERM (Ctrl-C is SIGINT): the server ends with status 0, its port closed."""
    import signal
    import subprocess
    import sys
    import time
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "tfdeploy.aws.motoserver", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read()
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/moto-api/", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        proc.send_signal(getattr(signal, signum))
        assert proc.wait(timeout=30) == 0
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_moto_lists_its_service_folders_once():
    """moto's dispatcher asks for its service folders on every request; the server lists them once
    (the same answer: a service named by its folder still reaches its backend)."""
    from moto import backends

    running = motoserver.start()
    try:
        first = backends.list_of_moto_modules()
        assert first is backends.list_of_moto_modules()
        assert {"s3", "dynamodb", "kms", "sts"} <= set(first)
        assert running.server.app.get_backend_for_host("s3") == "s3"
    finally:
        running.stop()
