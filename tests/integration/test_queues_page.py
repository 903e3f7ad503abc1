"""The queues page: depths sampled from a real broker, stored with their history, shown with their consumers."""
from __future__ import annotations

import html
import re
import time
import uuid
from urllib.parse import quote

import pytest
from celery import Celery
from kombu import Connection, Exchange, Producer, Queue

from tests import celeryapp
from tests.support.collector import running_collector
from tests.support.store import close_database
from tests.support.waiting import wait_for
from webui.collector.rows import Rows
from webui.settings import default_settings
from webui.store.database import open_database
from webui.store.schema import upgrade

HOSTILE = "<script>alert(1)</script>"


def sender(broker_url: str, sent_events: bool = True) -> Celery:
    """A client app that publishes tasks (and task-sent events, which is how the UI learns of their queues)."""
    app = Celery(broker=broker_url)
    app.conf.task_send_sent_event = sent_events
    return app


def latest_depth(store, queue: str):
    return store.scalar("SELECT depth FROM queue_sample WHERE queue = ? ORDER BY at DESC LIMIT 1", (queue,))


def row_of(body: str, queue: str) -> str:
    """The table row of `queue` on /queues."""
    rows = re.findall(r"<tr class=\"[^\"]*\">.*?</tr>", body, re.DOTALL)
    matching = [r for r in rows if f">{html.escape(queue)}</a>" in r]
    assert matching, f"no row for {queue!r} in the page"
    return matching[0]


def test_depth_with_priorities_and_its_history_reach_the_page(redis_db, database_url, store, run_webui):
    server = run_webui("serve", "--broker", redis_db, "--database", database_url, "--batch-interval", "0.1",
                       "--no-enable-events", "--queue-sample-interval", "1")
    server.wait_http("/healthcheck", 200, timeout=30)
    app = sender(redis_db)
    for priority in (0, 0, 3, 6, 9):
        app.send_task("tests.nobody_runs_this", queue="orphan", priority=priority)
    wait_for(lambda: latest_depth(store, "orphan") == 5, timeout=20, message="depth 5 never sampled")
    for _ in range(3):
        app.send_task("tests.nobody_runs_this", queue="orphan")
    wait_for(lambda: latest_depth(store, "orphan") == 8, timeout=20, message="depth 8 never sampled")

    row = row_of(server.get("/queues").body, "orphan")
    assert re.search(r'class="num depth">8\b', row)
    assert "p0: 5" in row and "p3: 1" in row and "p6: 1" in row and "p9: 1" in row
    assert ">5–8<" in row  # min and max over the last hour
    assert 'class="pill pill-warn">no consumers' in row and 'class="unattended"' in row
    assert "from its task-sent event" in row  # Celery's messages carry no time: the sent event does
    path = re.search(r'class="sparkline-line" d="([^"]+)"', row).group(1)
    assert path.startswith("M") and " L" in path
    assert store.scalar("SELECT COUNT(*) FROM queue_sample WHERE queue = ?", ("orphan",)) >= 2

    detail = server.get("/queue/orphan?window=24h")
    assert detail.status == 200 and 'class="chart"' in detail.body and "p9: 1" in detail.body


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_without_a_task_sent_event_the_oldest_age_is_unknown_and_names_are_text(redis_db, database_url, store, pages):
    client = sender(redis_db, sent_events=False)
    client.conf.task_queues = [Queue("silent"), Queue(HOSTILE)]
    client.conf.task_default_queue = "silent"
    client.send_task("tests.nobody_runs_this", queue="silent")
    client.send_task("tests.nobody_runs_this", queue=HOSTILE)
    with running_collector(client, database_url, queue_sample_interval=1.0):
        wait_for(lambda: latest_depth(store, HOSTILE) == 1 and latest_depth(store, "silent") == 1, timeout=20,
                 message="the configured queues were never sampled")
    client = pages(redis_db)
    body = client.get("/queues").get_data(as_text=True)
    assert ">unknown<" in row_of(body, "silent")
    assert HOSTILE not in body and html.escape(HOSTILE) in body
    detail = client.get("/queue/" + quote(HOSTILE, safe=""))
    assert detail.status_code == 200
    text = detail.get_data(as_text=True)
    assert HOSTILE not in text and html.escape(HOSTILE) in text


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_bad_queue_names_are_400_unknown_ones_404_and_an_empty_store_says_so(redis_db, pages):
    client = pages(redis_db)
    assert client.get("/queue/" + "x" * 256).status_code == 400
    assert client.get("/queue/a%01b").status_code == 400
    assert client.get("/queue/celery?window=1y").status_code == 400
    missing = client.get("/queue/nobody-sampled-this")
    assert missing.status_code == 404 and "Unknown queue" in missing.get_data(as_text=True)

    page = client.get("/queues").get_data(as_text=True)
    assert "No queue sampled yet." in page
    assert 'hx-trigger="every 10s, live:queues from:body"' in page
    fragment = client.get("/queues", headers={"HX-Request": "true", "HX-Target": "queue-table"})
    text = fragment.get_data(as_text=True)
    assert "No queue sampled yet." in text and "<html" not in text and "queue-table" not in text


def test_the_workers_consuming_a_queue_are_listed_with_links(worker, database_url, store, pages):
    with running_collector(celeryapp.app, database_url, queue_sample_interval=1.0):
        wait_for(lambda: store.scalar("SELECT COUNT(*) FROM worker_inspection WHERE hostname = ?",
                                      (worker.hostname,)), timeout=20, message="the worker was never inspected")
        wait_for(lambda: store.scalar("SELECT consumers FROM queue_sample WHERE queue = 'celery' "
                                      "ORDER BY at DESC LIMIT 1"), timeout=20,
                 message="celery was never sampled with its consumer")
    row = row_of(pages(worker.broker_url).get("/queues").get_data(as_text=True), "celery")
    assert f'href="/worker/{quote(worker.hostname, safe="@")}"' in row and "no consumers" not in row


def test_old_samples_are_deleted_a_batch_at_a_time(database_url):
    db = open_database(database_url)
    upgrade(db)
    rows, now = Rows(db), time.time()
    with db.connection_context():
        with db.atomic():
            for day in range(10):  # ten daily samples of two queues, oldest first
                rows.write_queue_samples([{"queue": "a", "depth": day}, {"queue": "b", "depth": day}],
                                         now - (9 - day) * 86400, keep_after=0)
        with db.atomic():
            rows.write_queue_samples([{"queue": "a", "depth": 1}], now, keep_after=now - 7 * 86400 + 1)
        ages = [r[0] for r in db.execute_sql("SELECT at FROM queue_sample").fetchall()]
    close_database(db)
    assert len(ages) == 2 * 7 + 1 and min(ages) >= now - 7 * 86400


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_rabbitmq_depth_and_consumers_come_from_the_broker(rabbitmq_url, database_url, pages):
    name = f"webui-test-{uuid.uuid4().hex[:8]}"
    queue = Queue(name, Exchange(name), routing_key=name)
    with Connection(rabbitmq_url) as connection:
        producer = Producer(connection.channel())
        for i in range(3):
            producer.publish({"n": i}, exchange=queue.exchange, routing_key=name, declare=[queue])
    app = Celery(broker=rabbitmq_url)
    app.conf.task_queues = [queue, Queue(f"{name}-never-declared")]
    try:
        with running_collector(app, database_url, queue_sample_interval=1.0):
            client = pages(rabbitmq_url)
            wait_for(lambda: name in client.get("/queues").get_data(as_text=True), timeout=20,
                     message="the RabbitMQ queue was never sampled")
        body = client.get("/queues").get_data(as_text=True)
    finally:
        with Connection(rabbitmq_url) as connection:
            queue.bind(connection.channel()).delete()
            queue.exchange.bind(connection.channel()).delete()
    row = row_of(body, name)
    assert re.search(r'class="num depth">3\b', row)
    assert "0 on the broker" in row and "no consumers" in row
    assert "<th class=\"num\">Ready</th>" in body and "<th class=\"num\">Unacked</th>" in body
    assert "not declared on the broker" in row_of(body, f"{name}-never-declared")
    # Ready and unacked need the management plugin; without it the page says why they are missing.
    assert ">3</td>" in row or "management API" in body


@pytest.fixture
def pages(database_url):
    """`pages(broker_url)`: a test client of the pages on `database_url` (no collector of its own)."""
    from webui.app import create_app

    apps = []

    def client(broker_url: str):
        db = open_database(database_url)
        upgrade(db)
        close_database(db)
        settings = default_settings(broker=broker_url, database=database_url, queue_sample_interval=1.0)
        apps.append(create_app(settings, start_collector=False))
        return apps[-1].test_client()

    yield client
    for app in apps:
        close_database(app.config["WEBUI_DATABASE"])
