"""The `webui` command: `serve` (default), `collect`, `migrate`, `prune`, `settings` and `demo`."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from celery import Celery

from webui import __version__
from webui.settings import (
    GROUPS,
    SETTINGS,
    Setting,
    Settings,
    SettingsError,
    load_settings,
    mask_url_password,
)

logger = logging.getLogger(__name__)

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

EPILOG = """\
Every setting can also be given as an environment variable (WEBUI_<NAME>, or WEBUI_<NAME>_FILE naming a
file that holds the value) or as a key of the TOML file given with --config. A flag beats the environment,
which beats the config file, which beats the default. `webui settings` shows what is in effect and why.
"""

COMMANDS = {
    "serve": "run the web UI, and the collector inside it (default)",
    "collect": "run only the event collector, in the foreground",
    "migrate": "create or upgrade the database schema, then exit",
    "prune": "delete what the retention settings no longer keep, print how many rows went, then exit",
    "settings": "print the effective settings and where each came from",
    "hash-password": "print a password hash for --basic-auth USER:HASH (reads the password, never echoes it)",
    "demo": "run a demo app's worker and beat, and the UI on them (with an embedded Redis if none answers)",
}


def main(argv: Sequence[str] | None = None, celery_app: Celery | None = None, prog: str = "webui") -> int:
    """Run the `webui` command; returns the exit code (0 ok, 1 failure, 2 bad usage or settings)."""
    parser = build_parser(prog)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, and usage errors (argparse already printed them)
        return exc.code if isinstance(exc.code, int) else 2
    cli_values = {name: value for name, value in vars(args).items() if name not in ("command", "dry_run")}
    runner = RUNNERS[args.command]
    if getattr(args, "dry_run", False):
        if args.command != "prune":
            print(f"{prog}: error: --dry-run is an option of prune only", file=sys.stderr)
            return 2
        runner = prune_dry_run
    try:
        settings = load_settings(cli_values)
        configure_logging(settings.log_level)
        return runner(settings, celery_app)
    except SettingsError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


def build_parser(prog: str = "webui") -> argparse.ArgumentParser:
    """One parser with every setting as an option, grouped as in the docs."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Celery WebUI: a durable monitor and control panel for Celery clusters.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    commands = "; ".join(f"{name}: {text}" for name, text in COMMANDS.items())
    parser.add_argument("command", nargs="?", default="serve", choices=list(COMMANDS), help=commands)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--dry-run", action="store_true", default=argparse.SUPPRESS,
                        help="with prune: count what would be deleted, delete nothing")
    for group in GROUPS:
        options = parser.add_argument_group(f"{group} settings")
        for setting in SETTINGS:
            if setting.group == group:
                _add_option(options, setting)
    return parser


def _add_option(options: argparse._ArgumentGroup, setting: Setting) -> None:
    help_text = f"{setting.help} [env {setting.env_var}; default: {setting.default_text()}]"
    help_text = help_text.replace("%", "%%")
    # Options default to SUPPRESS so the namespace holds only the flags actually given.
    if setting.type == "bool":
        options.add_argument(*setting.flags, dest=setting.name, default=argparse.SUPPRESS, help=help_text,
                             action=argparse.BooleanOptionalAction)
    else:
        options.add_argument(*setting.flags, dest=setting.name, default=argparse.SUPPRESS, help=help_text,
                             metavar=_metavar(setting))


def _metavar(setting: Setting) -> str:
    if setting.type == "choice":
        return "{" + ",".join(setting.choices) + "}"
    names = {"broker": "URL", "database": "URL", "data_dir": "DIR", "config": "FILE"}
    types = {"int": "N", "float": "NUMBER", "list": "A,B,..."}
    return names.get(setting.name) or types.get(setting.type) or setting.name.upper()


def configure_logging(level: str) -> None:
    """Log to stderr with time, level and logger name, unless logging is already set up."""
    logging.basicConfig(format=LOG_FORMAT)
    logging.getLogger().setLevel(level.upper())


# -- commands ----------------------------------------------------------------------------------------


def serve(settings: Settings, celery_app: Celery | None) -> int:
    from webui.auth import exposure_problem
    from webui.serve import run_server

    problem = exposure_problem(settings)
    if problem:
        print(f"webui: error: {problem}", file=sys.stderr)
        return 2

    app = resolve_celery_app(settings, celery_app)
    if _migrate(settings) is None:
        return 1
    run_server(settings, app, migrate=False)
    return 0


def hash_password(settings: Settings, celery_app: Celery | None) -> int:
    import getpass

    from webui.auth.passwords import hash_password as make_hash

    if sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            print("webui: error: the passwords differ", file=sys.stderr)
            return 2
    else:
        password = sys.stdin.readline().rstrip("\n")
    if len(password) < 8:
        print("webui: error: use at least 8 characters", file=sys.stderr)
        return 2
    print(make_hash(password))
    return 0


def collect(settings: Settings, celery_app: Celery | None) -> int:
    from webui.collector.service import run_collector

    app = resolve_celery_app(settings, celery_app)
    if _migrate(settings) is None:
        return 1
    run_collector(settings, app)
    return 0


def migrate(settings: Settings, celery_app: Celery | None) -> int:
    applied = _migrate(settings)
    if applied is None:
        return 1
    for name in applied:
        print(f"applied {name}")
    if not applied:
        print("the database schema is up to date")
    return 0


def prune(settings: Settings, celery_app: Celery | None, dry_run: bool = False) -> int:
    """Run the collector's pruning once, to completion, in the same batches; print what went."""
    import time

    from peewee import PeeweeException

    from webui.store import retention
    from webui.store.database import bind_models, open_database

    if _migrate(settings) is None:
        return 1
    db = open_database(settings.database)
    bind_models(db)  # pruning first advances /metrics' checkpoint, which reads through the models
    policy = retention.Retention.from_settings(settings)
    try:
        with db.connection_context():
            outcome = (retention.count if dry_run else retention.prune)(db, policy, time.time())
    except PeeweeException as exc:
        _database_failure(settings, exc)
        return 1
    finally:
        getattr(db, "close_all", db.close)()
    verb = "would delete" if dry_run else "deleted"
    for label, counts in outcome.steps:
        print(f"{label}: {verb} {retention.describe(counts)}")
    print(f"{verb} {outcome.total:,} rows in all{' (dry run: nothing was deleted)' if dry_run else ''}")
    return 0


def prune_dry_run(settings: Settings, celery_app: Celery | None) -> int:
    return prune(settings, celery_app, dry_run=True)


def demo(settings: Settings, celery_app: Celery | None) -> int:
    from webui.demo.runner import run_demo

    return run_demo(settings)


def show_settings(settings: Settings, celery_app: Celery | None) -> int:
    from webui.celery_app import safe_broker_url

    rows = settings.display()
    width = max(len(name) for name, _, _ in rows)
    for name, value, source in rows:
        print(f"{name:<{width}}  {value}  ({source})")
    app = resolve_celery_app(settings, celery_app)
    print(f"\ncelery app {app.main or '(unnamed)'} reads events from {safe_broker_url(app)}")
    return 0


RUNNERS: dict[str, Callable[[Settings, Celery | None], int]] = {
    "serve": serve,
    "hash-password": hash_password,
    "collect": collect,
    "migrate": migrate,
    "prune": prune,
    "settings": show_settings,
    "demo": demo,
}


def resolve_celery_app(settings: Settings, celery_app: Celery | None) -> Celery:
    """The app handed in by `celery … webui` (with `--broker` applied), else one built from settings."""
    from webui.celery_app import load_celery_app, override_broker

    if celery_app is None:
        return load_celery_app(settings)
    if settings.broker:
        override_broker(celery_app, settings.broker)
    return celery_app


def _migrate(settings: Settings) -> list[str] | None:
    """Apply migrations; None (after printing why) when the database can't be reached."""
    from peewee import PeeweeException

    from webui.serve import migrate_database
    from webui.store.database import DatabaseURLError

    try:
        return migrate_database(settings)
    except DatabaseURLError as exc:
        raise SettingsError(f"database: {exc}") from exc
    except (PeeweeException, OSError) as exc:
        _database_failure(settings, exc)
        return None


def _database_failure(settings: Settings, exc: Exception) -> None:
    print(f"webui: error: database {mask_url_password(settings.database)}: {exc}", file=sys.stderr)
