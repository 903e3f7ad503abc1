"""The companion runs in worker images: importing and installing it must need neither Flask, peewee nor a
database driver."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from tests.conftest import REPO_ROOT

BLOCKED = ("flask", "peewee", "psycopg", "psycopg2", "sqlite3", "playhouse", "werkzeug", "jinja2", "gunicorn")


@pytest.mark.parametrize("url", ["redis://127.0.0.1:1/0", "amqp://guest:guest@127.0.0.1:1//"])
def test_it_imports_and_installs_with_the_web_and_database_modules_blocked(url: str) -> None:
    script = textwrap.dedent(f"""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {BLOCKED!r}:
                    raise ImportError("blocked: " + name)
        sys.meta_path.insert(0, Block())
        from celery import Celery
        import webui.agent
        publisher = webui.agent.install(Celery("x", broker={url!r}))
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in {BLOCKED!r})
        print("loaded:", loaded, publisher.stream, type(publisher.transport).__name__)
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=60)

    assert done.returncode == 0, done.stderr
    kind = "AmqpQueue" if url.startswith("amqp") else "RedisStream"
    assert done.stdout.strip() == f"loaded: [] webui:agent {kind}"


def test_the_blocker_itself_works() -> None:
    done = subprocess.run([sys.executable, "-c", "import sys\nclass B:\n def find_spec(self, n, p=None, t=None):\n"
                           "  if n == 'peewee': raise ImportError(n)\nsys.meta_path.insert(0, B())\nimport peewee"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "ImportError" in done.stderr


def test_imports_setting_installs_it_with_no_code_change() -> None:
    script = textwrap.dedent("""
        from celery import Celery
        app = Celery("x", broker="redis://127.0.0.1:1/0")
        app.conf.imports = ["webui.agent.auto"]
        app.conf.webui_agent_stream = "custom:stream"
        app.loader.import_default_modules()  # what `celery worker` and `celery beat` do as they start
        print(app._webui_agent.stream, app._webui_agent.url)
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=60, env={"PATH": "/usr/bin:/bin"})

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "custom:stream redis://127.0.0.1:1/0"


def test_it_refuses_a_url_that_is_neither_redis_nor_rabbitmq() -> None:
    script = ("from celery import Celery\nimport webui.agent\n"
              "webui.agent.install(Celery('x', broker='sqs://key:secret@'))")
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=60, env={"PATH": "/usr/bin:/bin"})
    assert done.returncode != 0 and "needs a Redis or RabbitMQ URL" in done.stderr
