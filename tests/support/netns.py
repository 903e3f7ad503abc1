"""A machine of its own for a child process: a network namespace (`unshare --net`) with only loopback, up.

Inside it nothing answers on any port (no Redis, PostgreSQL or RabbitMQ), which is how a fresh laptop looks to
`webui demo` and to the test session. Needs root (or CAP_SYS_ADMIN); the tests that use it skip otherwise.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tests.support.services import unavailable


def own_network_prefix() -> list[str]:
    """The argv prefix that runs a command in a network namespace of its own, loopback up (skips if it can't)."""
    unshare, ip = shutil.which("unshare"), shutil.which("ip") or "/usr/sbin/ip"
    if unshare is None or not Path(ip).exists():
        unavailable("unshare and ip (util-linux, iproute2) are needed for a network namespace of its own")
    if os.geteuid() != 0:
        unavailable("a network namespace of its own (unshare --net, nsenter) needs root")
    prefix = [unshare, "--net", "/bin/sh", "-c", f'{ip} link set lo up && exec "$0" "$@"']
    probe = subprocess.run([*prefix, "/bin/true"], capture_output=True, text=True, timeout=10)
    if probe.returncode != 0:
        unavailable(f"cannot make a network namespace here: {probe.stderr.strip()}")
    return prefix
