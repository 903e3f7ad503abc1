"""Workers grouped by stable name: Kubernetes pod names lose their random suffixes, other hostnames stay."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from webui.settings import SettingsError, default_settings
from webui.worker_groups import DEFAULT_PATTERN, group, group_name, pattern_problem

DEFAULT = re.compile(DEFAULT_PATTERN)
DOCS = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


@pytest.mark.parametrize(("hostname", "name"), [
    ("celery@myapp-7d9f8b6c5d-x2x9k", "celery@myapp"),  # Deployment: ReplicaSet hash + pod suffix
    ("celery@myapp-7d9f8b6c5d-qw4zt", "celery@myapp"),
    ("celery@payments-worker-5c9d8f7b49-qw4zt", "celery@payments-worker"),
    ("default@api-6f7c9d8b5-k8z2p", "default@api"),  # several nodes per pod keep their node name
    ("priority@api-6f7c9d8b5-k8z2p", "priority@api"),
    ("celery@myapp-x2x9k", "celery@myapp"),  # DaemonSet
    ("celery@myapp-0", "celery@myapp"),  # StatefulSet ordinals
    ("celery@myapp-12", "celery@myapp"),
])
def test_it_strips_kubernetes_pod_suffixes(hostname, name):
    assert group_name(hostname, DEFAULT) == name


@pytest.mark.parametrize("hostname", [
    "celery@worker1", "celery@ip-10-0-0-1", "celery@host.example.com", "w1@h", "celery@web-stats",
    "celery@myapp-7d9f8b6c5d-abcde",  # vowels: not a Kubernetes suffix
    "celery@MyApp-7d9f8b6c5d-x2x9k",  # pod names are lowercase
    "celery@",
])
def test_plain_hostnames_stay_as_they_are(hostname):
    assert group_name(hostname, DEFAULT) == hostname


def test_no_pattern_means_no_grouping():
    assert group_name("celery@myapp-7d9f8b6c5d-x2x9k", None) == "celery@myapp-7d9f8b6c5d-x2x9k"


def test_a_custom_pattern_names_the_group_by_its_one_group():
    assert group_name("celery@billing-eu-3", re.compile(r"^(celery@[a-z]+)-")) == "celery@billing"


def test_groups_with_a_worker_online_come_first_and_keep_online_and_offline_apart():
    online = ["celery@b-7d9f8b6c5d-x2x9k", "celery@solo"]
    offline = ["celery@a-0", "celery@b-7d9f8b6c5d-qw4zt", "celery@b-6c5d7d9f8b-zz2kk"]
    groups = group(online, offline, lambda h: h, DEFAULT)
    assert [(g.name, g.online, g.offline) for g in groups] == [
        ("celery@b", ["celery@b-7d9f8b6c5d-x2x9k"], ["celery@b-7d9f8b6c5d-qw4zt", "celery@b-6c5d7d9f8b-zz2kk"]),
        ("celery@solo", ["celery@solo"], []),
        ("celery@a", [], ["celery@a-0"]),
    ]
    assert [g.single for g in groups] == [False, True, True]


def test_the_setting_refuses_a_pattern_without_exactly_one_group():
    assert pattern_problem(DEFAULT_PATTERN) is None
    assert "exactly one group" in (pattern_problem(r"^celery@(\w+)-(\d+)$") or "")
    assert "not a valid regular expression" in (pattern_problem("(") or "")
    with pytest.raises(SettingsError, match="worker_group_pattern.*exactly one group"):
        default_settings(worker_group_pattern=r"^celery@\w+")


def test_an_empty_setting_turns_grouping_off():
    assert default_settings(worker_group_pattern="").worker_group_pattern is None
    assert default_settings().worker_group_pattern == DEFAULT_PATTERN


def test_the_docs_show_the_default_pattern():
    assert f"\n{DEFAULT_PATTERN}\n" in DOCS.read_text()
