"""The demo's Celery app: a small shop whose beat schedule is its own traffic generator.

Run it as any Celery app (`celery -A webui.demo.app worker` and `celery -A webui.demo.app beat`); the broker
and result backend come from env WEBUI_BROKER. Beat alone makes every kind of traffic the UI shows, so no
driver script is needed: successes, failures with real tracebacks (several exception classes), retries, a slow
task, a chain and a chord, and a burst on the `bulk` queue now and then that the worker drains slowly.
"""
from __future__ import annotations

import os
import random
import time
from typing import Any

from celery import Celery, Task, chain, chord, group
from kombu import Queue

BROKER_URL = os.environ.get("WEBUI_BROKER", "redis://127.0.0.1:6379/0")
BULK_QUEUE = "bulk"
# A card number charge() always declines: `webui demo` sends it first, so a failure shows within seconds.
DECLINED_CARD = "4000-0000-0000-0002"

app = Celery("webui.demo", broker=BROKER_URL, backend=BROKER_URL)
app.conf.update(
    # The three settings that make the event stream complete (README, "Point it at your cluster").
    worker_send_task_events=True,
    task_send_sent_event=True,
    task_track_started=True,
    # A worker started without -Q consumes every queue listed here, the burst queue included.
    task_queues=[Queue("celery"), Queue(BULK_QUEUE)],
    task_default_queue="celery",
    task_routes={"webui.demo.app.import_row": {"queue": BULK_QUEUE}},
    worker_concurrency=2,
    worker_prefetch_multiplier=1,
    result_expires=3600,
    broker_connection_retry_on_startup=True,
    timezone="UTC",
    beat_schedule={
        "checkout every 4 s": {"task": "webui.demo.app.checkout", "schedule": 4.0},
        "charge cards every 9 s": {"task": "webui.demo.app.charge", "schedule": 9.0},
        "sync inventory every 15 s": {"task": "webui.demo.app.sync_inventory", "schedule": 15.0},
        "order pipeline every 30 s": {"task": "webui.demo.app.order_pipeline", "schedule": 30.0},
        "monthly report every 90 s": {"task": "webui.demo.app.monthly_report", "schedule": 90.0},
        "bulk import every 2 min": {"task": "webui.demo.app.bulk_import", "schedule": 120.0},
    },
)


def configure(broker_url: str) -> Celery:
    """Point this process's app at `broker_url` (broker and result backend); child processes read the env."""
    app.conf.update(broker_url=broker_url, result_backend=broker_url)
    return app


class PaymentDeclined(Exception):
    """The card issuer said no."""


class InventoryServiceDown(ConnectionError):
    """The (imaginary) inventory service did not answer: worth a retry."""


# -- plain successes and failures ----------------------------------------------------------------------


@app.task
def checkout(items: int | None = None) -> dict[str, Any]:
    """Usually succeeds; a basket with a missing product fails with a KeyError a few frames down."""
    items = items or random.randint(1, 5)
    basket = {f"sku-{random.randint(1, 40)}": random.randint(1, 3) for _ in range(items)}
    return {"items": len(basket), "total": _price_basket(basket)}


def _price_basket(basket: dict[str, int]) -> float:
    return round(sum(_unit_price(sku) * quantity for sku, quantity in basket.items()), 2)


def _unit_price(sku: str) -> float:
    prices = {f"sku-{n}": 2.5 + n for n in range(1, 40)}  # sku-40 was discontinued
    return prices[sku]


@app.task
def charge(card: str | None = None, amount: float | None = None) -> str:
    """Charge a card: declined (PaymentDeclined), or a zero-amount bug (ZeroDivisionError), or fine."""
    card = card or random.choice(["4242-4242-4242-4242"] * 4 + [DECLINED_CARD])
    amount = amount if amount is not None else random.choice([19.99, 5.0, 42.0, 0.0, 12.5, 7.25])
    if card == DECLINED_CARD:
        raise PaymentDeclined(f"card {card[-4:]} declined: insufficient funds for {amount:.2f}")
    fee_share = _fee(amount) / amount  # amount 0.0 fails here, the way real bugs do
    return f"charged {amount:.2f} (fee {fee_share:.1%})"


def _fee(amount: float) -> float:
    return 0.3 + amount * 0.029


# -- retries and a slow task ---------------------------------------------------------------------------


@app.task(bind=True, max_retries=3, default_retry_delay=2)
def sync_inventory(self: Task) -> str:
    """Fails over to retries most runs; now and then runs out of retries and fails for good."""
    if random.random() < 0.6:
        try:
            raise InventoryServiceDown("inventory service did not answer within 2 s")
        except InventoryServiceDown as exc:
            raise self.retry(exc=exc) from exc
    return f"synced after {self.request.retries} retries"


@app.task
def monthly_report(seconds: float = 20.0) -> str:
    """The slow one: holds a worker slot for `seconds`."""
    time.sleep(seconds)
    return f"report ready after {seconds:g} s"


# -- canvas: a chain and a chord ----------------------------------------------------------------------


@app.task
def order_pipeline() -> str:
    """Start a chain (reserve -> pack -> ship) and a chord (resize five images, then publish the listing)."""
    order = random.randint(1000, 9999)
    chain(reserve_stock.s(order), pack.s(), ship.s()).apply_async()
    chord(group(resize_image.s(order, n) for n in range(5)), publish_listing.s(order)).apply_async()
    return f"order {order}: chain and chord started"


@app.task
def reserve_stock(order: int) -> dict[str, int]:
    return {"order": order, "reserved": random.randint(1, 4)}


@app.task
def pack(reservation: dict[str, int]) -> dict[str, int]:
    time.sleep(0.5)
    return {**reservation, "parcels": 1}


@app.task
def ship(parcel: dict[str, int]) -> str:
    if random.random() < 0.2:
        raise TimeoutError(f"carrier API timed out booking order {parcel['order']}")
    return f"order {parcel['order']} shipped"


@app.task
def resize_image(order: int, number: int) -> str:
    time.sleep(0.2)
    return f"img-{order}-{number}.webp"


@app.task
def publish_listing(images: list[str], order: int) -> str:
    return f"listing {order} published with {len(images)} images"


# -- a queue that backs up now and then ---------------------------------------------------------------


@app.task
def bulk_import(rows: int = 40) -> str:
    """Send a burst of `rows` slow tasks to the bulk queue: it backs up for a minute, then drains."""
    for row in range(rows):
        import_row.delay(row)
    return f"queued {rows} rows on {BULK_QUEUE}"


@app.task
def import_row(row: int) -> int:
    time.sleep(random.uniform(0.8, 2.0))
    if row % 17 == 16:
        raise ValueError(f"row {row}: column 'price' is not a number: 'N/A'")
    return row
