"""On a RabbitMQ broker, events arrive through a kombu consumer on Celery's event exchange."""
from __future__ import annotations

import pytest
from celery import Celery

from tests.support.collector import running_collector
from tests.support.events import dispatcher, send_task_lifecycle
from tests.support.waiting import wait_for


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_events_arrive_from_rabbitmq(rabbitmq_url, database_url, store):
    app = Celery(broker=rabbitmq_url)
    with running_collector(app, database_url):
        with dispatcher(rabbitmq_url, hostname="amqpworker@test") as d:
            task_ids = [send_task_lifecycle(d) for _ in range(30)]
            d.send("worker-heartbeat", freq=2.0, active=0, processed=30, loadavg=[0.1, 0.2, 0.3],
                   sw_ident="py-celery", sw_ver="5.7.0", sw_sys="Linux")
        wait_for(lambda: all(store.state(t) == "SUCCESS" for t in task_ids), timeout=20,
                 message="tasks published on RabbitMQ not stored")
        wait_for(lambda: store.rows("SELECT * FROM worker WHERE hostname = ?", ("amqpworker@test",)),
                 message="worker heartbeat from RabbitMQ not stored")
    assert store.count("task_event") == 90
