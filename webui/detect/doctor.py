"""The config doctor: settings that make Celery hard to monitor or that lose and repeat tasks, and what to change.

`gather` reads what the store already holds (the workers' last `conf`, `stats` and `registered` replies, the
collector's status, recent tasks, the rollups) and the monitor's own app; each `check_*` is a plain function of
those facts returning one `Advice` (ok, warn or unknown when there is nothing to judge by). `advise` runs them
all; the "config_doctor" detector turns each warning into a finding, so a rule can alert on them.

A worker's `conf` reply lists only the settings that differ from Celery's defaults, so a missing key means the
default (task_track_started off, worker_prefetch_multiplier 4).
"""
from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from peewee import fn

from webui.agent.transport import is_amqp
from webui.collector.merge import AGENT_SOURCE
from webui.collector.rollups import BUCKET_COLUMNS, percentile
from webui.control import registered_limits
from webui.detect.findings import DetectContext, Finding
from webui.detect.phrasing import duration
from webui.detect.registry import Detector, register
from webui.store.models import CollectorStatus, Task, TaskEvent, TaskMinute, Worker, WorkerInspection
from webui.store.worker_queries import visible

OK, WARN, UNKNOWN = "ok", "warn", "unknown"
DAY = 86_400.0
SENT_SAMPLE = 500  # newest received tasks looked at for a task-sent event
SENT_SETTLE = 30.0  # seconds: a task-sent event may arrive after task-received
SENT_MISSING_SHARE = 0.05  # more missing than this (repairs and races aside) means a sender has it off
REDIS_TRANSPORTS = ("redis", "rediss", "sentinel")
DEFAULT_VISIBILITY_TIMEOUT = 3600.0  # kombu's Redis transport
DEFAULT_PREFETCH_MULTIPLIER = 4
GREEN_POOLS = ("gevent", "eventlet")
LISTED = 5  # hostnames named in a detail before "and N more"

# New setting names and the old ones a `conf` reply may carry instead.
_OLD_NAMES = {
    "task_track_started": "CELERY_TRACK_STARTED",
    "worker_prefetch_multiplier": "CELERYD_PREFETCH_MULTIPLIER",
    "task_time_limit": "CELERYD_TASK_TIME_LIMIT",
    "worker_disable_prefetch": "",
    "task_acks_late": "CELERY_ACKS_LATE",
}


@dataclass(frozen=True)
class Advice:
    check: str
    status: str  # ok, warn, unknown
    title: str
    detail: str
    fix: str
    urgent: bool = False  # the monitor sees no task at all: the page leads with it in a red banner


@dataclass(frozen=True)
class WorkerConfig:
    """One online worker's last replies (None: it never answered that command)."""

    hostname: str
    conf: dict[str, Any] | None = None
    stats: dict[str, Any] | None = None
    registered: list[Any] | None = None

    def setting(self, name: str, default: Any = None) -> Any:
        conf = self.conf or {}
        if name in conf:
            return conf[name]
        old = _OLD_NAMES.get(name)
        return conf.get(old, default) if old else default

    @property
    def pool(self) -> str:
        pool = (self.stats or {}).get("pool")
        return str(pool.get("implementation") or "") if isinstance(pool, dict) else ""

    @property
    def transport(self) -> str:
        broker = (self.stats or {}).get("broker")
        return str(broker.get("transport") or "") if isinstance(broker, dict) else ""

    @property
    def transport_options(self) -> dict[str, Any]:
        broker = (self.stats or {}).get("broker")
        options = broker.get("transport_options") if isinstance(broker, dict) else None
        if not isinstance(options, dict):
            options = self.setting("broker_transport_options")
        return options if isinstance(options, dict) else {}

    def prefetch_multiplier(self) -> int | None:
        """From the conf reply (a missing key: the default); else derived from stats' prefetch count."""
        if self.conf is not None:
            value = self.setting("worker_prefetch_multiplier", DEFAULT_PREFETCH_MULTIPLIER)
            return int(value) if isinstance(value, (int, float)) else None
        stats = self.stats or {}
        count, pool = stats.get("prefetch_count"), stats.get("pool")
        concurrency = pool.get("max-concurrency") if isinstance(pool, dict) else None
        if isinstance(count, int) and isinstance(concurrency, int) and concurrency > 0:
            return count // concurrency
        return None

    def time_limits(self) -> list[tuple[str, float]]:
        """(what, seconds): the global task_time_limit and each registered task's own time_limit."""
        limits = []
        value = self.setting("task_time_limit")
        if isinstance(value, (int, float)) and value > 0:
            limits.append(("task_time_limit", float(value)))
        for entry in self.registered or []:
            name, items = registered_limits(entry)
            try:
                seconds = float(items.get("time_limit", ""))
            except ValueError:
                continue
            if seconds > 0:
                limits.append((f"{name} time_limit", seconds))
        return limits


@dataclass(frozen=True)
class Facts:
    workers: list[WorkerConfig] = field(default_factory=list)
    collector_warning: str | None = None
    task_events_seen: bool = False
    received_sampled: int = 0  # recent tasks that reached a worker
    without_sent: int = 0  # of those, with no task-sent event
    longest_run: tuple[str, float] | None = None  # (task name, seconds) of the longest stored run
    longest_p99: float | None = None  # that task's p99 runtime over the last day, from the rollups
    monitor_transport: str | None = None
    monitor_options: dict[str, Any] | None = None
    companion_workers: tuple[str, ...] = ()  # online workers known to run the companion (webui.agent)


# -- gathering ----------------------------------------------------------------------------------------------

def gather(ctx: DetectContext) -> Facts:
    """What the checks need, from the store (bounded reads) and the monitor's app."""
    workers = online_configs()
    status = CollectorStatus.select().first()
    seen = Worker.select().where(Worker.last_task_event_at.is_null(False)).exists()
    sampled, missing = sent_events(ctx.now)
    longest = longest_run()
    transport, options = monitor_transport(ctx.celery_app)
    return Facts(workers, status.warning if status is not None else None, bool(seen), sampled, missing, longest,
                 p99_of(longest[0], ctx.now) if longest else None, transport, options,
                 companion_workers(getattr(ctx.settings, "agent_url", None), [w.hostname for w in workers]))


def companion_workers(agent_url: str | None, hostnames: list[str]) -> tuple[str, ...]:
    """The workers among `hostnames` running the companion: their running-task mark is in its Redis, or, with
    its RabbitMQ queue (which leaves no mark), their recent tasks reached the store as its records."""
    if not agent_url or not hostnames:
        return ()
    if is_amqp(agent_url):
        return recent_record_hosts(hostnames)
    import redis

    from webui.agent.presence import key

    try:
        client = redis.Redis.from_url(agent_url, socket_timeout=1, socket_connect_timeout=1)
        try:
            marks = client.mget([key(hostname) for hostname in hostnames])
        finally:
            client.close()
    except Exception:  # noqa: BLE001 - Redis unreachable: the companion cannot be vouched for
        return ()
    return tuple(hostname for hostname, mark in zip(hostnames, marks, strict=True) if mark is not None)


def recent_record_hosts(hostnames: list[str]) -> tuple[str, ...]:
    """The workers among `hostnames` with a companion record among the newest `SENT_SAMPLE` received tasks' events
    (bounded: those tasks' events only, by the event table's key)."""
    recent = (Task.select(Task.id).where(Task.received_at.is_null(False))
              .order_by(Task.received_at.desc()).limit(SENT_SAMPLE))
    query: Any = (TaskEvent.select(TaskEvent.hostname).distinct()
                  .where(TaskEvent.task_id.in_(recent) & (TaskEvent.source == AGENT_SOURCE)
                         & TaskEvent.hostname.in_(hostnames)).tuples())
    found = {hostname for (hostname,) in query}
    return tuple(hostname for hostname in hostnames if hostname in found)


def online_configs() -> list[WorkerConfig]:
    query: Any = (WorkerInspection.select(WorkerInspection.hostname, WorkerInspection.data)
                  .join(Worker, on=(Worker.hostname == WorkerInspection.hostname))
                  .where((Worker.online == True) & visible())  # noqa: E712 - SQL, not Python
                  .order_by(WorkerInspection.hostname).tuples())
    configs = []
    for hostname, data in query:
        try:
            replies = json.loads(data) if data else {}
        except ValueError:
            replies = {}
        replies = replies if isinstance(replies, dict) else {}
        conf, stats, registered = replies.get("conf"), replies.get("stats"), replies.get("registered")
        configs.append(WorkerConfig(hostname, conf if isinstance(conf, dict) else None,
                                    stats if isinstance(stats, dict) else None,
                                    registered if isinstance(registered, list) else None))
    return configs


def sent_events(now: float) -> tuple[int, int]:
    """(tasks looked at, of them without a task-sent event): the newest received in the last day."""
    query: Any = (Task.select(Task.sent_at)
                  .where((Task.received_at >= now - DAY) & (Task.received_at <= now - SENT_SETTLE))
                  .order_by(Task.received_at.desc()).limit(SENT_SAMPLE).tuples())
    rows = list(query)
    return len(rows), sum(1 for (sent_at,) in rows if sent_at is None)


def longest_run() -> tuple[str, float] | None:
    """The longest stored runtime and its task's name, through the partial `task_runtime` index."""
    row = (Task.select(Task.name, Task.runtime).where(Task.runtime.is_null(False))
           .order_by(Task.runtime.desc()).limit(1).tuples().first())
    return (row[0] or "", float(row[1])) if row else None


def p99_of(name: str, now: float) -> float | None:
    if not name:
        return None
    row = (TaskMinute.select(*(fn.SUM(getattr(TaskMinute, c)) for c in BUCKET_COLUMNS))
           .where((TaskMinute.name == name) & (TaskMinute.minute >= now - DAY)).tuples().first())
    return percentile([int(b or 0) for b in row or ()], 0.99)


def monitor_transport(app: Any) -> tuple[str | None, dict[str, Any] | None]:
    """The monitor's broker transport alias and its broker_transport_options (no connection is made)."""
    if app is None:
        return None, None
    try:
        with app.connection_for_read() as connection:
            transport = str(connection.transport_cls)
    except Exception:  # noqa: BLE001 - an unusable broker URL: the other checks still say something
        transport = None
    options = app.conf.broker_transport_options
    return transport, dict(options) if isinstance(options, dict) else {}


# -- the checks -----------------------------------------------------------------------------------------------

def names(hosts: Sequence[str]) -> str:
    more = f" and {len(hosts) - LISTED} more" if len(hosts) > LISTED else ""
    return ", ".join(hosts[:LISTED]) + more


COMPANION_FIX = ("or install the companion in the workers (webui.agent.install(app), or imports = "
                 "['webui.agent.auto'] with webui_agent_url; docs/companion.md) and set this monitor's agent_url: "
                 "it reports every task through a Redis Stream or a RabbitMQ queue whether or not task events are "
                 "on.")


def check_task_events(facts: Facts) -> Advice:
    online = [w.hostname for w in facts.workers]
    if online and set(online) <= set(facts.companion_workers):
        return Advice("task_events", OK, "Every worker reports through the companion",
                      f"{names(online)} run the companion: their tasks are seen whether or not they send task "
                      "events.", "Task events are optional where the companion runs (docs/companion.md).")
    fix = ("Start every worker with -E (or set worker_send_task_events = True in its config). Without task "
           "events the monitor sees the workers but not their tasks: no task list, rates or lost-task alerts. "
           "The monitor's enable_events broadcasts switch events on in running workers, but a worker that "
           "restarts runs tasks unseen until the next one.")
    if facts.collector_warning:
        if facts.companion_workers:
            return Advice("task_events", WARN, "Workers run tasks without sending task events",
                          f"{facts.collector_warning} (the companion runs on {names(facts.companion_workers)}: "
                          "their tasks are seen)", f"{fix} Or {COMPANION_FIX}")
        return Advice("task_events", WARN, "Neither task events nor the companion: tasks are not seen",
                      f"No worker runs the companion either. {facts.collector_warning}", f"{fix} Or {COMPANION_FIX}",
                      urgent=True)
    if facts.task_events_seen:
        return Advice("task_events", OK, "Workers send task events", "Task events arrive from the workers.", fix)
    return Advice("task_events", UNKNOWN, "No task event seen yet",
                  "No worker has sent a task event: no task has run since the monitor started, or events are off.",
                  fix)


def check_sent_event(facts: Facts) -> Advice:
    fix = ("Set task_send_sent_event = True in every app that sends tasks (web processes, beat, scripts, and "
           "workers for retries). Until a worker receives a task the monitor does not know it exists: queued "
           "tasks are invisible, time spent waiting in the queue is not measured, and a message lost in the "
           "broker is never noticed.")
    total, missing = facts.received_sampled, facts.without_sent
    if not total:
        return Advice("task_send_sent_event", UNKNOWN, "No recent task to judge task-sent events by",
                      "No task reached a worker in the last day.", fix)
    if missing > SENT_MISSING_SHARE * total:
        return Advice("task_send_sent_event", WARN, "Tasks are sent without task-sent events",
                      f"{missing} of the {total} newest tasks workers received had no task-sent event: "
                      "whatever sent them has task_send_sent_event off.", fix)
    return Advice("task_send_sent_event", OK, "Tasks are sent with task-sent events",
                  f"{total - missing} of the {total} newest received tasks had a task-sent event.", fix)


def check_track_started(facts: Facts) -> Advice:
    fix = ("Set task_track_started = True. The result backend then records STARTED while a task runs; "
           "without it, code polling AsyncResult sees PENDING until the task ends, and the monitor cannot "
           "tell from the backend (repairing a gap in events) that a task had started.")
    answered = [w for w in facts.workers if w.conf is not None]
    if not answered:
        return Advice("task_track_started", UNKNOWN, "No worker's configuration known yet",
                      "No online worker has answered inspect conf.", fix)
    off = [w.hostname for w in answered if not w.setting("task_track_started", False)]
    if off:
        return Advice("task_track_started", WARN, "task_track_started is off",
                      f"Workers with it off: {names(off)}.", fix)
    return Advice("task_track_started", OK, "task_track_started is on",
                  f"On in all {len(answered)} workers that answered.", fix)


def visibility_timeouts(facts: Facts) -> list[tuple[str, float]]:
    """(who, seconds) of every Redis client whose options are known: the online workers and this monitor."""
    timeouts = []
    for worker in facts.workers:
        if worker.transport in REDIS_TRANSPORTS:
            value = worker.transport_options.get("visibility_timeout", DEFAULT_VISIBILITY_TIMEOUT)
            timeouts.append((worker.hostname, float(value)))
    if facts.monitor_transport in REDIS_TRANSPORTS:
        value = (facts.monitor_options or {}).get("visibility_timeout", DEFAULT_VISIBILITY_TIMEOUT)
        timeouts.append(("this monitor", float(value)))
    return timeouts


def check_visibility_timeout(facts: Facts) -> Advice:
    fix = ("Raise broker_transport_options = {'visibility_timeout': N} above your longest task and longest "
           "ETA/countdown, with the same value in the workers, beat, every producer and this monitor. Redis "
           "hands a message that was not acknowledged within the timeout to another worker: acks_late tasks "
           "and ETA/countdown tasks then run twice, and so do messages prefetched behind long tasks.")
    timeouts = visibility_timeouts(facts)
    if not timeouts:
        if facts.monitor_transport and facts.monitor_transport not in REDIS_TRANSPORTS:
            return Advice("visibility_timeout", OK, "Not a Redis broker",
                          "visibility_timeout applies to Redis (and SQS) only.", fix)
        return Advice("visibility_timeout", UNKNOWN, "No Redis client's options known yet",
                      "No online worker has answered inspect stats.", fix)
    who, shortest = min(timeouts, key=lambda t: t[1])
    longer: list[tuple[str, float]] = [lim for w in facts.workers for lim in w.time_limits()]
    if facts.longest_run is not None:
        name, seconds = facts.longest_run
        longer.append((f"the longest stored run of {name or 'an unknown task'}", seconds))
    if not longer:
        return Advice("visibility_timeout", UNKNOWN, "No runtime or time limit to compare with",
                      f"The shortest visibility_timeout is {duration(shortest)} ({who}); no task has a time "
                      "limit and no runtime is stored yet.", fix)
    what, seconds = max(longer, key=lambda t: t[1])
    if seconds < shortest:
        return Advice("visibility_timeout", OK, "visibility_timeout is longer than the tasks",
                      f"{duration(shortest)} ({who}) is longer than {what} ({duration(seconds)}).", fix)
    p99 = (f" Its p99 over the last day is {duration(facts.longest_p99)}."
           if facts.longest_p99 is not None and what.startswith("the longest") else "")
    return Advice("visibility_timeout", WARN, "visibility_timeout is shorter than tasks run",
                  f"The shortest visibility_timeout is {duration(shortest)} ({who}), shorter than {what} "
                  f"({duration(seconds)}).{p99}", fix)


def check_monitor_visibility_timeout(facts: Facts) -> Advice:
    fix = ("Run the monitor with the workers' app (-A proj) or give it their broker_transport_options. Any "
           "Redis client restores unacknowledged messages older than its own visibility_timeout, so a monitor "
           "with a shorter one puts the workers' in-flight messages back in the queue, and they run twice.")
    if facts.monitor_transport not in REDIS_TRANSPORTS:
        return Advice("monitor_visibility_timeout", OK, "Not a Redis broker",
                      "The monitor restores no messages on this broker.", fix)
    timeouts = visibility_timeouts(facts)
    workers = [(w, s) for w, s in timeouts if w != "this monitor"]
    if not workers:
        return Advice("monitor_visibility_timeout", UNKNOWN, "No worker's broker options known yet",
                      "No online worker has answered inspect stats.", fix)
    mine = dict(timeouts)["this monitor"]
    longer = [w for w, s in workers if s > mine]
    if longer:
        return Advice("monitor_visibility_timeout", WARN, "The monitor's visibility_timeout is shorter than the "
                      "workers'", f"The monitor uses {duration(mine)}; {names(longer)} use "
                      f"{duration(max(s for _, s in workers))}.", fix)
    return Advice("monitor_visibility_timeout", OK, "The monitor's visibility_timeout matches the workers'",
                  f"{duration(mine)}, not shorter than any worker's.", fix)


def check_prefetch_green(facts: Facts) -> Advice:
    fix = ("Set worker_prefetch_multiplier = 1 (or --prefetch-multiplier 1) on gevent and eventlet workers. "
           "Their concurrency is in the hundreds, so the default of 4 reserves four messages per greenlet: one "
           "worker hoards the queue while others idle, and on Redis every reserved message counts against "
           "visibility_timeout.")
    green = [w for w in facts.workers if any(p in w.pool for p in GREEN_POOLS)]
    if not any(w.stats is not None for w in facts.workers):
        return Advice("prefetch_green_pool", UNKNOWN, "No worker's pool known yet",
                      "No online worker has answered inspect stats.", fix)
    greedy = [w.hostname for w in green
              if not w.setting("worker_disable_prefetch", False) and (w.prefetch_multiplier() or 0) > 1]
    if greedy:
        return Advice("prefetch_green_pool", WARN, "gevent/eventlet workers prefetch more than one message each",
                      f"Green-pool workers with a multiplier above 1: {names(greedy)}.", fix)
    detail = f"{len(green)} gevent/eventlet workers, each with a multiplier of 1." if green else \
        "No online worker uses gevent or eventlet."
    return Advice("prefetch_green_pool", OK, "Prefetch suits the pools", detail, fix)


def check_prefetch_zero(facts: Facts) -> Advice:
    fix = ("Set worker_prefetch_multiplier to 1 (long tasks) or leave the default 4. Zero means no limit: a "
           "worker reserves every message it can get, so one worker takes the whole queue while the others "
           "idle, and on Redis messages held that long are delivered again after visibility_timeout.")
    known = [w for w in facts.workers if w.prefetch_multiplier() is not None]
    if not known:
        return Advice("prefetch_zero", UNKNOWN, "No worker's prefetch known yet",
                      "No online worker has answered inspect conf or stats.", fix)
    unlimited = [w.hostname for w in known
                 if w.prefetch_multiplier() == 0 and not w.setting("worker_disable_prefetch", False)]
    if unlimited:
        return Advice("prefetch_zero", WARN, "worker_prefetch_multiplier is 0 (unlimited prefetch)",
                      f"Workers with it 0: {names(unlimited)}.", fix)
    return Advice("prefetch_zero", OK, "Prefetch is limited", f"No worker of {len(known)} prefetches without "
                  "limit.", fix)


CHECKS: tuple[Callable[[Facts], Advice], ...] = (
    check_task_events, check_sent_event, check_track_started, check_visibility_timeout,
    check_monitor_visibility_timeout, check_prefetch_green, check_prefetch_zero)


def advise(ctx: DetectContext) -> list[Advice]:
    """Every check, in the order a page shows them."""
    facts = gather(ctx)
    return [check(facts) for check in CHECKS]


def config_doctor(ctx: DetectContext, params: dict[str, Any]) -> list[Finding]:
    return [Finding("config_doctor", a.check, "cluster", f"{a.title}. {a.detail}",
                    {"check": a.check, "title": a.title, "detail": a.detail, "fix": a.fix},
                    f"/doctor#advice-{a.check}")
            for a in advise(ctx) if a.status == WARN]


register(Detector(
    "config_doctor", "Configuration problem", "cluster", config_doctor, {},
    "Settings that hide tasks from the monitor or make Celery lose or repeat them: task events off, "
    "task_send_sent_event off, task_track_started off, a Redis visibility_timeout shorter than the tasks (or "
    "the monitor's shorter than the workers'), prefetch above 1 with gevent/eventlet, prefetch 0."))
