"""Query parameters of the tasks list: what they mean, and a clear message for each bad one."""
from __future__ import annotations

import datetime

import pytest
from werkzeug.datastructures import MultiDict

from webui.task_filters import Cursor, FilterError, parse

NOW = 1_800_000_000.0


def test_no_parameters_mean_every_task_newest_first():
    f = parse(MultiDict(), NOW)

    assert not f.active and f.sort == "newest" and f.limit == 50 and f.cursor is None


def test_several_states_either_repeated_or_comma_separated_case_insensitively():
    f = parse(MultiDict([("state", "failure,retry"), ("state", "SUCCESS"), ("state", "RETRY")]), NOW)

    assert f.states == ("FAILURE", "RETRY", "SUCCESS")


def test_a_range_preset_starts_that_long_ago():
    f = parse(MultiDict({"range": "1h"}), NOW)

    assert f.after == NOW - 3600 and f.before is None and f.range == "1h"


def test_a_time_without_a_zone_is_in_the_viewers_offset():
    f = parse(MultiDict({"from": "2027-01-15T10:00", "tz": "60"}), NOW)

    utc = datetime.datetime(2027, 1, 15, 9, 0, tzinfo=datetime.timezone.utc).timestamp()
    assert f.after == utc
    assert parse(MultiDict({"from": "2027-01-15T09:00Z"}), NOW).after == utc


def test_the_filter_round_trips_through_its_query_arguments():
    args = MultiDict([("state", "FAILURE"), ("name", "proj.add"), ("q", "bob"), ("sort", "slowest"),
                      ("runtime_min", "2"), ("cursor", "2.5:17")])
    f = parse(args, NOW)

    again = parse(MultiDict(f.query_args(cursor=True)), NOW)

    assert again == f
    assert f.cursor == Cursor(17, 2.5)


@pytest.mark.parametrize("args, message", [
    ({"state": "DONE"}, "Unknown state 'DONE'"),
    ({"sort": "random"}, "'sort' must be one of"),
    ({"limit": "0"}, "'limit' must be between 1 and 500"),
    ({"limit": "many"}, "'limit' must be a whole number"),
    ({"runtime_min": "-1"}, "from 0"),
    ({"runtime_min": "abc"}, "a number of seconds"),
    ({"runtime_min": "5", "runtime_max": "1"}, "no task can match"),
    ({"from": "yesterday"}, "must be a time like"),
    ({"from": "2027-01-02", "to": "2027-01-01"}, "earlier than"),
    ({"range": "1y"}, "'range' must be one of"),
    ({"range": "1h", "from": "2027-01-01"}, "not both"),
    ({"time_field": "sent"}, "'time_field' must be one of"),
    ({"q": "x" * 201}, "at most 200 characters"),
    ({"name": "n" * 256}, "at most 255 characters"),
    ({"worker": "a\nb"}, "control characters"),
    ({"cursor": "'; DROP TABLE task"}, "not one this page made"),
    ({"cursor": "12", "sort": "slowest"}, "another sort order"),
    ({"tz": "9999"}, "'tz' must be between"),
])
def test_a_bad_parameter_is_refused_with_a_message_that_says_what_is_wrong(args, message):
    with pytest.raises(FilterError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse(MultiDict(args), NOW)


def test_a_parameter_given_twice_is_refused_where_only_one_makes_sense():
    with pytest.raises(FilterError, match="given 2 times"):
        parse(MultiDict([("q", "a"), ("q", "b")]), NOW)
