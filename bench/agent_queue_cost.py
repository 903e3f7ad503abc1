"""What the companion's RabbitMQ queue (webui.agent with an amqp:// URL) costs the broker while no monitor reads.

    python bench/agent_queue_cost.py --amqp amqp://guest:guest@127.0.0.1:5672// --tasks 20000

Publishes the records of `--tasks` tasks that succeed at once (task-received, task-started, task-succeeded, as
the companion builds them, short arguments) through the companion's publisher into a queue of its own, bounded
at exactly that many records, then asks RabbitMQ (`rabbitmqctl list_queues`) for the queue's message count, its
memory and the bytes of its message bodies, and deletes the queue (after `--hold` seconds: time to measure the
broker's disk, e.g. `du -s` of its data directory, by hand). Prints the publisher's send rate too (its
background thread, batches of 500) and the CPU time a record took. Figures: docs/companion.md.
"""
from __future__ import annotations

import argparse
import subprocess
import time
import uuid

from kombu import Connection

from webui.agent.publisher import Publisher


def task_records(n: int) -> list[dict[str, object]]:
    task_id, now = str(uuid.uuid4()), time.time()
    common = {"uuid": task_id, "hostname": "celery@worker-1", "utcoffset": 0, "pid": 4242, "source": "agent",
              "retries": 0}
    return [
        {**common, "type": "task-received", "timestamp": now, "name": "proj.tasks.add", "args": f"({n}, 2)",
         "kwargs": "{}", "root_id": task_id, "parent_id": None, "eta": None, "expires": None},
        {**common, "type": "task-started", "timestamp": now + 0.001},
        {**common, "type": "task-succeeded", "timestamp": now + 0.002, "result": str(n + 2), "runtime": 0.0012},
    ]


def queue_figures(name: str) -> dict[str, int]:
    out = subprocess.run(["rabbitmqctl", "-q", "list_queues", "name", "messages", "memory", "message_bytes"],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    for line in out.splitlines():
        fields = line.split("\t")
        if fields[0] == name:
            return {"messages": int(fields[1]), "memory": int(fields[2]), "message_bytes": int(fields[3])}
    raise SystemExit(f"queue {name} not listed by rabbitmqctl")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--amqp", default="amqp://guest:guest@127.0.0.1:5672//")
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--hold", type=float, default=0.0, help="seconds to keep the full queue (to look at disk)")
    args = parser.parse_args()
    name = f"webui-bench-agent-{uuid.uuid4().hex[:8]}"
    total = 3 * args.tasks
    publisher = Publisher(args.amqp, name, total, total)
    try:
        began, cpu = time.monotonic(), time.process_time()
        for n in range(args.tasks):
            for record in task_records(n):
                publisher.put(record)
        while publisher.sent + publisher.dropped < total and time.monotonic() - began < 600:
            time.sleep(0.05)
        elapsed, cpu = time.monotonic() - began, time.process_time() - cpu
        time.sleep(2)  # let the broker settle its memory figure
        figures = queue_figures(name)
        print(f"records {total}: sent {publisher.sent}, dropped {publisher.dropped}, {total / elapsed:,.0f}/s, "
              f"{cpu / total * 1e6:.0f} µs of this process's CPU a record (building and putting it included)")
        print(f"queue: {figures['messages']} messages, memory {figures['memory'] / 1e6:.2f} MB, bodies "
              f"{figures['message_bytes'] / 1e6:.2f} MB ({figures['message_bytes'] / max(1, figures['messages']):.0f}"
              " bytes a record)", flush=True)
        time.sleep(args.hold)
    finally:
        with Connection(args.amqp) as conn:
            channel = conn.channel()
            channel.queue_delete(name)
            channel.close()


if __name__ == "__main__":
    main()
