"""Exports: one flat record per task, ISO times in UTC, and no spreadsheet formulas smuggled in by arguments."""
from __future__ import annotations

import csv
import io
import json
from types import SimpleNamespace

from webui.task_export import FIELDS, csv_lines, json_lines


def task(**fields):
    base = {f: None for f in FIELDS}
    base.update(succeeded_at=None, failed_at=None, revoked_at=None, rejected_at=None, cancelled_at=None)
    base.update(uuid="t-1", name="proj.add", state="SUCCESS", retries=0)
    base.update(fields)
    return SimpleNamespace(**base)


def test_a_csv_cell_a_spreadsheet_would_run_as_a_formula_is_neutralised():
    rows = list(csv.reader(io.StringIO("".join(csv_lines([task(args="=HYPERLINK(\"http://x\")", result="-1+2",
                                                                  kwargs="(1, 2)")])))))

    assert rows[0] == list(FIELDS)
    record = dict(zip(rows[0], rows[1], strict=True))
    assert record["args"] == "'=HYPERLINK(\"http://x\")" and record["result"] == "'-1+2"
    assert record["kwargs"] == "(1, 2)"


def test_times_are_iso_utc_and_finished_is_the_end_whatever_it_was():
    exported = json.loads("".join(json_lines([task(received_at=0.5, failed_at=60.25, state="FAILURE")])))

    assert exported[0]["received_at"] == "1970-01-01T00:00:00.500+00:00"
    assert exported[0]["finished_at"] == "1970-01-01T00:01:00.250+00:00"
    assert exported[0]["root_id"] == "t-1", "a task with no root_id is its own root"


def test_an_empty_export_is_still_valid():
    assert json.loads("".join(json_lines([]))) == []
    assert list(csv.reader(io.StringIO("".join(csv_lines([]))))) == [list(FIELDS)]
