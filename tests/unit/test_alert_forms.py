"""The alerts editors' forms as plain data: what a rule's and a channel's fields become, what cannot be read, and
that a secret left blank keeps the saved one. The pages' behaviour is in tests/integration/test_alerts_pages.py.
"""
from __future__ import annotations

import pytest
from werkzeug.datastructures import MultiDict

from webui.alerts.channels import CHANNELS
from webui.alerts.rules import RuleSpec
from webui.detect.registry import Detector, Param
from webui.views.alerts import minutes_text
from webui.views.alerts_channels import FIELDS, config_from_form
from webui.views.alerts_rules import form_of, read_form, spec_from_form

DETECTORS = {"stall": Detector("stall", "Stalled", "task", lambda ctx, params: [], params={
    "multiplier": Param(10, "times the p95", 1, 1000), "ratio": Param(0.5, "share"), "strict": Param(False, "x"),
    "queue": Param("celery", "which queue")})}


def form(**fields: str | list[str]) -> MultiDict[str, str]:
    data = MultiDict()
    for key, value in {"name": "Stalls", "detector": "stall", "consecutive": "1", **fields}.items():
        for item in value if isinstance(value, list) else [value]:
            data.add(key, item)
    return data


def test_it_reads_each_field_into_the_rule_spec():
    spec, problems = spec_from_form(read_form(form(**{
        "scope": " tasks.a.*\r\n\n tasks.b \n", "param.multiplier": "20", "param.ratio": "0.25",
        "param.strict": "true", "param.queue": "billing", "severity": "critical", "channels": ["a", "b", "a"],
        "consecutive": "3", "renotify": "90", "aggregate_min": "5", "enabled": "1"})), DETECTORS)
    assert problems == []
    assert spec == RuleSpec("Stalls", "stall", ["tasks.a.*", "tasks.b"], {
        "multiplier": 20, "ratio": 0.25, "strict": True, "queue": "billing", "aggregate_min": 5}, "critical",
        ["a", "b"], True, 3, 90)


def test_blank_parameters_keep_their_defaults_and_other_detectors_inputs_are_ignored():
    spec, problems = spec_from_form(read_form(form(**{"param.multiplier": "", "param.minutes": "5"})), DETECTORS)
    assert problems == [] and spec.params == {} and spec.renotify_minutes is None and spec.enabled is False


@pytest.mark.parametrize(("fields", "problem"), [
    ({"param.multiplier": "ten"}, "multiplier must be a number, not 'ten'"),
    ({"param.multiplier": "2.5"}, "multiplier must be a whole number, not '2.5'"),
    ({"param.strict": "yes"}, "strict must be true or false"),
    ({"param.ratio": "nan"}, "ratio must be a number, not 'nan'"),
    ({"consecutive": "x"}, "consecutive (only after N in a row) must be a number, not 'x'"),
    ({"aggregate_min": "1.5"}, "aggregate_min (only when at least N are found) must be a whole number, not '1.5'"),
    ({"renotify": "inf"}, "renotify minutes must be a number, not 'inf'"),
])
def test_what_cannot_be_read_as_a_number_is_said_once(fields, problem):
    _spec, problems = spec_from_form(read_form(form(**fields)), DETECTORS)
    assert problems == [problem]


def test_a_stored_rule_comes_back_in_the_editor_as_it_was_saved():
    spec = RuleSpec("Stalls", "stall", ["a", "b"], {"multiplier": 20, "strict": False, "aggregate_min": 3},
                    "info", ["x"], False, 2, 45.0)
    shown = form_of(spec)
    assert (shown.scope, shown.params, shown.aggregate_min, shown.renotify) == ("a\nb", {
        "multiplier": "20", "strict": "false"}, "3", "45")
    data = form(name=shown.name, detector=shown.detector, scope=shown.scope, severity=shown.severity,
                channels=shown.channels, consecutive=shown.consecutive, renotify=shown.renotify,
                aggregate_min=shown.aggregate_min, **{f"param.{k}": v for k, v in shown.params.items()})
    assert spec_from_form(read_form(data), DETECTORS) == (spec, [])


def test_every_channel_kind_has_a_form_with_an_input_for_each_secret():
    assert set(FIELDS) == set(CHANNELS)
    for kind, module in CHANNELS.items():
        assert set(module.SECRETS) <= {f.key for f in FIELDS[kind]}, kind


def test_a_blank_secret_keeps_the_saved_one_unless_it_is_cleared():
    saved = {"url": "https://x.example/h/TOKEN", "secret": "s3cret", "headers": {"Authorization": "Bearer t"}}
    config, problems = config_from_form("webhook", MultiDict({"config.url": "", "config.secret": ""}), saved)
    assert problems == [] and config == saved
    cleared, _ = config_from_form("webhook", MultiDict({"clear.secret": "1", "clear.headers": "1"}), saved)
    assert cleared == {"url": "https://x.example/h/TOKEN"}
    replaced, _ = config_from_form("webhook", MultiDict({"config.headers": "X-A: 1\n\nX-B:2"}), saved)
    assert replaced["headers"] == {"X-A": "1", "X-B": "2"}


def test_channel_fields_are_read_by_their_kind():
    config, problems = config_from_form("email", MultiDict({
        "config.host": " smtp.example.com ", "config.port": "465", "config.timeout": "7.5",
        "config.to": "a@example.com, b@example.com\nc@example.com", "config.username": ""}))
    assert problems == [] and config == {"host": "smtp.example.com", "port": 465, "timeout": 7.5,
                                         "to": ["a@example.com", "b@example.com", "c@example.com"]}
    _config, problems = config_from_form("email", MultiDict({"config.port": "smtp"}))
    assert problems == ["port must be a number, not 'smtp'"]
    _config, problems = config_from_form("webhook", MultiDict({"config.headers": "no colon here"}))
    assert problems == ["each extra header is a line “Name: value”"]


@pytest.mark.parametrize(("minutes", "text"), [(15, "15 min"), (0.5, "0.5 min"), (60, "1 h"), (90, "1 h 30 min"),
                                                (1440, "24 h"), (4320, "3 days"), (None, "—")])
def test_minutes_are_said_in_words(minutes, text):
    assert minutes_text(minutes) == text
