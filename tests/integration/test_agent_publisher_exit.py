"""The companion's last records reach Redis when its process exits: beat stopped by SIGTERM leaves by
`SystemExit` moments after it sent a fire, and the publisher's daemon thread would die with the record still in
its buffer (a `FLUSH_INTERVAL` of them). A real Python process, a real Redis."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from tests.support.services import PrivateRedis

STREAM = "webui:agent"

EXITING = textwrap.dedent("""
    import sys, time
    from webui.agent import publisher
    publisher.FLUSH_INTERVAL = 30.0  # the thread would not drain on its own before the exit
    p = publisher.Publisher(sys.argv[1], sys.argv[2], 1000, 100)
    for n in range(3):
        p.put({"type": "task-sent", "uuid": f"last-{n}", "timestamp": time.time()})
    raise SystemExit(0)  # what beat's SIGTERM handler does
""")


def test_records_still_buffered_at_exit_are_sent(private_redis: PrivateRedis) -> None:
    done = subprocess.run([sys.executable, "-c", EXITING, private_redis.url(0), STREAM],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    client = private_redis.client()
    try:
        entries = client.xrange(STREAM)
    finally:
        client.close()
    assert [json.loads(fields[b"r"])["uuid"] for _, fields in entries] == ["last-0", "last-1", "last-2"]
