"""`python -m webui …` runs the `webui` command."""

from __future__ import annotations

from webui.cli import run

if __name__ == "__main__":
    run()
