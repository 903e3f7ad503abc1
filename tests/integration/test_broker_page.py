"""The broker page: what the broker says about itself, and a clear note when it says nothing."""
from __future__ import annotations

import pytest
import redis
from celery import Celery

from webui.broker_info import describe_broker
from webui.settings import default_settings


def page(broker_url: str, database_url: str):
    from webui.app import create_app

    app = create_app(default_settings(broker=broker_url, database=database_url), start_collector=False)
    return app.test_client().get("/broker")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_redis_broker_shows_its_version_memory_and_keys_per_database(redis_db, database_url):
    redis.Redis.from_url(redis_db).set("some-key", "1")
    response = page(redis_db, database_url)
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "reachable" in body and "Version" in body and "Memory used" in body
    assert f"db{redis_db.rsplit('/', 1)[1]}" in body
    assert "Content-Security-Policy" in response.headers


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_password_in_the_broker_url_is_never_shown(database_url, redis_url):
    url = redis_url.replace("redis://", "redis://:hunter2@") + "/3"
    body = page(url, database_url).get_data(as_text=True)
    assert "hunter2" not in body and ":***@" in body


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_broker_that_is_down_is_a_note_not_an_error_page(private_redis, database_url):
    url = private_redis.url(0)
    private_redis.stop()
    response = page(url, database_url)
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "not reachable" in body and "did not answer" in body


def test_rabbitmq_reports_its_server_and_says_when_the_management_api_is_missing(rabbitmq_url):
    info = describe_broker(Celery(broker=rabbitmq_url), use_cache=False)
    assert info.reachable and info.transport == "amqp"
    facts = dict(info.facts)
    assert facts["Product"] == "RabbitMQ" and facts["Version"]
    if "Messages" not in facts:  # the management plugin is optional
        assert any("management API" in note for note in info.notes)
    assert "guest:guest" not in info.url
