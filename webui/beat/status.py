"""Judge a beat entry from its schedule and the fires seen: on time, late, missed — and drift, too often, beat down.

Pure logic on plain data (no database, no clock of its own), so every rule is tested with made-up fires.
`as_of` is the moment the evidence is complete up to: the end of the watcher's last pass, not "now", because
a fire that happened after that pass is not in the store yet and must not make an entry look late.

States, like a cron monitor's:
- on_time: the next fire is not yet due past its grace;
- late: due + grace has passed without a fire;
- missed: the slot after that one has passed too (its grace included);
- waiting: never seen to fire, and its first due time since we started watching has not passed;
- disabled, removed, unknown (a schedule we cannot compute), done (a one-off that has fired).

Fires the companion in beat stamped (webui.agent.beat) carry the time their slot was due: lateness is the fire's
time minus that, and a duplicate is two fires of one due time, exactly; fires without a stamp (events only) are
matched to their slots by inference, as before. An attempt whose publish failed (`Fire.failed`) is not a fire:
the slot stays unfired, and a late or missed entry names the failure (`EntryStatus.publish_failed`).
"""
from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from webui.beat import schedule_spec

ON_TIME, LATE, MISSED, WAITING = "on_time", "late", "missed", "waiting"
DISABLED, REMOVED, UNKNOWN, DONE = "disabled", "removed", "unknown", "done"
PROBLEM_STATES = (LATE, MISSED)
UNJUDGED = (DISABLED, REMOVED, UNKNOWN, DONE)  # states that say nothing about beat running

GRACE_SHARE = 0.2  # of the period
GRACE_MIN = 5.0
GRACE_MAX = 15 * 60.0
# A fire lands "off schedule" when it is this late against its slot (between DRIFT_MIN and _MAX_SECONDS): the
# midnight job that runs at 00:23. Checked only for slot-aligned schedules (crontab, solar).
DRIFT_SHARE = 0.02
DRIFT_MIN_SECONDS = 60.0
DRIFT_MAX_SECONDS = 600.0
DRIFT_MIN_FIRES = 3
# Two fires closer than this share of the period are one too many (two beats, or a manual run).
TOO_OFTEN_SHARE = 0.5
TOO_OFTEN_MIN_GAPS = 2
MAX_COUNTED_MISSES = 1000
# Two stamped due times this close are one slot: beat computes a due time as now + the time remaining, so two
# computations of the same slot differ by the microseconds between their clock reads.
SAME_DUE = 0.5
NO_TASK_PREFIX = "publish-failed:"  # the key of a failed publish's row when it names no task (beat_rows)


@dataclass(frozen=True)
class Fire:
    at: float
    task_uuid: str | None = None
    sender: str | None = None  # hostname:pid of the task-sent event
    state: str | None = None  # the task's state now: its outcome
    due: float | None = None  # the slot's due time, as the companion in beat stamped it
    failed: str | None = None  # the exception of a publish that failed: beat's attempt, not a fire

    @property
    def task_id(self) -> str | None:
        """The task to link to: none for a failed publish that never got as far as a task-sent record."""
        if self.task_uuid is None or self.task_uuid.startswith(NO_TASK_PREFIX):
            return None
        return self.task_uuid

    @property
    def lateness(self) -> float | None:
        """Seconds after its stamped due time; None without a stamp."""
        return self.at - self.due if self.due is not None else None


@dataclass(frozen=True)
class EntryFacts:
    """What the store knows of one entry: its definition, the scheduler's record, and recent fires."""

    name: str
    schedule: dict
    enabled: bool = True
    removed: bool = False
    first_seen: float = 0.0
    last_run_at: float | None = None  # the scheduler's own record
    record_lag: float = 0.0  # how stale that record may be
    fires: Sequence[Fire] = ()  # newest first
    grace: float | None = None  # an explicit grace (beat_grace); None: derived from the period
    timezone: str | None = None  # the app's timezone, for crontabs without their own


@dataclass(frozen=True)
class EntryStatus:
    state: str
    grace: float
    period: float | None = None
    last_fired_at: float | None = None
    last_fired_from: str | None = None  # "events" or "scheduler": what says it fired
    next_due_at: float | None = None
    overdue_by: float | None = None  # seconds past due, when late or missed
    missed_count: int = 0  # scheduled slots passed without a fire (for "missed ×N" alerts)
    drift: float | None = None  # typical lateness against the slot, when fires land consistently late
    too_often: str | None = None  # why it fires more often than scheduled
    last_outcome: str | None = None
    fires: tuple[Fire, ...] = field(default_factory=tuple)  # failed attempts included
    publish_failed: Fire | None = None  # late or missed, and beat's attempt at the slot failed to publish

    @property
    def problem(self) -> bool:
        return self.state in PROBLEM_STATES


def derived_grace(period: float | None) -> float:
    """A fifth of the period, between 5 s and 15 min: beat's own loop and our reads add seconds of jitter."""
    if period is None:
        return GRACE_MAX
    return min(max(period * GRACE_SHARE, GRACE_MIN), GRACE_MAX)


def judge(facts: EntryFacts, as_of: float) -> EntryStatus:
    """The entry's state as of `as_of` (see the module docstring)."""
    spec, tz = facts.schedule, facts.timezone
    fired = [f for f in facts.fires if f.failed is None]
    newest_fire = fired[0].at if fired else None
    # A record ahead of the evidence is a slot marked done before it came (a skipped run), not a run yet.
    record = facts.last_run_at if facts.last_run_at is None or facts.last_run_at <= as_of else None
    last, source = _last_fired(newest_fire, record)
    period = schedule_spec.period(spec, last if last is not None else as_of, tz)
    grace = facts.grace if facts.grace is not None else derived_grace(period)
    # Only the scheduler's lagging record says it fired: it may have fired since without our knowing yet.
    if source == "scheduler":
        grace += facts.record_lag
    base = EntryStatus(UNKNOWN, grace=grace, period=period, last_fired_at=last, last_fired_from=source,
                       last_outcome=fired[0].state if fired else None, fires=tuple(facts.fires),
                       drift=drift(fired, spec, tz), too_often=too_often(fired, period))
    if facts.removed:
        return replace(base, state=REMOVED)
    if not facts.enabled:
        return replace(base, state=DISABLED)
    if spec.get("kind") == "unknown":
        return base
    due = schedule_spec.next_due(spec, last if last is not None else facts.first_seen, tz)
    if due is None:
        return replace(base, state=DONE if last is not None else UNKNOWN)
    if as_of <= due + grace:
        return replace(base, state=ON_TIME if last is not None else WAITING, next_due_at=due)
    misses = _count_misses(spec, due, as_of, grace, tz)
    following = schedule_spec.next_due(spec, due, tz)
    state = MISSED if following is None or as_of > following + grace else LATE
    return replace(base, state=state, next_due_at=due, overdue_by=as_of - due, missed_count=misses,
                   publish_failed=_failed_attempt(facts.fires, last))


def _failed_attempt(fires: Sequence[Fire], last: float | None) -> Fire | None:
    """The newest publish that failed since the entry last fired: why the slot has no fire."""
    for fire in fires:
        if fire.failed is not None and (last is None or fire.at >= last):
            return fire
    return None


def _last_fired(newest_fire: float | None, record: float | None) -> tuple[float | None, str | None]:
    """Whichever evidence is newer: a fire in the events, or the scheduler's own last-run record."""
    if newest_fire is None and record is None:
        return None, None
    if record is None or (newest_fire is not None and newest_fire >= record):
        return newest_fire, "events"
    return record, "scheduler"


def _count_misses(spec: dict, due: float, as_of: float, grace: float, tz: str | None) -> int:
    count, slot = 0, due
    while slot + grace < as_of and count < MAX_COUNTED_MISSES:
        count += 1
        following = schedule_spec.next_due(spec, slot, tz)
        if following is None:
            break
        slot = following
    return count


def drift(fires: Sequence[Fire], spec: dict, tz: str | None) -> float | None:
    """The median lateness of the recent fires against their slots, when every one of them lands late.

    A job that fires at 00:23 every night instead of 00:00 is running, but not when its owner thinks: an
    overloaded beat, a long-blocking task before it in beat's loop, or a wrong timezone.
    """
    recent = fires[:10]
    if len(recent) < DRIFT_MIN_FIRES:
        return None
    lateness = []
    for fire in recent:
        # A stamped fire says which slot it was for; an unstamped one is taken for the latest slot before it.
        slot = fire.due if fire.due is not None else schedule_spec.previous_slot(spec, fire.at, tz)
        if slot is None:
            return None
        lateness.append(fire.at - slot)
    period = schedule_spec.period(spec, recent[0].at, tz) or 0.0
    threshold = max(DRIFT_MIN_SECONDS, min(period * DRIFT_SHARE, DRIFT_MAX_SECONDS))
    if min(lateness) < threshold:
        return None
    return statistics.median(lateness)


def too_often(fires: Sequence[Fire], period: float | None) -> str | None:
    """Why the entry fires more often than its schedule says, or None.

    Two beat processes (a classic cause of duplicate runs) show as fires from two senders interleaving; a manual
    run of the same task with the same arguments shows as one short gap, so one alone is not enough.
    """
    recent = fires[:20]
    doubled = duplicate_slots(recent)
    if doubled:
        return f"{doubled} slot{'s' if doubled != 1 else ''} fired more than once (the same due time)" \
            + _senders_note(recent)
    if period is None or len(fires) < 3:
        return None
    short = [a for a, b in zip(recent, recent[1:], strict=False) if a.at - b.at < period * TOO_OFTEN_SHARE]
    if len(short) < TOO_OFTEN_MIN_GAPS:
        return None
    senders = sorted({f.sender for f in recent if f.sender})
    if len(senders) > 1:
        return f"fires come from {len(senders)} senders ({', '.join(senders[:3])}): two beat processes?"
    return f"{len(short)} of the last {len(recent) - 1} gaps between fires were under half the period"


def duplicate_slots(fires: Sequence[Fire]) -> int:
    """How many stamped due times have more than one fire: each is a slot sent twice, exactly."""
    dues = sorted(f.due for f in fires if f.due is not None)
    doubled, previous, counted = 0, None, False
    for due in dues:
        same = previous is not None and due - previous <= SAME_DUE
        if same and not counted:
            doubled += 1
        counted = same
        previous = due
    return doubled


def _senders_note(fires: Sequence[Fire]) -> str:
    senders = sorted({f.sender for f in fires if f.sender})
    if len(senders) > 1:
        return f", from {len(senders)} senders ({', '.join(senders[:3])}): two beat processes?"
    return ""


@dataclass(frozen=True)
class BeatLiveness:
    state: str  # "up", "down" or "unknown"
    reason: str
    last_fire_at: float | None = None


def liveness(statuses: Sequence[EntryStatus], as_of: float, *, pong_at: float | None = None,
             ping_at: float | None = None) -> BeatLiveness:
    """Is beat running? Beat sends nothing of its own, so judge by its fires, and by pings when it answers them.

    Down when no entry has fired for longer than the shortest period plus its grace; a beat that has answered
    remote-control pings before and stopped answering is down even before anything is due.
    """
    if pong_at is not None and ping_at is not None and ping_at > pong_at:
        return BeatLiveness("down", "beat answered remote-control pings until "
                            f"{_ago(as_of - pong_at)} ago and has stopped answering")
    active = [s for s in statuses if s.state not in UNJUDGED]
    fired = [s.last_fired_at for s in active if s.last_fired_at is not None]
    last_fire = max(fired) if fired else None
    periodic = [s for s in active if s.period is not None]
    if not periodic:
        if pong_at is not None:
            return BeatLiveness("up", "beat answers remote-control pings", last_fire)
        return BeatLiveness("unknown", "no enabled periodic entry to judge beat by", last_fire)
    shortest = min(periodic, key=lambda s: s.period or 0.0)
    limit = (shortest.period or 0.0) + shortest.grace
    if last_fire is None:
        if pong_at is not None:
            return BeatLiveness("up", "beat answers remote-control pings; no fire seen yet", None)
        return BeatLiveness("unknown", "no fire seen yet from any entry", None)
    silence = as_of - last_fire
    if silence > limit:
        return BeatLiveness("down", f"no entry has fired for {_ago(silence)}; the shortest period is "
                            f"{_ago(shortest.period or 0.0)} (plus {_ago(shortest.grace)} grace)", last_fire)
    evidence = "answers pings and " if pong_at is not None else ""
    return BeatLiveness("up", f"beat {evidence}fired {_ago(silence)} ago", last_fire)


def _ago(seconds: float) -> str:
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}".replace(".0 ", " ")
    return f"{seconds:.0f} s"
