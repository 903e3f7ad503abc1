"""Beat with the companion (webui.agent.beat): a real `celery beat` (tests.beatapp) stamps each fire with its
entry and the time it was due; the watcher matches fires by that stamp, so the same task sent by hand with the
same arguments is no fire; stop beat and the entry is missed. Helpers are test_beat_monitoring's."""
from __future__ import annotations

import time
import uuid

import pytest
from celery import Celery

from tests.integration.test_beat_monitoring import entries, start_beat
from tests.support.services import PrivateRedis
from tests.support.store import StoreReader
from tests.support.waiting import wait_for

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def test_fires_are_stamped_with_their_due_time_and_matched_by_the_stamp(
        worker, database_url, run_webui, tmp_path, private_redis: PrivateRedis, store: StoreReader) -> None:
    token = f"token-{uuid.uuid4().hex[:8]}"
    env = {"WEBUI_TEST_BROKER": worker.broker_url, "WEBUI_TEST_BEAT_TOKEN": token,
           "WEBUI_AGENT_URL": private_redis.url(0)}  # the companion in beat, and the monitor reading its stream
    server = run_webui("serve", "-A", "tests.beatapp", "--broker", worker.broker_url, "--database", database_url,
                       "--batch-interval", "0.1", "--no-enable-events", "--beat-interval", "1",
                       "--beat-schedule-file", str(tmp_path / "celerybeat-schedule"), env=env)
    server.wait_http("/healthcheck", 200, timeout=30)
    beat = start_beat(worker.broker_url, env, tmp_path, 1)
    try:
        short = wait_for(lambda: (e := entries(server).get("echo-every-2s")) and len(e["fires"]) >= 4 and e,
                         timeout=40, interval=0.5, message="beat's fires seen")
        stamps = []
        for fire in short["fires"]:
            task = store.task(fire["task_uuid"]) or {}
            stamps.append(((task.get("detail") or {}).get("beat"), task.get("sent_at")))
        assert all(stamp and stamp["entry"] == "echo-every-2s" for stamp, _ in stamps), stamps
        # An interval entry is due its period after its previous run (Celery's schedule is relative to it). Beat
        # marks the run just before it publishes, so the previous task-sent lags it a little (more on a busy
        # machine), never the other way round.
        fired = sorted((stamp["due"], sent_at) for stamp, sent_at in stamps)
        after_previous = [due - previous_sent for (due, _), (_, previous_sent) in zip(fired[1:], fired, strict=False)]
        assert after_previous and all(1.7 <= gap <= 2.05 for gap in after_previous), fired
        assert all(0 <= sent_at - due < 1.5 for due, sent_at in fired), fired  # sent when due, by beat's loop

        # The same task with the same arguments, sent by hand: by name and arguments a fire, by stamp none.
        by_hand = Celery("by-hand", broker=worker.broker_url, set_as_current=False)
        impostor = str(by_hand.send_task("tests.celeryapp.echo", ("every-2s", token)).id)
        wait_for(lambda: store.state(impostor) == "SUCCESS", timeout=20, message="the hand-sent task never ran")
        time.sleep(2.5)  # two watcher passes
        assert impostor not in {f["task_uuid"] for f in entries(server)["echo-every-2s"]["fires"]}

        beat.stop()
        last_due = max((store.task(f["task_uuid"]) or {}).get("detail", {}).get("beat", {}).get("due") or 0
                       for f in entries(server)["echo-every-2s"]["fires"])
        missed = wait_for(lambda: (e := entries(server)["echo-every-2s"])["state"] == "missed" and e,
                          timeout=30, interval=0.25, message="the 2 s entry missed")
        seen_missed_at = time.time()
        # Late at the next slot + grace, missed once the slot after it has passed too (its grace included).
        earliest = missed["next_due_at"] + 2.0 + missed["grace"]
        print(f"missed seen {seen_missed_at - earliest:+.2f} s after next due + period + grace; last stamped due "
              f"{last_due:.3f}, next due {missed['next_due_at']:.3f} from {missed['last_fired_from']}, "
              f"grace {missed['grace']}")
        assert earliest - 0.5 <= seen_missed_at <= earliest + 4.0  # passes, polls and a busy 2-core machine
    finally:
        beat.stop()
        print(beat.log_tail())
