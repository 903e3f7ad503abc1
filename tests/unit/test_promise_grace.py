"""The grace a progress promise is judged with on the task page and in the API: the first stalled-task rule
that would call it broken, among the enabled ones covering the task's name; the default when none does."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.store import close_database
from webui.alerts import rules
from webui.alerts.rules import RuleSpec, promise_grace
from webui.progress_promise import GRACE_SECONDS
from webui.store.database import open_database
from webui.store.models import AlertRule
from webui.store.schema import upgrade


@pytest.fixture
def store(tmp_path) -> Iterator[None]:
    db = open_database(f"sqlite:///{tmp_path / 'rules.sqlite3'}")
    upgrade(db)
    try:
        with db.bind_ctx([AlertRule]), db.connection_context():
            yield
    finally:
        close_database(db)


def stalled(name: str, grace: float | None = None, scope: list[str] | None = None, enabled: bool = True) -> None:
    params = {} if grace is None else {"promise_grace_seconds": grace}
    rules.save(RuleSpec(name, "task_stalled", scope=scope or [], params=params, enabled=enabled), "ui")


def test_no_stalled_rule_means_the_default_grace(store):
    rules.save(RuleSpec("Lost tasks", "task_lost"), "ui")
    assert promise_grace("billing.charge") == GRACE_SECONDS


def test_a_rule_without_the_parameter_uses_the_detectors_default(store):
    stalled("Stalled tasks")
    assert promise_grace("billing.charge") == GRACE_SECONDS


def test_the_smallest_grace_of_the_rules_covering_the_name_wins(store):
    stalled("Stalled tasks", grace=60)
    stalled("Billing stalled", grace=20, scope=["billing.*"])
    stalled("Reports stalled", grace=2, scope=["reports.*"])  # another name's: not this task's
    stalled("Old billing rule", grace=1, scope=["billing.*"], enabled=False)  # switched off: no alert comes
    assert promise_grace("billing.charge") == 20
    assert promise_grace("reports.daily") == 2
    assert promise_grace("mail.send") == 60
    assert promise_grace(None) == 60  # a task of unknown name: only the rules scoped to everything
