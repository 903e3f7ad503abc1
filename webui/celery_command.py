"""`celery -A proj webui …`: the `webui` command as a celery sub-command, like `celery -A proj flower`.

Registered under the `celery.commands` entry-point group. Everything after `webui` goes to our own
parser untouched, so `celery -A proj webui --help` lists every webui setting.
"""

from __future__ import annotations

import click
from celery.bin.base import CeleryCommand
from click.core import ParameterSource


@click.command(
    cls=CeleryCommand,
    context_settings={"ignore_unknown_options": True},
    add_help_option=False,  # `--help` goes to webui's parser, which knows every option
)
@click.argument("webui_argv", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def webui(ctx: click.Context, webui_argv: tuple[str, ...]) -> None:
    """Celery WebUI: a durable monitor and control panel for Celery clusters."""
    from webui.cli import main

    root = ctx.find_root()
    argv = list(webui_argv)
    celery_app = None
    if root.params.get("app") is not None:
        if _gives_app(argv):
            ctx.fail("give the app to celery only: celery -A proj webui …")
        celery_app = ctx.obj.app
        if _from_command_line(root, "app") and isinstance(root.params["app"], str):
            argv = ["--app", root.params["app"], *argv]  # so `webui settings` shows it, as a flag
    # `celery -b URL` counts as our --broker flag (ours, given after `webui`, comes later and wins).
    if root.params.get("broker") and _from_command_line(root, "broker"):
        argv = ["--broker", root.params["broker"], *argv]
    ctx.exit(main(argv, celery_app=celery_app, prog=f"{root.info_name or 'celery'} webui"))


def _from_command_line(ctx: click.Context, name: str) -> bool:
    return ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE


def _gives_app(argv: list[str]) -> bool:
    return any(arg == "--app" or arg.startswith(("--app=", "-A")) for arg in argv)
