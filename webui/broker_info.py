"""What the broker says about itself: Redis INFO, or RabbitMQ's AMQP server properties and management API.

Asked on demand by the broker page with short timeouts (never a broadcast to workers), and cached for a few
seconds per process so a page reloaded in a loop doesn't poll the broker in a loop. Every failure becomes a
readable note on the page, never an error page: a monitor is most needed when the broker is in trouble.
"""
from __future__ import annotations

import base64
import json
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

import redis
from celery import Celery

from webui.celery_app import safe_broker_url
from webui.collector.reader import CONNECTION_CLASSES, connection_params
from webui.views.formatting import duration

TIMEOUT = 2.0
CACHE_SECONDS = 5.0
MANAGEMENT_PORT = 15672

_REDIS_FACTS = (
    ("redis_version", "Version"), ("redis_mode", "Mode"), ("os", "OS"), ("uptime_in_seconds", "Uptime"),
    ("connected_clients", "Clients"), ("blocked_clients", "Blocked clients"),
    ("used_memory_human", "Memory used"), ("used_memory_peak_human", "Memory peak"),
    ("maxmemory_human", "Memory limit"), ("maxmemory_policy", "Eviction policy"),
    ("mem_fragmentation_ratio", "Fragmentation ratio"), ("instantaneous_ops_per_sec", "Ops/s"),
    ("total_commands_processed", "Commands processed"), ("rejected_connections", "Rejected connections"),
    ("role", "Role"), ("connected_slaves", "Replicas"),
)


@dataclass
class BrokerInfo:
    url: str
    transport: str
    reachable: bool = False
    facts: list[tuple[str, str]] = field(default_factory=list)
    databases: list[tuple[str, int, int]] = field(default_factory=list)  # (db, keys, keys with expiry)
    notes: list[str] = field(default_factory=list)
    fetched_at: float = field(default_factory=time.time)


_cache: dict[str, BrokerInfo] = {}
_cache_lock = threading.Lock()


def describe_broker(app: Celery, *, use_cache: bool = True) -> BrokerInfo:
    key = str(app.conf.broker_url)
    with _cache_lock:
        cached = _cache.get(key)
        if use_cache and cached and time.time() - cached.fetched_at < CACHE_SECONDS:
            return cached
    info = _describe(app)
    with _cache_lock:
        _cache[key] = info
    return info


def _describe(app: Celery) -> BrokerInfo:
    connection = app.connection_for_read()
    transport = str(connection.transport_cls)
    info = BrokerInfo(url=_safe_url(app), transport=transport)
    try:
        if transport in ("redis", "rediss"):
            _describe_redis(connection, info)
        elif transport in ("amqp", "pyamqp", "amqps"):
            _describe_rabbitmq(connection, info)
        else:
            info.notes.append(f"No server statistics for the {transport!r} transport.")
    except Exception as exc:  # noqa: BLE001 - any failure is shown on the page, with what it was
        info.reachable = False
        info.notes.append(f"The broker did not answer: {type(exc).__name__}: {exc}")
    finally:
        connection.release()
    return info


def _safe_url(app: Celery) -> str:
    try:
        return safe_broker_url(app)
    except Exception:  # noqa: BLE001 - an unparsable URL still gets a page
        return "(unparsable broker URL)"


def _describe_redis(connection: Any, info: BrokerInfo) -> None:
    # A client of our own with short timeouts, built from kombu's own parameters (TLS, auth, db).
    channel = connection.default_channel
    params = connection_params(channel)
    if params is None:
        client = channel.client
    else:
        options = {**params["connection"], "socket_timeout": TIMEOUT, "socket_connect_timeout": TIMEOUT}
        pool = redis.ConnectionPool(connection_class=CONNECTION_CLASSES[params["connection_class"]], **options)
        client = redis.Redis(connection_pool=pool)
    values = client.info()
    info.reachable = True
    info.facts = [(label, _redis_value(key, values[key])) for key, label in _REDIS_FACTS if key in values]
    info.databases = sorted(
        ((name, int(stats.get("keys", 0)), int(stats.get("expires", 0)))
         for name, stats in values.items() if name.startswith("db") and isinstance(stats, dict)),
        key=lambda row: int(row[0][2:]))
    if values.get("maxmemory_policy", "noeviction") not in ("noeviction", None):
        info.notes.append(f"Eviction policy {values['maxmemory_policy']}: under memory pressure Redis may "
                          "delete queued tasks and results. Celery brokers should use noeviction.")


def _describe_rabbitmq(connection: Any, info: BrokerInfo) -> None:
    connection.connect()
    properties = getattr(connection.connection, "server_properties", {}) or {}
    info.reachable = True
    for key, label in (("product", "Product"), ("version", "Version"), ("platform", "Platform"),
                       ("cluster_name", "Cluster")):
        if properties.get(key):
            info.facts.append((label, _text(properties[key])))
    overview = _management_overview(connection)
    if isinstance(overview, str):
        info.notes.append(overview)
        return
    totals = overview.get("queue_totals") or {}
    counts = overview.get("object_totals") or {}
    for key, label in (("messages", "Messages"), ("messages_ready", "Ready"),
                       ("messages_unacknowledged", "Unacknowledged")):
        if key in totals:
            info.facts.append((label, str(totals[key])))
    for key, label in (("queues", "Queues"), ("consumers", "Consumers"), ("connections", "Connections"),
                       ("channels", "Channels")):
        if key in counts:
            info.facts.append((label, str(counts[key])))
    if overview.get("node"):
        info.facts.append(("Node", str(overview["node"])))


def _management_overview(connection: Any) -> dict[str, Any] | str:
    """GET /api/overview of the management plugin, with the broker's credentials; a note if unreachable."""
    host = connection.hostname or "localhost"
    url = f"http://{host}:{MANAGEMENT_PORT}/api/overview"
    request = urllib.request.Request(url)
    credentials = f"{connection.userid or 'guest'}:{connection.password or 'guest'}".encode()
    request.add_header("Authorization", "Basic " + base64.b64encode(credentials).decode())
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:  # noqa: S310 - the broker's host
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return f"RabbitMQ's management API at {host}:{MANAGEMENT_PORT} refused the request ({exc.code})."
    except (OSError, ValueError) as exc:
        return (f"RabbitMQ's management API is not reachable at {host}:{MANAGEMENT_PORT} ({exc}); enable the "
                "rabbitmq_management plugin to see message counts here.")


def _redis_value(key: str, value: Any) -> str:
    if key == "uptime_in_seconds":
        return duration(float(value))
    if key == "maxmemory_human" and str(value) in ("0", "0B"):
        return "no limit"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)
