"""`stream demo` runs the whole product by itself (its own broker and worker)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
from pathlib import Path

from tests.integration.harness import STREAM


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def test_demo_runs_end_to_end_and_cleans_up(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAM_")}
    done = subprocess.run(
        [STREAM, "demo", "--accounts", "6", "--days", "4", "--rate", "3000", "--exit-when-done"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        timeout=240,
        check=False,
    )
    out = done.stdout.decode()
    assert done.returncode == 0, out + done.stderr.decode()
    broker_port = int(re.search(r"embedded broker on kafka://127\.0\.0\.1:(\d+)", out).group(1))
    web_port = int(re.search(r"worker ready: http://127\.0\.0\.1:(\d+)", out).group(1))
    match = re.search(r"done: (\d+) events published, (\d+) change records, (\d+)/(\d+) accounts", out)
    assert match, out
    published, changes, _activated, accounts = map(int, match.groups())
    assert published > 100 and changes > 10 and accounts == 6
    assert (tmp_path / ".demo" / "worker.log").exists()
    assert not listening(broker_port) and not listening(web_port)
