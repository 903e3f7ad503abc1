"""The Prometheus text format: escaping, HELP/TYPE lines, and histograms as Prometheus reads them."""
from __future__ import annotations

import math

import pytest

from webui.metrics import Family, HistogramValue, format_bound, format_value, render


def test_it_writes_help_and_type_once_per_family_then_its_series() -> None:
    family = Family("celery_task_sent_total", "counter", "Tasks sent.")
    family.add({"name": "a"}, 3)
    family.add({"name": "b"}, 0)

    assert render([family]) == ('# HELP celery_task_sent_total Tasks sent.\n'
                                '# TYPE celery_task_sent_total counter\n'
                                'celery_task_sent_total{name="a"} 3\n'
                                'celery_task_sent_total{name="b"} 0\n')


def test_label_values_escape_backslashes_quotes_and_newlines() -> None:
    family = Family("x", "gauge", "Help with a \\ and a\nnewline.")
    family.add({"name": 'say "hi"\\now\nplease'}, 1)

    text = render([family])

    assert '# HELP x Help with a \\\\ and a\\nnewline.\n' in text
    assert 'x{name="say \\"hi\\"\\\\now\\nplease"} 1\n' in text


def test_a_family_without_series_still_says_what_it_is() -> None:
    assert render([Family("celery_queue_length", "gauge", "Depth.")]) == (
        "# HELP celery_queue_length Depth.\n# TYPE celery_queue_length gauge\n")


def test_a_histogram_has_cumulative_buckets_ending_in_inf_then_sum_and_count() -> None:
    family = Family("celery_task_runtime", "histogram", "Runtime.", bounds=(0.5, 1, 10))
    family.add({"name": "t"}, HistogramValue([2, 0, 3, 1], 17.25))

    lines = render([family]).splitlines()[2:]

    assert lines == [
        'celery_task_runtime_bucket{name="t",le="0.5"} 2',
        'celery_task_runtime_bucket{name="t",le="1.0"} 2',
        'celery_task_runtime_bucket{name="t",le="10.0"} 5',
        'celery_task_runtime_bucket{name="t",le="+Inf"} 6',
        'celery_task_runtime_sum{name="t"} 17.25',
        'celery_task_runtime_count{name="t"} 6',
    ]


def test_numbers_are_written_as_prometheus_reads_them() -> None:
    assert [format_value(v) for v in (3, 3.0, 0.25, math.inf, -math.inf, math.nan)] == [
        "3", "3", "0.25", "+Inf", "-Inf", "NaN"]
    assert [format_bound(b) for b in (0.005, 1, 300, math.inf)] == ["0.005", "1.0", "300.0", "+Inf"]


@pytest.mark.parametrize("make", [
    lambda: Family("bad-name", "gauge", "x"),
    lambda: Family("x", "summary", "x"),
    lambda: Family("x", "histogram", "x", bounds=(1, 1)),
    lambda: Family("x", "gauge", "x").add({"bad-label": "v"}, 1),
    lambda: Family("x", "histogram", "x", bounds=(1,)).add({"le": "1"}, HistogramValue([1, 0], 1)),
    lambda: Family("x", "histogram", "x", bounds=(1,)).add({}, HistogramValue([1], 1)),
    lambda: Family("x", "gauge", "x").add({}, HistogramValue([1], 1)),
], ids=["metric name", "type", "bounds", "label name", "le label", "bucket count", "gauge histogram"])
def test_it_refuses_what_prometheus_could_not_parse(make) -> None:
    with pytest.raises(ValueError):
        make()
