"""`/controls/…`: the buttons of the task, tasks and worker pages (webui.control does the sending).

Every control is a POST in two steps: the first shows what it will hit (this task, N matching tasks, this
worker) and asks to confirm; the second, with `confirm=1`, acts, writes the audit entry with the workers'
replies, and shows them: who acknowledged, who answered with an error, who stayed silent. Roles come from
`@requires` (operator for tasks and limits, admin for worker operations); CSRF from webui.auth.csrf.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlencode

from celery import Celery
from flask import Blueprint, current_app, render_template, request, url_for

from webui import audit, control
from webui.auth.access import requires
from webui.collector.merge import FAILURE, PENDING, RECEIVED, RETRY, STARTED
from webui.store import task_list, task_queries
from webui.store.models import Task
from webui.task_filters import FilterError, TaskFilter, parse

bp = Blueprint("controls", __name__)

TIMEOUT = 1.0  # seconds to wait for the workers' replies
BULK_CAP = 10_000  # a bulk control refuses to act on more matching tasks than this
UNFINISHED = (PENDING, RECEIVED, STARTED, RETRY)  # what revoking can still stop
WORKER_OPERATIONS = ("pool_restart", "pool_grow", "pool_shrink", "autoscale", "add_consumer", "cancel_consumer",
                     "shutdown")
LABELS = {"revoke": "Revoke", "terminate": "Terminate", "retry": "Retry", "rate_limit": "Set the rate limit",
          "time_limit": "Set the time limits", "pool_restart": "Restart the pool", "pool_grow": "Grow the pool",
          "pool_shrink": "Shrink the pool", "autoscale": "Set autoscale", "add_consumer": "Add a consumer",
          "cancel_consumer": "Cancel a consumer", "shutdown": "Shut the worker down"}


@dataclass
class Page:
    """What the control page shows: a confirmation, a result, or a problem; and where to go back."""

    action: str
    back: str
    back_label: str
    confirm: str | None = None  # what the action will hit, asked before acting
    fields: list[tuple[str, str]] = field(default_factory=list)  # re-posted with confirm=1
    danger: bool = False
    result: control.ControlResult | None = None
    notes: list[str] = field(default_factory=list)
    new_task: str | None = None
    problem: str | None = None


def _celery() -> Celery:
    app: Celery = current_app.extensions["webui_celery_app"]
    return app


def _database() -> Any:
    return current_app.config["WEBUI_DATABASE"]


def _confirmed() -> bool:
    return request.form.get("confirm") == "1"


def _render(page: Page, status: int | None = None) -> tuple[str, int]:
    if status is None:
        status = 200
        if page.problem:
            status = 400
        elif page.result is not None and page.result.error:
            status = 503
    html = render_template("controls/page.html", page_title=LABELS.get(page.action, page.action), page=page,
                           label=LABELS.get(page.action, page.action))
    return html, status


def _audit(result: control.ControlResult, **detail: Any) -> None:
    outcome = "ok" if result.ok else ("error" if result.error else "failed")
    audit.record(result.action, result.target, outcome, **result.summary(), **detail)


def _fields(*names: str) -> list[tuple[str, str]]:
    return [(name, request.form.get(name, "")) for name in names]


# --- One task ----------------------------------------------------------------------------------------------

def _task_or_problem() -> tuple[Task | None, Page]:
    task_id = request.form.get("task_id", "")
    task = task_queries.task_by_uuid(task_id) if task_id and len(task_id) <= 255 else None
    back = url_for("task.detail", task_id=task_id) if task is not None else url_for("tasks.index")
    page = Page("revoke", back, "Back to the task" if task is not None else "Tasks")
    if task is None:
        page.problem = "No task with that id is known to this monitor."
    return task, page


@bp.post("/controls/task/revoke")
@requires("operator")
def revoke_task() -> tuple[str, int]:
    """Revoke a queued task, or terminate a running one with the chosen signal."""
    task, page = _task_or_problem()
    if task is None:
        return _render(page, 404)
    terminate = request.form.get("terminate") == "1"
    page.action = "terminate" if terminate else "revoke"
    page.fields = _fields("task_id", "terminate", "signal")
    try:
        signal = control.validate_signal(request.form.get("signal") or "SIGTERM") if terminate else "SIGTERM"
    except ValueError as exc:
        page.problem = str(exc)
        return _render(page)
    if task.state not in UNFINISHED:
        page.problem = f"This task is {task.state}: it has finished, there is nothing left to revoke."
        return _render(page, 409)
    if not _confirmed():
        page.confirm = (f"Send {signal} to the process running task {task.uuid} ({task.name or 'name unknown'})"
                        if terminate else f"Revoke task {task.uuid} ({task.name or 'name unknown'}): every "
                        "worker will discard it instead of running it.")
        page.danger = terminate
        return _render(page)
    page.result = control.revoke(_celery(), [task.uuid], terminate=terminate, signal=signal, timeout=TIMEOUT)
    _audit(page.result, signal=signal if terminate else None)
    return _render(page)


@bp.post("/controls/task/retry")
@requires("operator")
def retry_task() -> tuple[str, int]:
    """Send a failed task again as a new task (new id, same root, parent: the failed one)."""
    task, page = _task_or_problem()
    page.action = "retry"
    if task is None:
        return _render(page, 404)
    page.fields = _fields("task_id")
    problem = control.retry_problem(task)
    if problem:
        page.problem = f"This task can't be retried: {problem}"
        return _render(page, 409)
    if not _confirmed():
        args = task.args or "()"
        shown = args if len(args) <= 300 else args[:300] + "…"
        page.confirm = (f"Send {task.name}{shown} again as a new task"
                        f"{' on queue ' + task.queue if task.queue else ''}; it will link back to this one.")
        return _render(page)
    page.result = control.retry(_celery(), task)
    if page.result.ok:
        page.new_task = page.result.target
    _audit(page.result, retried=task.uuid)
    return _render(page)


# --- Tasks matching a filter -------------------------------------------------------------------------------

def _filter(page: Page) -> TaskFilter | None:
    try:
        flt = parse(request.form, time.time())
    except FilterError as exc:
        page.problem = f"That filter can't be used: {exc}"
        return None
    query = flt.query_args()
    page.back = url_for("tasks.index") + ("?" + urlencode(query) if query else "")
    page.fields = [(key, value) for key, value in query]
    return flt


def _narrowed(flt: TaskFilter, states: tuple[str, ...]) -> TaskFilter | None:
    """`flt` limited to `states` (None when the filter's own states leave none of them)."""
    wanted = tuple(s for s in flt.states if s in states) if flt.states else states
    return replace(flt, states=wanted, cursor=None) if wanted else None


def _matching(flt: TaskFilter | None) -> Iterator[Task]:
    if flt is None:
        return iter(())
    return task_list.iter_all(_database(), flt)


def _take(tasks: Iterator[Task], cap: int) -> tuple[list[Task], bool]:
    """Up to `cap` tasks, and whether there were more."""
    taken: list[Task] = []
    for task in tasks:
        if len(taken) == cap:
            return taken, True
        taken.append(task)
    return taken, False


def _too_many(page: Page, what: str) -> tuple[str, int]:
    page.problem = (f"More than {BULK_CAP:,} tasks match: {what} acts on at most {BULK_CAP:,} at once. "
                    "Narrow the filter (a task name, a time range) and try again.")
    return _render(page, 413)


@bp.post("/controls/tasks/revoke")
@requires("operator")
def revoke_matching() -> tuple[str, int]:
    """Revoke every unfinished task the tasks page's filter matches: a count first, then the revoke."""
    page = Page("revoke", url_for("tasks.index"), "Back to the tasks")
    flt = _filter(page)
    if flt is None:
        return _render(page)
    tasks, more = _take(_matching(_narrowed(flt, UNFINISHED)), BULK_CAP)
    if more:
        return _too_many(page, "revoking")
    if not tasks:
        page.notes.append("No unfinished task (pending, received, started or retrying) matches this filter: "
                          "nothing to revoke.")
        return _render(page)
    if not _confirmed():
        page.confirm = (f"This will revoke {len(tasks):,} unfinished task{'s' if len(tasks) != 1 else ''} "
                        "matching the filter (finished ones are left alone). Running ones are not stopped: "
                        "revoke stops a task before it starts.")
        page.danger = True
        return _render(page)
    page.result = control.revoke(_celery(), [t.uuid for t in tasks], timeout=TIMEOUT)
    if not page.result.error:
        page.notes.append(f"Asked every worker to revoke {len(tasks):,} task{'s' if len(tasks) != 1 else ''}.")
    _audit(page.result, count=len(tasks), filter=dict(flt.query_args()))
    return _render(page)


@bp.post("/controls/tasks/retry")
@requires("operator")
def retry_matching() -> tuple[str, int]:
    """Retry every failed task the filter matches whose arguments are complete: a count first, then the sends."""
    page = Page("retry", url_for("tasks.index"), "Back to the tasks")
    flt = _filter(page)
    if flt is None:
        return _render(page)
    tasks, more = _take(_matching(_narrowed(flt, (FAILURE,))), BULK_CAP)
    if more:
        return _too_many(page, "retrying")
    problems: dict[str, int] = {}
    retryable = []
    for task in tasks:
        problem = control.retry_problem(task)
        if problem:
            problems[problem] = problems.get(problem, 0) + 1
        else:
            retryable.append(task)
    page.notes += [f"{count:,} can't be retried: {reason}" for reason, count in problems.items()]
    if not retryable:
        page.notes.insert(0, "No failed task that can be retried matches this filter: nothing to send.")
        return _render(page)
    if not _confirmed():
        page.confirm = (f"This will send {len(retryable):,} failed task{'s' if len(retryable) != 1 else ''} "
                        "again, each as a new task with the same arguments, linked back to the failed one.")
        return _render(page)
    page.result, sent = _retry_all(retryable)
    page.notes.insert(0, f"Sent {sent:,} of {len(retryable):,} again.")
    _audit(page.result, count=sent, filter=dict(flt.query_args()))
    return _render(page)


def _retry_all(tasks: list[Task]) -> tuple[control.ControlResult, int]:
    """Re-send each task on one producer; stop at the first broker error."""
    app = _celery()
    sent = 0
    try:
        with app.producer_or_acquire() as producer:
            for task in tasks:
                result = control.retry(app, task, producer=producer)
                if result.error:
                    return replace(result, target=f"{len(tasks)} tasks"), sent
                sent += 1
    except Exception as exc:  # noqa: BLE001 - the broker went away between sends
        return control.ControlResult("retry", f"{len(tasks)} tasks", error=f"broker unreachable: {exc}"), sent
    return control.ControlResult("retry", f"{len(tasks)} tasks"), sent


# --- Workers -----------------------------------------------------------------------------------------------

def _worker_page(action: str) -> tuple[str, Page]:
    hostname = request.form.get("hostname", "")
    back = url_for("workers.detail", hostname=hostname) if hostname else url_for("workers.index")
    return hostname, Page(action, back, "Back to the worker" if hostname else "Workers")


def _scope(hostname: str) -> list[str] | None:
    return None if request.form.get("scope") == "all" else [hostname]


def _seconds(name: str) -> float | None:
    text = request.form.get(name, "").strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"The {name.replace('_', ' ')} limit must be a number of seconds; got {text[:20]!r}.")\
            from None


def _int_field(name: str, default: int | None = None) -> int:
    text = request.form.get(name, "").strip()
    if not text and default is not None:
        return default
    if not text.isdigit() or len(text) > 6:
        raise ValueError(f"{name} must be a whole number; got {text[:20]!r}.")
    return int(text)


MEMORY_NOTE = ("Limits set here live in the worker's memory: they are lost when the worker restarts and never "
               "reach workers that start later. Set them in the task's code or configuration to keep them.")


@bp.post("/controls/worker/rate-limit")
@requires("operator")
def rate_limit() -> tuple[str, int]:
    """Set one task type's rate limit on this worker or on all."""
    hostname, page = _worker_page("rate_limit")
    page.fields = _fields("hostname", "task_name", "rate", "scope")
    page.notes.append(MEMORY_NOTE)
    task_name, rate = request.form.get("task_name", ""), request.form.get("rate", "")
    workers = _scope(hostname)
    try:
        control.check_name(task_name, "task name")
        control.check_workers(workers)
        problem = control.validate_rate(rate)
        if problem:
            raise ValueError(problem)
    except ValueError as exc:
        page.problem = str(exc)
        return _render(page)
    if not _confirmed():
        where = "every worker that has it" if workers is None else hostname
        page.confirm = f"Set the rate limit of {task_name} to {rate.strip()} on {where}."
        return _render(page)
    page.result = control.rate_limit(_celery(), task_name, rate, workers=workers, timeout=TIMEOUT)
    _audit(page.result, rate=rate, workers=workers or "all")
    return _render(page)


@bp.post("/controls/worker/time-limit")
@requires("operator")
def time_limit() -> tuple[str, int]:
    """Set one task type's soft and hard time limits on this worker or on all."""
    hostname, page = _worker_page("time_limit")
    page.fields = _fields("hostname", "task_name", "soft", "hard", "scope")
    page.notes.append(MEMORY_NOTE)
    task_name = request.form.get("task_name", "")
    workers = _scope(hostname)
    try:
        soft, hard = _seconds("soft"), _seconds("hard")
        control.check_name(task_name, "task name")
        control.check_workers(workers)
        control.check_seconds(soft, "soft time limit")
        control.check_seconds(hard, "hard time limit")
        if soft is not None and hard is not None and soft > hard:
            raise ValueError(f"The soft time limit ({soft:g} s) must not exceed the hard one ({hard:g} s).")
    except ValueError as exc:
        page.problem = str(exc)
        return _render(page)
    if not _confirmed():
        where = "every worker that has it" if workers is None else hostname
        limits = ", ".join(f"{k} {'none' if v is None else f'{v:g} s'}" for k, v in (("soft", soft), ("hard", hard)))
        page.confirm = f"Set the time limits of {task_name} to {limits} on {where}, for its next runs."
        return _render(page)
    page.result = control.time_limit(_celery(), task_name, soft=soft, hard=hard, workers=workers, timeout=TIMEOUT)
    _audit(page.result, soft=soft, hard=hard, workers=workers or "all")
    return _render(page)


@bp.post("/controls/worker/<any(" + ", ".join(WORKER_OPERATIONS) + "):operation>")
@requires("admin")
def worker_operation(operation: str) -> tuple[str, int]:
    """Pool restart, grow, shrink, autoscale, add or cancel a consumer, shutdown: on one worker."""
    hostname, page = _worker_page(operation)
    page.fields = _fields("hostname", "n", "max", "min", "queue")
    try:
        control.check_name(hostname, "worker name")
        call, description = _operation(operation, hostname)
    except ValueError as exc:
        page.problem = str(exc)
        return _render(page)
    if not _confirmed():
        page.confirm = description
        page.danger = operation in ("shutdown", "pool_restart", "cancel_consumer")
        return _render(page)
    page.result = call()
    if operation == "shutdown" and page.result.ok:
        page.notes.append("Sent. A worker sends no reply to shutdown: it finishes its running tasks, then exits "
                          "(the workers page shows it offline once it has).")
    _audit(page.result, **{k: v for k, v in page.fields if v and k != "hostname"})
    return _render(page)


def _operation(operation: str, hostname: str) -> tuple[Any, str]:
    """The call for `operation` with the form's arguments (validated), and what it will do."""
    app = _celery()
    if operation in ("pool_grow", "pool_shrink"):
        n = _int_field("n", 1)
        control.check_count(n, "n")
        verb = "Add" if operation == "pool_grow" else "Remove"
        return (lambda: getattr(control, operation)(app, hostname, n, timeout=TIMEOUT),
                f"{verb} {n} pool process{'es' if n != 1 else ''} {'to' if verb == 'Add' else 'from'} {hostname}.")
    if operation == "autoscale":
        high, low = _int_field("max"), _int_field("min")
        control.check_count(high, "max")
        control.check_count(low, "min", zero=True)
        if low > high:
            raise ValueError(f"min ({low}) must not exceed max ({high}).")
        return (lambda: control.autoscale(app, hostname, high, low, timeout=TIMEOUT),
                f"Let {hostname} autoscale between {low} and {high} processes (it needs --autoscale).")
    if operation in ("add_consumer", "cancel_consumer"):
        queue = control.check_name(request.form.get("queue", "").strip(), "queue name")
        verb = "start consuming from" if operation == "add_consumer" else "stop consuming from"
        return (lambda: getattr(control, operation)(app, hostname, queue, timeout=TIMEOUT),
                f"Make {hostname} {verb} queue {queue} (until it restarts).")
    if operation == "pool_restart":
        return (lambda: control.pool_restart(app, hostname, timeout=TIMEOUT),
                f"Restart the pool processes of {hostname}: running tasks are cut off. The worker needs "
                "worker_pool_restarts = True, or it refuses.")
    return (lambda: control.shutdown(app, hostname),
            f"Shut {hostname} down: it stops taking tasks, finishes the running ones and exits. Nothing here "
            "can start it again.")


# --- What the pages' control panels need -------------------------------------------------------------------

SIGNALS = ("SIGTERM", "SIGKILL", "SIGINT", "SIGQUIT", "SIGUSR1", "SIGHUP")


@dataclass
class WorkerLimits:
    tasks: list[tuple[str, dict[str, str]]]  # registered task names with what `registered` said of them
    pool_timeouts: Any  # stats.pool.timeouts: the worker's own soft and hard defaults
    pool_restarts: bool | None  # worker_pool_restarts from its conf (None: conf not inspected)


def worker_limits(view: Any) -> WorkerLimits:
    """The limits the stored inspection reports for a worker (webui.store.worker_queries.WorkerView)."""
    tasks = sorted(control.registered_limits(entry) for entry in view.replies("registered"))
    timeouts = view.pool.get("timeouts")
    conf = view.data.get("conf")
    restarts = bool(conf.get("worker_pool_restarts")) if isinstance(conf, dict) else None
    shown = timeouts if isinstance(timeouts, list) and any(t for t in timeouts) else None
    return WorkerLimits(tasks, shown, restarts)


@bp.app_context_processor
def _control_helpers() -> dict[str, Any]:
    return {"retry_problem": control.retry_problem, "worker_limits": worker_limits,
            "control_states": {"unfinished": UNFINISHED, "signals": SIGNALS}}
