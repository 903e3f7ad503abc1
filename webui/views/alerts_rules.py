"""`/alerts/rules`: every rule with its open incidents; one rule with its history; the editor (admins).

The editor's fields are read into a RuleSpec here and checked by the same `rules.validate` the API and the
rules file use, so a rule means the same wherever it was written. The detector's parameters are one input each
(blank: its default); choosing another detector swaps them in with htmx from the form template's
`detector_params` block. Rules from the rules file are read-only: the next start would rewrite them from Git.
"""
from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from flask import flash, redirect, render_template, request, url_for
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response

from webui import audit
from webui.alerts import editing, queries
from webui.alerts.rules import RuleError, RuleSpec, save, spec_of, validate
from webui.auth.access import requires
from webui.detect.registry import Detector, Param, all_detectors
from webui.store.models import AlertChannel, AlertRule
from webui.views.alerts import MAX_ID, bp, here, render_block, rules_file

FORM = "alerts/rule_form.html"
HISTORY = 20  # resolved incidents on a rule's page; the incidents page has them all
MAX_FIELD = 2000


# -- the editor's form, as plain data ------------------------------------------------------------------------

@dataclass
class RuleForm:
    """The editor's fields as typed, so a refused form comes back as it was sent."""

    name: str = ""
    detector: str = ""
    scope: str = ""  # one pattern a line
    params: dict[str, str] = field(default_factory=dict)  # detector parameter → text typed (blank: default)
    severity: str = "warning"
    channels: list[str] = field(default_factory=list)
    consecutive: str = "1"
    renotify: str = ""
    enabled: bool = True
    aggregate_min: str = ""


def form_of(spec: RuleSpec) -> RuleForm:
    """A stored rule's fields as the editor shows them."""
    params = {k: _text(v) for k, v in spec.params.items() if k != "aggregate_min"}
    aggregate = spec.params.get("aggregate_min")
    return RuleForm(spec.name, spec.detector, "\n".join(spec.scope), params, spec.severity, list(spec.channels),
                    str(spec.consecutive), _text(spec.renotify_minutes) if spec.renotify_minutes else "",
                    spec.enabled, "" if aggregate is None else _text(aggregate))


def read_form(form: MultiDict[str, str]) -> RuleForm:
    """The posted fields (each cut to a sane length; validation says what is wrong with them)."""
    def get(name: str) -> str:
        return form.get(name, "")[:MAX_FIELD].strip()
    params = {k[len("param."):]: v[:MAX_FIELD].strip() for k, v in form.items() if k.startswith("param.")}
    return RuleForm(get("name"), get("detector"), form.get("scope", "")[:MAX_FIELD * 5], params, get("severity"),
                    [c[:MAX_FIELD] for c in form.getlist("channels") if c], get("consecutive"), get("renotify"),
                    form.get("enabled") == "1", get("aggregate_min"))


def spec_from_form(form: RuleForm, detectors: Mapping[str, Detector]) -> tuple[RuleSpec, list[str]]:
    """The RuleSpec the form describes, and what could not even be read as a number (validate says the rest).

    Only the chosen detector's parameters count: inputs left from another detector are not its business.
    """
    problems: list[str] = []
    detector = detectors.get(form.detector)
    params: dict[str, Any] = {}
    for name, param in (detector.params.items() if detector else ()):
        text = form.params.get(name, "")
        if text:
            value, problem = _param_value(name, text, param)
            if problem:
                problems.append(problem)
            else:
                params[name] = value
    aggregate = _number(form.aggregate_min, "aggregate_min (only when at least N are found)", problems, whole=True)
    if aggregate is not None:
        params["aggregate_min"] = aggregate
    consecutive = _number(form.consecutive or "1", "consecutive (only after N in a row)", problems, whole=True)
    renotify = _number(form.renotify, "renotify minutes", problems)
    scope = [line.strip() for line in form.scope.splitlines() if line.strip()]
    spec = RuleSpec(form.name, form.detector, scope, params, form.severity, list(dict.fromkeys(form.channels)),
                    form.enabled, int(consecutive) if consecutive is not None else 1, renotify)
    return spec, problems


def _param_value(name: str, text: str, param: Param) -> tuple[Any, str | None]:
    kind = type(param.default)
    if kind is bool:
        if text not in ("true", "false"):
            return None, f"{name} must be true or false"
        return text == "true", None
    if kind in (int, float):
        problems: list[str] = []
        value = _number(text, name, problems, whole=kind is int)
        return value, problems[0] if problems else None
    return text, None


def _number(text: str, what: str, problems: list[str], whole: bool = False) -> float | int | None:
    """`text` as a number (blank: None); a problem when it is none, or not whole when it must be."""
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        problems.append(f"{what} must be a number, not {text[:40]!r}")
        return None
    if value != value or value in (float("inf"), float("-inf")):
        problems.append(f"{what} must be a number, not {text[:40]!r}")
        return None
    if value.is_integer():
        return int(value)
    if whole:
        problems.append(f"{what} must be a whole number, not {text[:40]!r}")
        return None
    return value


def param_kind(param: Param) -> str:
    """How the editor asks for a parameter: bool (a choice), int, float, or text."""
    kind = type(param.default)
    return kind.__name__ if kind in (bool, int, float) else "text"


@bp.app_context_processor
def _rule_helpers() -> dict[str, Any]:
    return {"param_kind": param_kind}


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# -- the pages ------------------------------------------------------------------------------------------------

@bp.get("/alerts/rules")
def rules() -> str:
    """Every rule: what it watches, how loud, to whom, who manages it, and its open incidents."""
    return render_template("alerts/rules.html", page_title="Alert rules", rules=queries.rules(),
                           counts=queries.open_counts(), detectors=all_detectors(), rules_file=rules_file(),
                           channel_names={c.name for c in AlertChannel.select(AlertChannel.name)})


@bp.get("/alerts/rules/<int:rule_id>")
def rule(rule_id: int) -> tuple[str, int]:
    """One rule: its definition, its parameters with their defaults, its open and latest resolved incidents."""
    return _rule_page(rule_id)


def _rule_page(rule_id: int, problem: str | None = None, status: int = 200) -> tuple[str, int]:
    row = _find(rule_id)
    if row is None:
        return render_template("alerts/rule.html", row=None, rule_id=rule_id, page_title="Unknown rule"), 404
    return render_template(
        "alerts/rule.html", row=row, rule_id=rule_id, spec=spec_of(row), page_title=row.name,
        detector=all_detectors().get(row.detector), open_rows=queries.incidents("open", row.id, None, 500),
        resolved=queries.incidents("resolved", row.id, None, HISTORY), history=HISTORY,
        channel_names={c.name for c in AlertChannel.select(AlertChannel.name)}, rules_file=rules_file(),
        problem=problem, now=time.time()), status


@bp.route("/alerts/rules/new", methods=["GET", "POST"])
@requires("admin")
def new_rule() -> Response | tuple[str, int]:
    """The editor for a new rule; POST saves it (admins)."""
    if request.method == "GET":
        detectors = all_detectors()
        chosen = request.args.get("detector", "")
        form = RuleForm(detector=chosen if chosen in detectors else next(iter(sorted(detectors)), ""))
        return _editor(form, None), 200
    return _save(None)


@bp.route("/alerts/rules/<int:rule_id>/edit", methods=["GET", "POST"])
@requires("admin")
def edit_rule(rule_id: int) -> Response | tuple[str, int]:
    """The editor for an existing rule; POST saves it (admins; never a rule from the rules file)."""
    row, refusal = _editable(rule_id)
    if row is None:
        assert refusal is not None
        return refusal
    if request.method == "GET":
        return _editor(form_of(spec_of(row)), row), 200
    return _save(row)


@bp.get("/alerts/rules/params")
def detector_params() -> tuple[str, int] | str:
    """The editor's parameter inputs for `detector` (htmx swaps them in when the detector changes)."""
    name = request.args.get("detector", "")
    detector = all_detectors().get(name)
    if detector is None:
        return render_block(FORM, "detector_params", {"detector": None, "form": RuleForm(detector=name[:80])}), 400
    return render_block(FORM, "detector_params", {"detector": detector, "form": RuleForm(detector=name)})


@bp.post("/alerts/rules/<int:rule_id>/enabled")
@requires("admin")
def set_enabled(rule_id: int) -> Response | tuple[str, int]:
    """Switch a rule on or off (`enabled` 1 or 0); its incidents stay as they are until the next pass."""
    row, refusal = _editable(rule_id)
    if row is None:
        assert refusal is not None
        return refusal
    enabled = request.form.get("enabled") == "1"
    editing.set_rule_enabled(row, enabled)
    audit.record("alert_rule.enable" if enabled else "alert_rule.disable", row.name)
    flash(f"Rule {row.name!r} {'enabled' if enabled else 'disabled'}.")
    return redirect(url_for("alerts.rule", rule_id=rule_id), 303)


@bp.post("/alerts/rules/<int:rule_id>/delete")
@requires("admin")
def delete_rule(rule_id: int) -> Response | tuple[str, int]:
    """Ask, then delete the rule; its incidents are kept as history."""
    row, refusal = _editable(rule_id)
    if row is None:
        assert refusal is not None
        return refusal
    if request.form.get("confirm") != "1":
        count = queries.open_counts().get(row.id, 0)
        return render_template(
            "alerts/confirm.html", page_title="Delete rule", title=f"Delete the rule {row.name!r}?",
            text=f"It stops watching now. Its incidents stay listed as history"
                 f"{f', and its {count} open one(s) stay open until resolved by hand' if count else ''}. "
                 "A built-in rule comes back at the next start unless alert_default_rules is off: disabling "
                 "it is the way to keep it off.", action=here(), button="Delete the rule",
            back=url_for("alerts.rule", rule_id=rule_id)), 200
    editing.delete_rule(row)
    audit.record("alert_rule.delete", row.name)
    flash(f"Deleted the rule {row.name!r}; its incidents are kept.")
    return redirect(url_for("alerts.rules"), 303)


# -- helpers ----------------------------------------------------------------------------------------------

def _find(rule_id: int) -> AlertRule | None:
    return AlertRule.get_or_none(AlertRule.id == rule_id) if rule_id <= MAX_ID else None


def _editable(rule_id: int) -> tuple[AlertRule | None, tuple[str, int] | None]:
    row = _find(rule_id)
    if row is None:
        return None, _rule_page(rule_id)
    if row.managed_by == "file":
        where = rules_file() or "the alert rules file"
        audit.record(request.endpoint or "alert_rule", row.name, "refused", reason="managed in the rules file")
        return None, _rule_page(rule_id, f"This rule is managed in {where}: change it there (the UI shows it "
                                         "read-only, and the next start rewrites it from the file).", 409)
    return row, None


def _editor(form: RuleForm, row: AlertRule | None, problems: list[str] | None = None) -> str:
    detectors = all_detectors()
    channels = list(AlertChannel.select().order_by(AlertChannel.name))
    known = {c.name for c in channels}
    return render_template(
        FORM, page_title=f"Edit {row.name}" if row else "New rule", form=form, row=row, problems=problems or [],
        detectors=sorted(detectors.values(), key=lambda d: d.title), detector=detectors.get(form.detector),
        channels=channels, missing_channels=[c for c in form.channels if c not in known])


def _save(row: AlertRule | None) -> Response | tuple[str, int]:
    form = read_form(request.form)
    spec, problems = spec_from_form(form, all_detectors())
    action = "alert_rule.update" if row else "alert_rule.create"
    problems += _validation(spec, row.id if row else None)
    if not problems:
        try:
            saved = save(spec, row.managed_by if row else "ui", rule_id=row.id if row else None)
        except RuleError as exc:  # validated just now; a detector unregistered in between
            problems.append(str(exc))
        else:
            audit.record(action, spec.name)
            flash(f"Saved the rule {spec.name!r}.")
            return redirect(url_for("alerts.rule", rule_id=saved.id), 303)
    audit.record(action, spec.name or None, "refused", reason="; ".join(problems))
    return _editor(form, row, [p[:1].upper() + p[1:] for p in problems]), 400


def _validation(spec: RuleSpec, rule_id: int | None) -> list[str]:
    problems = validate(spec)
    if spec.name and editing.rule_name_taken(spec.name, rule_id):
        problems.append(f"a rule named {spec.name!r} exists already")
    return problems
