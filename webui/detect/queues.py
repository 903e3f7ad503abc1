"""Queue detectors: nobody consuming, too deep for too long, rising steadily, a message waiting too long.

All read `queue_sample` (the collector's queue sampler writes one row per queue every `queue_sample_interval`
seconds) by ranges of its (queue, at) index, over the detector's window only. A queue whose newest sample is
older than `STALE` is not judged: the sampler has stopped, and what the queue holds now is not known.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from peewee import Database, fn

from webui.detect.findings import DetectContext, Finding
from webui.detect.phrasing import duration, moment, path, since
from webui.detect.registry import Detector, Param, register
from webui.store.models import QueueSample
from webui.store.queue_queries import QueueView, consumers

DAY = 86_400.0
STALE = 300.0  # seconds: a newest sample older than this says nothing about now
MIN_SAMPLES = 3  # "above N for T" needs at least this many samples agreeing
MIN_RISING_SAMPLES = 5  # a slope through fewer points is noise
COVERAGE = 0.8  # "rising over the window": the samples must span this share of it
MAX_QUEUES = 500


@dataclass(frozen=True)
class Point:
    at: float
    depth: int | None
    oldest_age: float | None


# -- reading the samples --------------------------------------------------------------------------------------

def queue_names(db: Database, limit: int = MAX_QUEUES) -> list[str]:
    """Every sampled queue's name, by skipping through the (queue, at) index: one seek per queue."""
    rows = db.execute_sql(
        "WITH RECURSIVE q(name) AS ("
        " SELECT MIN(queue) FROM queue_sample"
        " UNION ALL"
        " SELECT (SELECT MIN(queue) FROM queue_sample WHERE queue > q.name) FROM q WHERE q.name IS NOT NULL)"
        f" SELECT name FROM q WHERE name IS NOT NULL LIMIT {db.param}", (limit,)).fetchall()
    return [r[0] for r in rows]


def recent_points(db: Database, now: float, seconds: float,
                  queues: Iterable[str] | None = None) -> dict[str, list[Point]]:
    """Each queue's samples of the last `seconds`, oldest first; only queues whose newest one is fresh."""
    names = list(queue_names(db) if queues is None else queues)
    if not names:
        return {}
    query: Any = (QueueSample.select(QueueSample.queue, QueueSample.at, QueueSample.depth, QueueSample.oldest_age)
                  .where(QueueSample.queue.in_(names) & (QueueSample.at >= now - seconds)
                         & (QueueSample.at <= now))
                  .order_by(QueueSample.queue, QueueSample.at).tuples())
    points: dict[str, list[Point]] = {}
    for queue, at, depth, oldest_age in query:
        points.setdefault(queue, []).append(Point(at, depth, oldest_age))
    return {q: p for q, p in points.items() if now - p[-1].at <= STALE}


def waiting_since(queue: str, min_depth: int, now: float) -> float | None:
    """When the current stretch of samples with at least `min_depth` messages began (looking back a day)."""
    start = now - DAY
    below = (QueueSample.select(fn.MAX(QueueSample.at))
             .where((QueueSample.queue == queue) & (QueueSample.at >= start) & (QueueSample.at <= now)
                    & (QueueSample.depth < min_depth)).scalar())
    first = (QueueSample.select(fn.MIN(QueueSample.at))
             .where((QueueSample.queue == queue) & (QueueSample.at > (below if below is not None else start))
                    & (QueueSample.at <= now)).scalar())
    return float(first) if first is not None else None


# -- pure: judging a queue's points ---------------------------------------------------------------------------

def above_for(points: list[Point], threshold: int, seconds: float, now: float) -> bool:
    """Every sample of the last `seconds` holds more than `threshold` messages, and the samples show it.

    Walks back from the newest sample while the depth stays above; an unknown depth is skipped, a hole longer
    than `STALE` ends the stretch (what happened in it is not known). The stretch must reach back to the start
    of the window and hold at least `MIN_SAMPLES` samples.
    """
    known = [p for p in points if p.depth is not None]
    run: list[Point] = []
    for point in reversed(known):
        if (point.depth or 0) <= threshold or (run and run[-1].at - point.at > STALE):
            break
        run.append(point)
    return len(run) >= MIN_SAMPLES and run[-1].at <= now - seconds


@dataclass(frozen=True)
class Rise:
    first: int
    last: int
    slope: float  # messages per second, least squares
    steady: float  # share of steps that did not go down


def rise(points: list[Point]) -> Rise | None:
    """The trend of the known depths, or None with fewer than `MIN_RISING_SAMPLES` of them."""
    known = [(p.at, p.depth) for p in points if p.depth is not None]
    if len(known) < MIN_RISING_SAMPLES:
        return None
    n = len(known)
    mean_t = sum(t for t, _ in known) / n
    mean_d = sum(d for _, d in known) / n
    spread = sum((t - mean_t) ** 2 for t, _ in known)
    slope = sum((t - mean_t) * (d - mean_d) for t, d in known) / spread if spread else 0.0
    steps = [b >= a for (_, a), (_, b) in zip(known, known[1:], strict=False)]
    return Rise(known[0][1], known[-1][1], slope, sum(steps) / len(steps))


# -- the detectors --------------------------------------------------------------------------------------------

def latest_samples(db: Database, now: float) -> dict[str, QueueSample]:
    """Each queue's newest sample, when it is fresh."""
    names = queue_names(db)
    if not names:
        return {}
    rows = (QueueSample.select()
            .where(QueueSample.queue.in_(names) & (QueueSample.at >= now - STALE) & (QueueSample.at <= now))
            .order_by(QueueSample.queue, QueueSample.at))
    return {row.queue: row for row in rows}


def queue_unattended(ctx: DetectContext, params: dict[str, Any]) -> list[Finding]:
    """Messages wait in the queue's newest sample and no online worker consumes it (as the queues page says)."""
    min_depth = int(params["min_depth"])
    workers = consumers()
    findings = []
    for name, latest in latest_samples(ctx.db, ctx.now).items():
        view = QueueView(name, latest, [], workers.get(name, []), ctx.now)
        depth = int(latest.depth or 0)
        if not view.unattended or depth < min_depth:
            continue
        started = waiting_since(name, min_depth, ctx.now)
        when = f", waiting since {moment(started, ctx.now)}" if started else ""
        findings.append(Finding(
            "queue_unattended", name, name,
            f"Queue {name}: {depth} messages waiting and no online worker consumes it{when}",
            {"depth": depth, "sampled_at": latest.at, "transport": view.transport},
            path("/queue/", name), float(depth), started))
    return findings


def queue_depth(ctx: DetectContext, params: dict[str, Any]) -> list[Finding]:
    """Every sample of the last T minutes above N messages."""
    threshold, seconds = int(params["depth"]), float(params["minutes"]) * 60.0
    findings = []
    for name, points in recent_points(ctx.db, ctx.now, seconds + STALE).items():
        if not above_for(points, threshold, seconds, ctx.now):
            continue
        depth = next(int(p.depth) for p in reversed(points) if p.depth is not None)
        started = waiting_since(name, threshold + 1, ctx.now)
        findings.append(Finding(
            "queue_depth", name, name,
            f"Queue {name}: {depth} messages, above {threshold} "
            + (since(started, ctx.now) if started else f"for {duration(seconds)}"),
            {"depth": depth, "threshold": threshold, "minutes": params["minutes"]},
            path("/queue/", name), float(depth), started))
    return findings


def queue_rising(ctx: DetectContext, params: dict[str, Any]) -> list[Finding]:
    """Depth rising steadily over the window: a positive slope, a rise of at least M, most steps not down."""
    seconds, min_rise, steady = float(params["minutes"]) * 60.0, int(params["min_rise"]), float(params["steady"])
    findings = []
    for name, points in recent_points(ctx.db, ctx.now, seconds).items():
        trend = rise(points)
        if trend is None or points[-1].at - points[0].at < COVERAGE * seconds:
            continue
        if trend.slope <= 0 or trend.last - trend.first < min_rise or trend.steady < steady:
            continue
        per_minute = trend.slope * 60.0
        findings.append(Finding(
            "queue_rising", name, name,
            f"Queue {name} rose from {trend.first} to {trend.last} messages in {duration(ctx.now - points[0].at)}"
            f" (+{per_minute:.0f}/min)",
            {"first": trend.first, "last": trend.last, "per_minute": round(per_minute, 2),
             "steady_share": round(trend.steady, 3), "samples": len(points)},
            path("/queue/", name), round(per_minute, 2), points[0].at))
    return findings


def queue_oldest(ctx: DetectContext, params: dict[str, Any]) -> list[Finding]:
    """The oldest waiting message (as the newest sample knew it) has waited longer than T minutes."""
    limit = float(params["minutes"]) * 60.0
    findings = []
    for name, points in recent_points(ctx.db, ctx.now, STALE).items():
        age = points[-1].oldest_age
        if age is None or age <= limit:
            continue
        sent = points[-1].at - age
        findings.append(Finding(
            "queue_oldest", name, name,
            f"Queue {name}: the oldest message has waited {duration(age)} (sent {moment(sent, ctx.now)})",
            {"oldest_age": age, "depth": points[-1].depth, "sampled_at": points[-1].at},
            path("/queue/", name), age, sent))
    return findings


register(Detector(
    "queue_unattended", "Queue without consumers", "queue", queue_unattended,
    {"min_depth": Param(1, "Messages waiting before it counts.", min=1)},
    "Messages wait in the queue and no online worker consumes it: nothing will ever run them. A worker "
    "missing its -Q, a typo in a route, or the only consumer crashed."))
register(Detector(
    "queue_depth", "Queue too deep", "queue", queue_depth,
    {"depth": Param(1000, "Messages: the depth to stay above.", min=0),
     "minutes": Param(10.0, "For at least this many minutes (every sample in them).", min=1, max=1440)},
    "Every sample of the last T minutes held more than N messages: the workers are not keeping up."))
register(Detector(
    "queue_rising", "Queue rising", "queue", queue_rising,
    {"minutes": Param(15.0, "The window the trend is measured over.", min=2, max=1440),
     "min_rise": Param(100, "Messages the depth must have grown by over the window.", min=1),
     "steady": Param(0.75, "Share of sample-to-sample steps that must not go down.", min=0, max=1)},
    "The depth went up steadily over the window (least-squares slope above zero, grown by at least M, most "
    "steps not down): messages arrive faster than they are consumed, before any fixed threshold trips."))
register(Detector(
    "queue_oldest", "Message waiting too long", "queue", queue_oldest,
    {"minutes": Param(10.0, "Minutes the oldest waiting message may wait.", min=0.1, max=10_080)},
    "The oldest message in the queue has waited longer than T. Known when the message or its task-sent "
    "event tells when it was sent (Redis), or from RabbitMQ's management API."))
