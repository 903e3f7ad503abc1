"""The read lane (webui.request_lane): reads take turns; sockets, writes, static files and network waits don't."""
from __future__ import annotations

import threading
import time

import pytest
from flask import Flask, Response, request, stream_with_context

from webui import request_lane
from webui.request_lane import outside_lane


class Reads:
    """Views that note how many of them run at once, and can be held until the test lets them go."""

    def __init__(self) -> None:
        self.running = self.most = 0
        self.lock = threading.Lock()
        self.release = threading.Event()
        self.entered = threading.Event()

    def run(self, hold: float = 0.05) -> str:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        self.entered.set()
        try:
            time.sleep(hold)
            return "ok"
        finally:
            with self.lock:
                self.running -= 1

    def held(self) -> str:
        self.entered.set()
        assert self.release.wait(10)
        return "released"


def make_app(width: int, reads: Reads) -> Flask:
    app = Flask(__name__)
    request_lane.init_app(app, width)

    @app.get("/read")
    def read() -> str:
        return reads.run()

    @app.get("/held")
    def held() -> str:
        return reads.held()

    @app.get("/broken")
    def broken() -> str:
        raise RuntimeError("a bug")

    @app.get("/network")
    @outside_lane
    def network() -> str:
        return "answered"

    @app.post("/write")
    def write() -> str:
        return "written"

    @app.get("/export")
    def export() -> Response:
        def rows():
            yield "first\n"
            assert reads.release.wait(10)  # another read must get its turn while this body streams
            yield "last\n"
        return Response(stream_with_context(rows()))

    return app


def get_all(app: Flask, paths: list[str], method: str = "get") -> list[tuple[str, float]]:
    """Request every path at once, each from a thread of its own: [(body, seconds)] in order."""
    results: list[tuple[str, float]] = [("", 0.0)] * len(paths)

    def one(i: int, path: str) -> None:
        started = time.monotonic()
        response = getattr(app.test_client(), method)(path)
        results[i] = (response.get_data(as_text=True), time.monotonic() - started)

    threads = [threading.Thread(target=one, args=(i, path)) for i, path in enumerate(paths)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    return results


def test_reads_take_turns():
    reads = Reads()
    get_all(make_app(1, reads), ["/read"] * 6)
    assert reads.most == 1


def test_without_a_lane_reads_run_at_once():
    reads = Reads()
    get_all(make_app(0, reads), ["/read"] * 6)
    assert reads.most > 1


def test_a_wider_lane_lets_that_many_run_at_once():
    reads = Reads()
    get_all(make_app(2, reads), ["/read"] * 8)
    assert reads.most == 2


@pytest.mark.parametrize(("path", "method", "body"), [
    ("/network", "get", "answered"),  # waits on the network: outside the lane
    ("/write", "post", "written"),  # not a read
])
def test_what_is_not_a_read_never_waits_for_a_turn(path, method, body):
    reads = Reads()
    app = make_app(1, reads)
    holder = threading.Thread(target=lambda: app.test_client().get("/held"))
    holder.start()
    try:
        assert reads.entered.wait(5)  # the turn is taken and held
        started = time.monotonic()
        response = getattr(app.test_client(), method)(path)
        assert response.get_data(as_text=True) == body
        assert time.monotonic() - started < 1.0
    finally:
        reads.release.set()
        holder.join(10)


def test_a_read_waits_for_its_turn_at_most_the_lane_wait(monkeypatch):
    monkeypatch.setattr(request_lane, "LANE_WAIT", 0.3)
    reads = Reads()
    app = make_app(1, reads)
    holder = threading.Thread(target=lambda: app.test_client().get("/held"))
    holder.start()
    try:
        assert reads.entered.wait(5)
        started = time.monotonic()
        assert app.test_client().get("/read").get_data(as_text=True) == "ok"
        assert 0.3 <= time.monotonic() - started < 2.0  # waited, then ran beside the stuck one
    finally:
        reads.release.set()
        holder.join(10)


def test_a_failing_read_gives_its_turn_back():
    reads = Reads()
    app = make_app(1, reads)
    assert app.test_client().get("/broken").status_code == 500
    started = time.monotonic()
    assert app.test_client().get("/read").status_code == 200
    assert time.monotonic() - started < 1.0  # not the 2 s wait of a turn never given back


def test_a_streamed_body_is_sent_after_its_turn():
    reads = Reads()
    app = make_app(1, reads)
    streamed: list[str] = []

    def export() -> None:
        response = app.test_client().get("/export", buffered=False)
        streamed.extend(response.response)  # blocks in the body until another read has run
        response.close()

    exporter = threading.Thread(target=export)
    exporter.start()
    time.sleep(0.1)
    started = time.monotonic()
    assert app.test_client().get("/read").status_code == 200
    assert time.monotonic() - started < 1.0  # the export's body did not hold the turn
    reads.release.set()
    exporter.join(10)
    assert b"".join(part if isinstance(part, bytes) else part.encode() for part in streamed) == b"first\nlast\n"


def test_a_read_takes_its_turn_after_the_hooks_before_it():
    """What runs before the lane's hook (the login gate's password check) never holds the turn."""
    reads = Reads()
    app = Flask(__name__)
    checking = threading.Event()

    @app.before_request
    def slow_gate() -> None:
        if request.path == "/held-at-the-gate":
            checking.set()
            assert reads.release.wait(10)

    request_lane.init_app(app, 1)
    app.add_url_rule("/held-at-the-gate", "gated", lambda: "in")
    app.add_url_rule("/read", "read", reads.run)
    holder = threading.Thread(target=lambda: app.test_client().get("/held-at-the-gate"))
    holder.start()
    try:
        assert checking.wait(5)
        started = time.monotonic()
        assert app.test_client().get("/read").get_data(as_text=True) == "ok"
        assert time.monotonic() - started < 1.0
    finally:
        reads.release.set()
        holder.join(10)


def test_in_the_app_the_turn_comes_after_the_login_gate(tmp_path):
    from webui.app import create_app
    from webui.settings import default_settings

    app = create_app(default_settings(database=f"sqlite:///{tmp_path / 'lane.sqlite3'}", insecure_no_auth=True),
                     start_collector=False)
    try:
        hooks = [hook.__name__ for hook in app.before_request_funcs[None]]
        assert hooks.index("gate") < hooks.index("take_turn")
    finally:
        app.config["WEBUI_DATABASE"].close_all()


def test_the_apps_network_reads_are_outside_the_lane(tmp_path):
    from webui.app import create_app
    from webui.settings import default_settings

    app = create_app(default_settings(database=f"sqlite:///{tmp_path / 'lane.sqlite3'}", insecure_no_auth=True),
                     start_collector=False)
    try:
        marked = {name for name, view in app.view_functions.items() if getattr(view, "outside_lane", False)}
        assert {"broker.index", "api_v1.broker", "flower_tasks.result"} <= marked
        assert "tasks.index" not in marked and "tasks.new_tasks" not in marked
    finally:
        app.config["WEBUI_DATABASE"].close_all()


@pytest.mark.parametrize(("url", "width"), [("sqlite:////tmp/x.sqlite3", 1),
                                             ("postgresql://postgres@127.0.0.1:5432/test", 0)])
def test_the_default_width_depends_on_the_database(url, width):
    from webui.store.database import open_database

    assert request_lane.default_width(open_database(url)) == width  # unconnected: nothing is opened
