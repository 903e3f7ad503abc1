"""Every setting as data, and the loader that resolves them into one frozen `Settings`.

Precedence, highest first: command-line flag > `WEBUI_<NAME>` environment variable (or
`WEBUI_<NAME>_FILE`, whose file holds the value) > TOML config file > default.
Every parser fails loudly with a message that names where the bad value came from.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from webui import worker_groups

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

ENV_PREFIX = "WEBUI_"
DEFAULT_BROKER = "redis://127.0.0.1:6379/0"
TYPES = ("str", "int", "float", "bool", "list", "choice")

_TOML_KINDS = {"int": "integer", "float": "number", "bool": "boolean (true or false)",
               "list": "array of strings"}
_BOOL_WORDS = {
    "true": True, "1": True, "yes": True, "on": True,
    "false": False, "0": False, "no": False, "off": False,
}


class SettingsError(Exception):
    """A setting could not be loaded; the message says which one, from where, and why."""


@dataclass(frozen=True)
class Setting:
    """One setting: everything the loader, the command line and the docs need to know about it."""

    name: str
    type: str
    default: object
    help: str
    group: str
    secret: bool = False
    flags: tuple[str, ...] = ()
    choices: tuple[str, ...] = ()
    min: float | None = None
    max: float | None = None
    optional: bool = False  # None is a valid value ("not set")
    default_doc: str | None = None  # shown instead of `default` when the default is computed
    check: Callable[[Any], str | None] | None = None  # returns a problem, or None when fine
    in_config_file: bool = True  # may be set in the TOML file and through WEBUI_<NAME>_FILE

    def __post_init__(self) -> None:
        if self.type not in TYPES:
            raise ValueError(f"setting {self.name}: unknown type {self.type!r}")
        if not self.flags:
            object.__setattr__(self, "flags", ("--" + self.name.replace("_", "-"),))

    @property
    def env_var(self) -> str:
        return ENV_PREFIX + self.name.upper()

    @property
    def long_flag(self) -> str:
        return next(flag for flag in self.flags if flag.startswith("--"))

    def default_text(self) -> str:
        """The default as the docs and `--help` show it."""
        if self.default_doc is not None:
            return self.default_doc
        return format_value(self, self.default)


def _valid_database_url(url: str) -> str | None:
    if not re.match(r"^(sqlite:///.|postgres(ql)?://)", url):
        return "must be a sqlite:///PATH or postgresql://… URL"
    return None


def _valid_broker_url(url: str) -> str | None:
    if "://" not in url:
        return "must be a broker URL such as redis://host:6379/0 or amqp://user@host//"
    return None


def _valid_queue_name(name: str) -> str | None:
    if len(name.encode()) > 240 or name.startswith("amq."):
        return "must be a RabbitMQ queue name: at most 240 bytes (a .dropped queue is made beside it), not amq.*"
    return None


def _valid_url_prefix(text: str) -> str | None:
    from webui.proxy import prefix_problem

    return prefix_problem(text)


def _valid_regexes(patterns: tuple[str, ...]) -> str | None:
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            return f"{pattern!r} is not a valid regular expression: {exc}"
    return None


CONNECTION, SERVER, COLLECTOR, SENSITIVE = "connection", "server", "collector", "sensitive data"
AUTH = "authentication"
METRICS = "metrics"
BEAT = "beat"
ALERTS = "alerts"
RETENTION = "retention"
GROUPS = (CONNECTION, SERVER, AUTH, COLLECTOR, RETENTION, BEAT, ALERTS, METRICS, SENSITIVE)
ROLE_NAMES = ("viewer", "operator", "admin")


def _valid_basic_auth(entries: tuple[str, ...]) -> str | None:
    from webui.auth.passwords import entry_problem

    for entry in entries:
        problem = entry_problem(entry)
        if problem:
            return problem
    return None


def _valid_role_rules(rules: tuple[str, ...]) -> str | None:
    from webui.auth.roles import rule_problem

    for rule in rules:
        problem = rule_problem(rule)
        if problem:
            return problem
    return None

def _valid_buckets(bounds: tuple[str, ...]) -> str | None:
    try:
        values = [float(bound) for bound in bounds]
    except ValueError:
        return f"bucket bounds must be numbers, got {','.join(bounds)}"
    if not values or values != sorted(set(values)) or not all(0 < v < math.inf for v in values):
        return "bucket bounds must be positive, finite and strictly increasing"
    return None


def _valid_runtime_buckets(bounds: tuple[str, ...]) -> str | None:
    from webui.collector.rollups import RUNTIME_BOUNDS

    problem = _valid_buckets(bounds)
    outside = [b for b in bounds if problem is None and float(b) not in RUNTIME_BOUNDS]
    if outside:
        return (f"{','.join(outside)} not among the rollups' runtime bounds "
                f"({','.join(str(b) for b in RUNTIME_BOUNDS)})")
    return problem


def _valid_grace_list(items: tuple[str, ...]) -> str | None:
    for item in items:
        pattern, _, seconds = item.rpartition("=")
        try:
            value = float(seconds)
        except ValueError:
            value = -1.0
        if not pattern or not 0 <= value < math.inf:
            return f"{item!r} is not PATTERN=SECONDS (for example nightly-*=900)"
    return None


OAUTH_PROVIDERS = ("none", "google", "github", "gitlab", "okta", "oidc")


def _valid_http_url(url: str) -> str | None:
    if not re.match(r"^https?://[^/?#\s]+", url):
        return "must be an http:// or https:// URL"
    return None


def _valid_allow_list(selectors: tuple[str, ...]) -> str | None:
    from webui.auth.oauth_settings import selector_problem

    for selector in selectors:
        problem = selector_problem(selector)
        if problem:
            return problem
    return None


SETTINGS: tuple[Setting, ...] = (
    # connection
    Setting("app", "str", None, "Celery app to monitor, as for `celery -A`: proj, proj.celery or proj:app.",
            CONNECTION, optional=True, flags=("-A", "--app")),
    Setting("broker", "str", None,
            f"Broker URL; overrides the app's broker_url. Without app and broker: {DEFAULT_BROKER}.",
            CONNECTION, secret=True, optional=True, flags=("-b", "--broker"), check=_valid_broker_url),
    Setting("database", "str", None, "Database URL: sqlite:///PATH or postgresql://user:pass@host/db.",
            CONNECTION, secret=True, default_doc="sqlite:///<data_dir>/webui.sqlite3",
            check=_valid_database_url),
    Setting("data_dir", "str", None, "Directory for the default SQLite database.", CONNECTION,
            default_doc="$XDG_DATA_HOME/celery-webui, else ~/.local/share/celery-webui"),
    Setting("config", "str", None, "TOML config file whose keys are setting names.", CONNECTION,
            optional=True, in_config_file=False),
    # server
    Setting("address", "str", "127.0.0.1", "Address to listen on (IPv4 or IPv6).", SERVER),
    Setting("port", "int", 5555, "Port to listen on.", SERVER, min=1, max=65535),
    Setting("workers", "int", 2, "Web server (gunicorn) processes.", SERVER, min=1),
    Setting("threads", "int", 32, "Threads per web server process; each open live page holds one.",
            SERVER, min=1),
    Setting("live_max_sockets", "int", 16,
            "Live-update WebSockets per web server process; pages beyond it refresh every 10 s instead.",
            SERVER, min=0),
    Setting("live_interval", "float", 0.5,
            "Seconds: at most one live-update message per page this often; each makes the page fetch what "
            "changed.", SERVER, min=0.1, max=60),
    Setting("read_concurrency", "int", None,
            "Page and API reads one web server process runs at once; more wait their turn (at most 2 s). "
            "0: no limit.", SERVER, min=0, optional=True, default_doc="1 on SQLite, no limit on PostgreSQL"),
    Setting("log_level", "choice", "info", "Log level.", SERVER,
            choices=("debug", "info", "warning", "error")),
    Setting("worker_group_pattern", "str", worker_groups.DEFAULT_PATTERN,
            "Regular expression with one group: workers whose hostnames give the same group (Kubernetes pods of "
            "one Deployment or StatefulSet) are listed together; empty: no grouping.", SERVER, optional=True,
            default_doc="Kubernetes pod names, see below", check=worker_groups.pattern_problem),
    Setting("proxy_count", "int", 0,
            "Reverse proxies in front of the UI whose X-Forwarded-For, -Proto, -Host and -Prefix headers are "
            "believed; 0: none (clients could forge them). Each proxy must set, not pass on, every one.",
            SERVER, min=0, max=10),
    Setting("url_prefix", "str", None,
            "Path the UI is served under, e.g. /celery (leading and trailing slashes optional); / redirects "
            "there and other paths outside it are 404.", SERVER, optional=True, check=_valid_url_prefix),
    # authentication
    Setting("basic_auth", "list", (),
            "Users who log in with a password, as USER:HASH (make the hash with `webui hash-password`); plain "
            "passwords are refused.", AUTH, secret=True, check=_valid_basic_auth),
    Setting("roles", "list", (),
            "Who gets which role, as ROLE=KIND:VALUE with ROLE viewer, operator or admin and KIND user, email, "
            "domain, group, org or team (e.g. admin=user:alice, operator=domain:example.com, "
            "admin=team:acme/sre); the highest matching role wins.", AUTH, check=_valid_role_rules),
    Setting("default_role", "choice", "viewer",
            "Role of a logged-in user no --roles rule matches; none: such users are refused.", AUTH,
            choices=(*ROLE_NAMES, "none")),
    Setting("secret_key", "str", None,
            "Key that signs session cookies; unset: one is generated once and kept in the database, so "
            "restarts and every process share it.", AUTH, secret=True, optional=True),
    Setting("session_lifetime", "float", 12.0, "Hours a login lasts.", AUTH, min=0.05, max=24 * 90),
    Setting("secure_cookies", "bool", False,
            "Mark cookies Secure even when the request does not look like HTTPS (set it behind a TLS proxy "
            "that does not say so); HTTPS requests always get Secure cookies.", AUTH),
    Setting("login_max_failures", "int", 10,
            "Failed logins allowed per address, and per user name, in 15 minutes before further tries wait.",
            AUTH, min=1),
    Setting("read_only", "bool", False,
            "Refuse every control (revoke, rate limits, worker operations, forgetting workers) for everyone.",
            AUTH),
    Setting("insecure_no_auth", "bool", False,
            "Allow listening on a non-loopback address with no login configured: anyone who reaches the port "
            "can see task arguments and control workers.", AUTH),
    # OAuth/OIDC login: one provider per instance (webui/auth/oauth.py)
    Setting("oauth_provider", "choice", "none",
            "Single sign-on provider: google, github, gitlab, okta or oidc (any OpenID Connect provider, by "
            "discovery URL); none: no single sign-on.", AUTH, choices=OAUTH_PROVIDERS),
    Setting("oauth_client_id", "str", None, "Client ID of the OAuth app registered with the provider.", AUTH,
            optional=True),
    Setting("oauth_client_secret", "str", None, "Client secret of that OAuth app.", AUTH, secret=True,
            optional=True),
    Setting("oauth_discovery_url", "str", None,
            "OpenID Connect discovery URL (…/.well-known/openid-configuration) for oidc, or okta instead of "
            "--oauth-base-url.", AUTH, optional=True, check=_valid_http_url),
    Setting("oauth_base_url", "str", None,
            "Own server's URL: GitHub Enterprise (https://github.example.com), self-hosted GitLab "
            "(https://gitlab.example.com) or Okta (https://acme.okta.com[/oauth2/default]).", AUTH,
            optional=True, check=_valid_http_url),
    Setting("oauth_scopes", "list", (), "Scopes to ask for besides the provider's usual ones.", AUTH),
    Setting("oauth_groups_claim", "str", "groups",
            "Claim (in the ID token or userinfo) that lists an OIDC or Okta user's groups.", AUTH),
    Setting("oauth_label", "str", None, "Name on the login button (\"Continue with …\").", AUTH, optional=True,
            default_doc="the provider's name"),
    Setting("oauth_redirect_uri", "str", None,
            "Callback URL registered with the provider; unset: <this site>[/url_prefix]/login/oauth/callback, "
            "as the browser (or a trusted proxy) names this site.", AUTH, optional=True, check=_valid_http_url),
    Setting("auth_allow", "list", (),
            "Who may log in with the provider, as KIND:VALUE with KIND email, domain, org, team, group or user "
            "(e.g. domain:example.com, org:acme, team:acme/sre, group:ops), matched exactly; required with "
            "an OAuth provider.", AUTH, check=_valid_allow_list),
    # collector
    Setting("embedded_collector", "bool", True,
            "Run the event collector inside the web server; with several processes or hosts exactly one "
            "leads.", COLLECTOR),
    Setting("enable_events", "bool", True,
            "Periodically broadcast enable_events so workers started without -E send task events.",
            COLLECTOR),
    Setting("enable_events_interval", "float", 5.0, "Seconds between enable_events broadcasts.",
            COLLECTOR, min=1),
    Setting("batch_interval", "float", 0.25,
            "Most seconds between database commits; bounds what a crash can lose.", COLLECTOR,
            min=0.01, max=1.0),
    Setting("batch_size", "int", 5000, "Most events per database commit.", COLLECTOR, min=1),
    Setting("worker_offline_heartbeats", "float", 3.0,
            "A worker is offline after this many of its heartbeat intervals pass without an event from it.",
            COLLECTOR, min=1.5),
    Setting("reader_process", "bool", True,
            "Read, decode and mask Redis events in a separate process, so ingest uses a second core; off: "
            "in a thread of the collector (always so for Sentinel and non-Redis brokers).", COLLECTOR),
    Setting("reconcile", "bool", True,
            "After a gap in events, ask workers for active, reserved and scheduled tasks and repair task "
            "states.", COLLECTOR),
    Setting("inspect_timeout", "float", 2.0, "Seconds to wait for workers' replies to inspect calls.",
            COLLECTOR, min=0.1, max=60),
    Setting("inspect_interval", "float", 30.0,
            "Seconds between the collector's inspect broadcasts (stats, queues, registered tasks, …) that "
            "fill the workers pages.", COLLECTOR, min=5),
    Setting("queue_sample_interval", "float", 10.0,
            "Seconds between the collector's samples of each queue's depth (kept 7 days) for the queues "
            "page.", COLLECTOR, min=1),
    Setting("no_task_events_warning", "float", 60.0,
            "Seconds workers may be online without sending task events before the UI warns.",
            COLLECTOR, min=1),
    Setting("event_queue", "str", None,
            "RabbitMQ only: read events from a durable queue of this name, which holds them while the monitor is "
            "down, within the event_queue_* bounds; not set: an auto-delete queue, and events sent while the "
            "monitor is down are lost (as always on Redis).", COLLECTOR, optional=True, check=_valid_queue_name),
    Setting("event_queue_max_length", "int", 100_000,
            "Most messages the durable event queue holds; past it the oldest are dropped, counted and recorded as "
            "a gap.", COLLECTOR, min=1),
    Setting("event_queue_max_bytes", "int", 268_435_456,
            "Most bytes of message bodies the durable event queue holds (256 MiB); past it the oldest are dropped, "
            "counted and recorded as a gap.", COLLECTOR, min=1),
    Setting("event_queue_ttl", "float", 3600.0,
            "Most seconds a message waits in the durable event queue; older ones are dropped, counted and recorded "
            "as a gap.", COLLECTOR, min=1),
    Setting("event_queue_expires", "float", 86400.0,
            "Seconds without a collector after which RabbitMQ deletes the durable event queue, so a monitor "
            "removed for good leaves nothing behind.", COLLECTOR, min=60),
    Setting("agent_url", "str", None,
            "Redis or RabbitMQ (amqp://) URL where workers' companion (webui.agent) writes its stream or queue; set: "
            "the collector reads it too, and events and records of one transition count once. Not set: events "
            "only.", COLLECTOR, secret=True, optional=True),
    Setting("agent_stream", "str", "webui:agent",
            "Key of the companion's Redis Stream, or name of its RabbitMQ queue (the workers' webui_agent_stream).",
            COLLECTOR),
    Setting("agent_max_length", "int", 100_000,
            "RabbitMQ only: the companion queue's x-max-length, as the workers' webui_agent_max_length (both sides "
            "declare the queue, and RabbitMQ refuses other arguments).", COLLECTOR, min=1),
    Setting("agent_group", "str", "webui",
            "Consumer group the collector reads the companion's stream with: one per monitor (per database).",
            COLLECTOR),
    # retention (webui/store/retention.py)
    Setting("retention_days", "int", 30,
            "Days finished tasks (SUCCESS, REVOKED, REJECTED, CANCELLED) are kept after their last event; 0: "
            "forever. Unfinished tasks are never pruned.", RETENTION, min=0),
    Setting("failed_retention_days", "int", 90,
            "Days FAILURE and LOST tasks are kept after their last event, and resolved alert incidents and sent "
            "notifications; 0: forever.", RETENTION, min=0),
    Setting("event_retention_days", "int", 7,
            "Days the event log of a finished task is kept (its task row keeps the summary); 0: as long as the "
            "task.", RETENTION, min=0),
    Setting("rollup_retention_days", "int", 400,
            "Days per-minute rollups (the overview's counts), worker transitions and collector gaps are kept; 0: "
            "forever.", RETENTION, min=0),
    Setting("audit_retention_days", "int", 400, "Days audit log entries are kept; 0: forever.", RETENTION,
            min=0),
    Setting("prune_interval", "float", 300.0,
            "Seconds between the leading collector's pruning passes.", RETENTION, min=1),
    Setting("prune_batch", "int", 2000, "Rows deleted per pruning transaction.", RETENTION, min=10,
            max=20_000),
    # beat monitoring (webui/beat/)
    Setting("beat_interval", "float", 10.0,
            "Seconds between the beat watcher's reads of the schedules and its matching of new fires.", BEAT,
            min=1),
    Setting("beat_schedule_file", "str", None,
            "Path of the default scheduler's celerybeat-schedule file, read without taking beat's lock.",
            BEAT, optional=True, default_doc="the app's beat_schedule_filename, when that file exists"),
    Setting("beat_redbeat_url", "str", None,
            "Redis URL holding celery-redbeat's keys.", BEAT, secret=True, optional=True,
            default_doc="the app's redbeat_redis_url, else its broker URL when that is Redis"),
    Setting("beat_redbeat_prefix", "str", None, "Key prefix of celery-redbeat's keys.", BEAT, optional=True,
            default_doc="the app's redbeat_key_prefix, else redbeat:"),
    Setting("beat_django_database", "str", None,
            "Database URL of django-celery-beat's tables: sqlite:///PATH or postgresql://user:pass@host/db.",
            BEAT, secret=True, optional=True, check=_valid_database_url),
    Setting("beat_grace", "list", (),
            "Grace per entry, as PATTERN=SECONDS (shell-style pattern on the entry name, first match wins); "
            "entries without one get a grace derived from their period.", BEAT, check=_valid_grace_list),
    Setting("beat_ping", "bool", True,
            "Ping beat over remote control (Celery 5.7+, beat_enable_remote_control) as evidence it is alive.",
            BEAT),
    # detection and alerts (webui/detect/, webui/alerts/)
    Setting("detect_interval", "float", 15.0,
            "Seconds between runs of the detectors and the alert rules in the collector.", ALERTS, min=1),
    Setting("external_url", "str", None,
            "The UI's address as people reach it (https://celery.example.com/webui): notifications link to it.",
            ALERTS, optional=True, check=_valid_http_url),
    Setting("alert_rules_file", "str", None,
            "TOML file of alert rules and channels, loaded at start (rules managed in Git; the UI shows them "
            "read-only).", ALERTS, optional=True),
    Setting("alert_default_rules", "bool", True,
            "Create the built-in rules (lost tasks, stalled tasks, offline workers, unattended queues, beat "
            "misses, failure spikes) when they do not exist; they can be edited or disabled like any rule.",
            ALERTS),
    # metrics (webui/views/metrics.py)
    Setting("metrics_public", "bool", False,
            "Serve /metrics without a login or API token (it names tasks, workers and exception classes).",
            METRICS),
    Setting("probes_public", "bool", False,
            "Serve the health probes /health/workers, /health/queue/NAME and /health/beat without a login or "
            "token, for uptime monitors that can't send one (their answers hold counts and the queue asked "
            "for); /healthcheck is always public.", METRICS),
    Setting("metrics_worker_expiry", "float", 600.0,
            "Seconds after a worker goes offline until its series leave /metrics.", METRICS, min=0),
    Setting("metrics_runtime_buckets", "list",
            ("0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1.0", "2.5", "5.0", "10.0", "30.0", "60.0",
             "300.0"),
            "Upper bounds (seconds) of the celery_task_runtime buckets, each one of the rollups' bounds.",
            METRICS, check=_valid_runtime_buckets),
    Setting("metrics_wait_buckets", "list",
            ("0.01", "0.05", "0.1", "0.5", "1.0", "5.0", "10.0", "30.0", "60.0", "300.0", "600.0", "1800.0",
             "3600.0"),
            "Upper bounds (seconds) of the celery_task_queue_wait_time buckets, increasing.", METRICS,
            check=_valid_buckets),
    Setting("metrics_group_workers", "bool", False,
            "Use the stable worker group (worker_group_pattern) as the hostname label of worker series.",
            METRICS),
    # sensitive data
    Setting("store_args", "bool", True, "Store task args and kwargs.", SENSITIVE),
    Setting("store_results", "bool", True, "Store task results.", SENSITIVE),
    Setting("mask_keys", "list",
            ("password", "passwd", "pwd", "secret", "token", "api_key", "apikey", "access_key",
             "private_key", "authorization", "credentials", "cookie", "session_id"),
            "Values of keys containing any of these (case-insensitive) are stored as '***'.", SENSITIVE),
    Setting("mask_patterns", "list", (), "Extra regular expressions; matching text is stored as ***.",
            SENSITIVE, check=_valid_regexes),
    Setting("mask_card_numbers", "bool", True, "Mask payment card numbers in stored text.", SENSITIVE),
    Setting("max_args_size", "int", 10000, "Bytes kept of args, and of kwargs.", SENSITIVE, min=0),
    Setting("max_result_size", "int", 10000, "Bytes kept of a task result.", SENSITIVE, min=0),
    Setting("max_traceback_size", "int", 65536, "Bytes kept of a traceback, and of exception text.",
            SENSITIVE, min=0),
)

BY_NAME: dict[str, Setting] = {setting.name: setting for setting in SETTINGS}


@dataclass(frozen=True)
class Settings:
    """The effective settings; `sources` says where each value came from."""

    app: str | None
    broker: str | None
    database: str
    data_dir: str
    config: str | None
    address: str
    port: int
    workers: int
    threads: int
    live_max_sockets: int
    live_interval: float
    read_concurrency: int | None
    log_level: str
    worker_group_pattern: str | None
    proxy_count: int
    url_prefix: str | None
    basic_auth: tuple[str, ...]
    roles: tuple[str, ...]
    default_role: str
    secret_key: str | None
    session_lifetime: float
    secure_cookies: bool
    login_max_failures: int
    read_only: bool
    insecure_no_auth: bool
    oauth_provider: str
    oauth_client_id: str | None
    oauth_client_secret: str | None
    oauth_discovery_url: str | None
    oauth_base_url: str | None
    oauth_scopes: tuple[str, ...]
    oauth_groups_claim: str
    oauth_label: str | None
    oauth_redirect_uri: str | None
    auth_allow: tuple[str, ...]
    embedded_collector: bool
    enable_events: bool
    enable_events_interval: float
    batch_interval: float
    batch_size: int
    worker_offline_heartbeats: float
    reader_process: bool
    reconcile: bool
    inspect_timeout: float
    inspect_interval: float
    queue_sample_interval: float
    no_task_events_warning: float
    event_queue: str | None
    event_queue_max_length: int
    event_queue_max_bytes: int
    event_queue_ttl: float
    event_queue_expires: float
    agent_url: str | None
    agent_stream: str
    agent_max_length: int
    agent_group: str
    retention_days: int
    failed_retention_days: int
    event_retention_days: int
    rollup_retention_days: int
    audit_retention_days: int
    prune_interval: float
    prune_batch: int
    beat_interval: float
    beat_schedule_file: str | None
    beat_redbeat_url: str | None
    beat_redbeat_prefix: str | None
    beat_django_database: str | None
    beat_grace: tuple[str, ...]
    beat_ping: bool
    detect_interval: float
    external_url: str | None
    alert_rules_file: str | None
    alert_default_rules: bool
    metrics_public: bool
    probes_public: bool
    metrics_worker_expiry: float
    metrics_runtime_buckets: tuple[str, ...]
    metrics_wait_buckets: tuple[str, ...]
    metrics_group_workers: bool
    store_args: bool
    store_results: bool
    mask_keys: tuple[str, ...]
    mask_patterns: tuple[str, ...]
    mask_card_numbers: bool
    max_args_size: int
    max_result_size: int
    max_traceback_size: int
    sources: dict[str, str] = field(default_factory=dict, compare=False)

    def replace(self, **changes: object) -> Settings:
        """A copy with `changes` applied, validated like any other source (source "code")."""
        values = {setting.name: getattr(self, setting.name) for setting in SETTINGS}
        sources = dict(self.sources)
        for name, raw in changes.items():
            setting = _lookup(name, "replace()")
            values[name] = _parse(setting, raw, f"setting {name}")
            sources[name] = "code"
        # A computed default follows what it was computed from.
        if "data_dir" in changes and sources.get("database", "default") == "default":
            values["database"] = _default_database(str(values["data_dir"]))
        return Settings(**values, sources=sources)

    def display(self) -> list[tuple[str, str, str]]:
        """(name, value, source) for every setting, with passwords in secret URLs masked."""
        return [
            (setting.name, format_value(setting, getattr(self, setting.name)),
             self.sources.get(setting.name, "default"))
            for setting in SETTINGS
        ]


def load_settings(
    cli_values: Mapping[str, object] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Resolve every setting: flag > WEBUI_<NAME> / WEBUI_<NAME>_FILE > config file > default.

    `cli_values` holds only the flags actually given (already typed values or raw strings).
    """
    cli = dict(cli_values or {})
    env = os.environ if environ is None else environ
    for name in cli:
        _lookup(name, "command line")
    config_path = _config_path(cli, env)
    file_values = _read_config_file(config_path) if config_path else {}

    values: dict[str, object] = {}
    sources: dict[str, str] = {}
    for setting in SETTINGS:
        found = _raw_value(setting, cli, env, file_values, config_path)
        if found is None:
            values[setting.name] = setting.default
            sources[setting.name] = "default"
            continue
        raw, source, where = found
        values[setting.name] = _parse(setting, raw, where, typed=source.startswith("config file"))
        sources[setting.name] = source

    if sources["data_dir"] == "default":
        values["data_dir"] = _default_data_dir(env)
    if sources["database"] == "default":
        values["database"] = _default_database(str(values["data_dir"]))
    return Settings(**values, sources=sources)  # type: ignore[arg-type]


def default_settings(**changes: object) -> Settings:
    """Defaults (ignoring WEBUI_* variables and config files) with `changes` applied; for tests."""
    return load_settings(environ=_xdg_only(os.environ)).replace(**changes)


def format_value(setting: Setting, value: object) -> str:
    """A value written the way the environment variable would take it; secret URLs masked."""
    if value is None:
        return "(not set)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (tuple, list)):
        return ",".join(str(item) for item in value) if value else "(none)"
    if setting.secret:
        return mask_url_password(str(value))
    return str(value)


_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^:@/\s;]*:)[^@/\s;]+@")
_QUERY_SECRET = re.compile(r"(?P<head>[?&](?:password|passwd|pwd|secret|token)=)[^&\s;]*", re.IGNORECASE)


def mask_url_password(text: str) -> str:
    """`redis://:pw@host` → `redis://:***@host` (every URL in `text`, and password= query values)."""
    text = _URL_PASSWORD.sub(r"\g<head>***@", text)
    return _QUERY_SECRET.sub(r"\g<head>***", text)


# -- resolving ---------------------------------------------------------------------------------------


def _lookup(name: str, where: str) -> Setting:
    try:
        return BY_NAME[name]
    except KeyError:
        raise SettingsError(f"{where}: unknown setting {name!r}{_suggest(name)}") from None


def _suggest(name: str) -> str:
    candidates = difflib.get_close_matches(name.replace("-", "_").lower(), list(BY_NAME), n=1)
    return f" (did you mean {candidates[0]!r}?)" if candidates else ""


def _config_path(cli: Mapping[str, object], env: Mapping[str, str]) -> str | None:
    if cli.get("config") is not None:
        return str(cli["config"])
    return env.get(BY_NAME["config"].env_var) or None


def _read_config_file(path: str) -> dict[str, object]:
    try:
        with open(path, "rb") as file:
            document = tomllib.load(file)
    except OSError as exc:
        raise SettingsError(f"config file {path}: cannot read it: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SettingsError(f"config file {path}: not valid TOML: {exc}") from None
    for key in document:
        setting = BY_NAME.get(key)
        if setting is None:
            raise SettingsError(f"config file {path}: unknown setting {key!r}{_suggest(key)}")
        if not setting.in_config_file:
            raise SettingsError(f"config file {path}: {key!r} cannot be set in a config file")
    return document


def _raw_value(
    setting: Setting,
    cli: Mapping[str, object],
    env: Mapping[str, str],
    file_values: Mapping[str, object],
    config_path: str | None,
) -> tuple[object, str, str] | None:
    """(raw value, source, where-for-errors) from the strongest source that has one, else None."""
    if setting.name in cli:
        return cli[setting.name], "flag", setting.long_flag
    var, file_var = setting.env_var, setting.env_var + "_FILE"
    has_file_var = setting.in_config_file and file_var in env
    if var in env and has_file_var:
        raise SettingsError(f"{var} and {file_var} are both set; set only one of them")
    if var in env:
        return env[var], f"env {var}", var
    if has_file_var:
        path = env[file_var]
        try:
            with open(path, encoding="utf-8") as file:
                text = file.read().strip()
        except (OSError, UnicodeDecodeError) as exc:
            problem = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise SettingsError(f"{file_var}: cannot read {path}: {problem}") from None
        return text, f"env {file_var}", f"{file_var} ({path})"
    if setting.name in file_values:
        where = f"config file {config_path}, key {setting.name!r}"
        return file_values[setting.name], f"config file {config_path}", where
    return None


def _parse(setting: Setting, raw: object, where: str, *, typed: bool = False) -> object:
    """Convert and validate; `typed` values (from TOML) must already have the setting's own type."""
    try:
        if typed and isinstance(raw, str) and setting.type not in ("str", "choice"):
            kind = _TOML_KINDS[setting.type]
            raise ValueError(f"expected a TOML {kind}, got the string {_shown(setting, raw)}")
        value = _convert(setting, raw)
        problem = _check_bounds(setting, value)
        if problem is None and value is not None and setting.check is not None:
            problem = setting.check(value)
    except ValueError as exc:
        problem = str(exc)
    if problem is not None:
        raise SettingsError(f"{where}: {problem}")
    return value


def _convert(setting: Setting, raw: object) -> object:
    """Turn a raw value (text from flags and env, or a TOML/Python value) into the setting's type."""
    shown = _shown(setting, raw)
    if setting.type == "bool":
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.strip().lower() in _BOOL_WORDS:
            return _BOOL_WORDS[raw.strip().lower()]
        raise ValueError(f"expected true/false (or 1/0, yes/no, on/off), got {shown}")
    if setting.type == "int":
        if isinstance(raw, int) and not isinstance(raw, bool):
            return raw
        if isinstance(raw, str):
            try:
                return int(raw.strip())
            except ValueError:
                pass
        raise ValueError(f"expected a whole number, got {shown}")
    if setting.type == "float":
        return _convert_float(raw, shown)
    if setting.type == "list":
        return _convert_list(raw, shown)
    if not isinstance(raw, str):
        raise ValueError(f"expected text, got {shown}")
    if setting.type == "choice":
        choice = raw.strip().lower()
        if choice not in setting.choices:
            raise ValueError(f"expected one of {', '.join(setting.choices)}, got {shown}")
        return choice
    if not raw.strip():
        if setting.optional:
            return None
        raise ValueError("must not be empty")
    if setting.name == "data_dir":
        return os.path.abspath(os.path.expanduser(raw))
    return raw


def _convert_float(raw: object, shown: str) -> float:
    value: float | None = None
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        value = float(raw)
    elif isinstance(raw, str):
        try:
            value = float(raw.strip())
        except ValueError:
            value = None
    if value is None or not math.isfinite(value):
        raise ValueError(f"expected a number, got {shown}")
    return value


def _convert_list(raw: object, shown: str) -> tuple[str, ...]:
    if isinstance(raw, str):
        return split_list(raw)
    if isinstance(raw, (list, tuple)) and all(isinstance(item, str) for item in raw):
        return tuple(raw)
    raise ValueError(f"expected a list of strings (comma-separated in flags and env), got {shown}")


def split_list(text: str) -> tuple[str, ...]:
    """Split flag/env text at commas, except inside (), [] or {} (so `\\d{3,4}` stays one regular
    expression) or escaped as `\\,`, and at line ends (a `WEBUI_<NAME>_FILE` secret may hold an item a line);
    items are stripped and empty ones dropped."""
    items: list[str] = []
    current: list[str] = []
    depth = 0
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text):
            # An escaped character never opens, closes or splits; `\\,` is a plain comma.
            current.append("," if text[i + 1] == "," else text[i : i + 2])
            i += 2
            continue
        if char == "\n" or (char == "," and depth == 0):
            items.append("".join(current))
            current, depth = [], 0
        else:
            current.append(char)
            if char in "([{":
                depth += 1
            elif char in ")]}" and depth:
                depth -= 1
        i += 1
    items.append("".join(current))
    return tuple(item.strip() for item in items if item.strip())


def _check_bounds(setting: Setting, value: object) -> str | None:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    if setting.min is not None and value < setting.min:
        return f"must be at least {_number(setting.min)}, got {_number(value)}"
    if setting.max is not None and value > setting.max:
        return f"must be at most {_number(setting.max)}, got {_number(value)}"
    return None


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _shown(setting: Setting, raw: object) -> str:
    """The raw value for an error message, never revealing a secret."""
    if setting.secret and isinstance(raw, str):
        return repr(mask_url_password(raw))
    return repr(raw)


def _default_data_dir(env: Mapping[str, str]) -> str:
    xdg = env.get("XDG_DATA_HOME", "").strip()
    # The XDG spec says relative paths in XDG_* are invalid and must be ignored.
    if xdg and os.path.isabs(xdg):
        return os.path.join(xdg, "celery-webui")
    home = env.get("HOME") or os.path.expanduser("~")
    return os.path.join(home, ".local", "share", "celery-webui")


def _default_database(data_dir: str) -> str:
    return f"sqlite:///{os.path.join(data_dir, 'webui.sqlite3')}"


def _xdg_only(environ: Mapping[str, str]) -> dict[str, str]:
    return {key: environ[key] for key in ("XDG_DATA_HOME", "HOME") if key in environ}


def _check_fields_match() -> None:
    names = [f.name for f in dataclasses.fields(Settings) if f.name != "sources"]
    if names != [setting.name for setting in SETTINGS]:  # pragma: no cover - caught at import
        raise RuntimeError("Settings fields and SETTINGS are out of step")


_check_fields_match()
