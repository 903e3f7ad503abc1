"""`/broker`: the broker URL (password masked), its transport, and what the server says about itself."""
from __future__ import annotations

from flask import Blueprint, current_app, render_template

from webui.broker_info import describe_broker
from webui.request_lane import outside_lane

bp = Blueprint("broker", __name__)


@bp.get("/broker")
@outside_lane
def index() -> str:
    info = describe_broker(current_app.extensions["webui_celery_app"])
    return render_template("broker.html", info=info, page_title="Broker")
