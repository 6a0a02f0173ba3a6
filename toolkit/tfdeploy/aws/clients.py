"""AWS clients that go to the local sandbox when one is in use, else to AWS.

Made with botocore, the library under boto3: tfdeploy uses plain clients only, and boto3's import
(s3transfer, resources) and client set-up add ~45 ms of CPU to every command that touches AWS
(`python benchmarks/fanout.py` runs one per tag). Imported inside the functions: most commands
never call AWS.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Mapping

from .sandbox import aws_env

# Short connect timeout and few retries: a wrong endpoint should fail in seconds, not minutes.
_RETRIES = {"mode": "standard", "max_attempts": 4}
_CONNECT_TIMEOUT_S = 5
_READ_TIMEOUT_S = 30


# Building a client loads service models and endpoint data (tens of ms each); one cell asks for
# several (lock-mode record, AWS-provider probe, ledger) and a fan-out for many. botocore clients
# are thread-safe, so one per (service, Region, endpoint, credentials) serves the whole process.
_CACHE: dict[tuple[str, ...], Any] = {}
_CACHE_LOCK = threading.Lock()
_SESSIONS: dict[tuple[str, ...], Any] = {}
# What botocore's own credential and endpoint chain reads from the process environment.
CHAIN_VARS = ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
               "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_STS",
               "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE")


def client(service: str, region: str, environ: Mapping[str, str], endpoint: str | None = None,
           max_pool_connections: int | None = None, keys_only: bool = False) -> Any:
    """A botocore client for `service` in `region` (made once per process for the same target).

    With `endpoint` (the sandbox, from `sandbox.active_endpoint`) every call goes there, with the
    credentials `aws_env` chooses. Without it botocore's usual chain applies (env vars, AWS_PROFILE,
    SSO, instance roles), which reads the process environment rather than `environ`.
    `max_pool_connections`: for a client shared by that many threads (botocore's default is 10).
    `keys_only`: an S3 client whose ListObjectsV2 answers carry only each object's Key and ETag
    (aws/s3keys.py), for code that lists keys and reads nothing else.
    """
    if endpoint is None:
        creds = tuple(os.environ.get(name, "") for name in CHAIN_VARS)
    else:
        env = {**environ, **aws_env(endpoint, environ)}
        creds = (env["AWS_ACCESS_KEY_ID"], env.get("AWS_SECRET_ACCESS_KEY", ""), env.get("AWS_SESSION_TOKEN", ""))
    key = (service, region, endpoint or "", str(max_pool_connections or ""), "keys" if keys_only else "", *creds)
    with _CACHE_LOCK:
        made = _CACHE.get(key)
        if made is None:
            made = _CACHE[key] = _new_client(service, region, environ, endpoint, max_pool_connections, keys_only)
    return made


def _session(chain: tuple[str, ...] = ()) -> Any:
    """A botocore session shared by clients (called under _CACHE_LOCK).

    A session owns botocore's loader, which caches the service models: with a session per client
    every S3 client parsed the S3 model again (~60 ms each). Sandbox clients get their credentials
    and Region passed in, so they all share one session; clients on botocore's own credential chain
    share one per state of that chain's variables (`chain`), as a session resolves it only once."""
    made = _SESSIONS.get(chain)
    if made is None:
        import botocore.session

        made = _SESSIONS[chain] = botocore.session.Session()
        made.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=parse_timestamp)
    return made


_FAST: tuple[Any, ...] = ()  # (pattern, datetime, UTC, botocore's parser), made on first use


def parse_timestamp(value: Any) -> Any:
    """What botocore's own timestamp parser returns, without dateutil for the form S3 and every
    XML API answer in (`2026-11-20T10:00:30.000Z`): dateutil's general parser took three
    quarters of the CPU of parsing a ListObjectsV2 page (a listed key carries a LastModified),
    and `status` parses a page per 1,000 cells. Any other form goes to botocore's parser."""
    global _FAST
    if not _FAST:
        import datetime
        import re

        from botocore.utils import parse_timestamp as general
        from dateutil.tz import tzutc

        _FAST = (re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,6}))?Z"),
                 datetime.datetime, tzutc(), general)
    pattern, made, utc, general = _FAST
    found = pattern.fullmatch(value) if isinstance(value, str) else None
    if found is None:
        return general(value)
    year, month, day, hour, minute, second, fraction = found.groups()
    try:
        return made(int(year), int(month), int(day), int(hour), int(minute), int(second),
                    int((fraction or "0").ljust(6, "0")), tzinfo=utc)
    except ValueError:  # e.g. a 25th hour: botocore says what is wrong
        return general(value)


def _new_client(service: str, region: str, environ: Mapping[str, str], endpoint: str | None,
                max_pool_connections: int | None, keys_only: bool = False) -> Any:
    if not keys_only:
        return _built(service, region, environ, endpoint, max_pool_connections)
    from .s3keys import KeysParserFactory

    # A session hands its parser factory to each client it makes: swapped for this one client
    # only (every client is made under _CACHE_LOCK), so the session's models are not loaded again.
    session = _session(("sandbox",) if endpoint is not None else tuple(os.environ.get(n, "") for n in CHAIN_VARS))
    usual = session.get_component("response_parser_factory")
    keys = KeysParserFactory()
    keys.set_parser_defaults(timestamp_parser=parse_timestamp)
    session.register_component("response_parser_factory", keys)
    try:
        made = _built(service, region, environ, endpoint, max_pool_connections)
    finally:
        session.register_component("response_parser_factory", usual)
    from .s3keys import check_listings_cheaply

    check_listings_cheaply(made)
    return made


def _built(service: str, region: str, environ: Mapping[str, str], endpoint: str | None,
           max_pool_connections: int | None) -> Any:
    from botocore.config import Config

    config = Config(retries=dict(_RETRIES), connect_timeout=_CONNECT_TIMEOUT_S, read_timeout=_READ_TIMEOUT_S)
    if max_pool_connections:
        config = config.merge(Config(max_pool_connections=max_pool_connections))
    if endpoint is None:
        chain = tuple(os.environ.get(name, "") for name in CHAIN_VARS)
        return _session(chain).create_client(service, region_name=region, config=config)
    env = {**environ, **aws_env(endpoint, environ)}
    # Path-style: `<bucket>.127.0.0.1` does not resolve.
    config = config.merge(Config(s3={"addressing_style": "path"}))
    return _session(("sandbox",)).create_client(service, region_name=region, endpoint_url=endpoint, config=config,
                                                aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                                                aws_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY", ""),
                                                aws_session_token=env.get("AWS_SESSION_TOKEN") or None)


def preload(services: tuple[str, ...], region: str) -> None:
    """Import botocore and load what sandbox clients of `services` in `region` are built from
    (service models, endpoint rules) into the session they share, before the sandbox's address
    is known: the demo does it while moto starts. No client is kept and nothing is called."""
    with _CACHE_LOCK:
        for service in services:
            _new_client(service, region, {}, "http://127.0.0.1", None)


def prewarm(service: str, region: str, environ: Mapping[str, str], endpoint: str | None = None) -> None:
    """Start building a client in the background: importing botocore and loading a service model
    (~120 ms, CPU) overlap whatever the caller does next (git archive, another process); the
    later `client(...)` for the same target waits for it instead of building its own. Errors
    are left for that later call to meet."""
    def build() -> None:
        try:
            client(service, region, environ, endpoint)
        except Exception:  # noqa: BLE001 - the real call reports it
            pass

    threading.Thread(target=build, name=f"prewarm-{service}-{region}", daemon=True).start()


def access_hint(exc: Exception) -> str:
    """What to do when AWS could not be asked at all (no credentials, no endpoint), as "; ..." to
    end an error line; "" for any other error."""
    from botocore.exceptions import EndpointConnectionError, NoCredentialsError

    if isinstance(exc, NoCredentialsError):
        return ("; set AWS credentials (AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY), or for the "
                "local sandbox run tfdeploy sandbox up and eval \"$(tfdeploy sandbox env)\"")
    if isinstance(exc, EndpointConnectionError):
        return "; check the network or the sandbox (tfdeploy sandbox up)"
    return ""
