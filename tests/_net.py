"""A real ``streamlit run streamlit_app.py`` server for tests, and the small HTTP helpers around it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, headers: Mapping[str, str] | None = None) -> tuple[int | None, Any]:
    """(status, parsed JSON body or text); status None while nothing listens."""
    req = urllib.request.Request(url, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            body = resp.read().decode()
            status = resp.status
    except urllib.error.HTTPError as exc:
        body, status = exc.read().decode(), exc.code
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None, None
    try:
        return status, json.loads(body)
    except ValueError:
        return status, body


@dataclass
class AppServer:
    url: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path
    #: (``/ready`` status, its body, ``/`` status) for every poll before ``/ready`` said 200
    seen_before_ready: list[tuple[int | None, Any, int | None]]

    def ready(self) -> dict[str, Any]:
        status, body = get(f"{self.url}/ready")
        assert status == 200, body
        return body


@contextmanager
def app_server(
    folder: Path,
    config: Path,
    *,
    prefix: Sequence[str] = (),
    python: str = sys.executable,
    app: Path = ROOT / "streamlit_app.py",
    env: Mapping[str, str] | None = None,
    ready_within: float = 90,
) -> Iterator[AppServer]:
    """Start the admin app the way ``make run`` does and wait until ``/ready`` answers 200.

    ``prefix`` runs it through another command (``setpriv`` to switch users); ``python`` and ``env``
    choose the interpreter and extra environment. Stopped with SIGTERM, which must end it in 20 s.
    """
    port = free_port()
    log = folder / "server.log"
    full_env = {
        **os.environ,
        "SYNCER_CONFIG": str(config),
        "SYNCER_LOG_FORMAT": "text",
        "SYNCER_USER": "",
        "ARROW_DEFAULT_MEMORY_POOL": "system",
        **(env or {}),
    }
    argv = [*prefix, python, "-m", "streamlit", "run", str(app), "--server.port", str(port), "--server.headless", "true"]
    with open(log, "wb") as out:
        # cwd is not the repo: the app must find its config through $SYNCER_CONFIG
        proc = subprocess.Popen(argv, cwd=folder, env=full_env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    seen: list[tuple[int | None, Any, int | None]] = []
    try:
        deadline = time.monotonic() + ready_within
        while time.monotonic() < deadline:
            status, body = get(f"{url}/ready")
            if status == 200:
                break
            page_status = get(f"{url}/")[0] if status is not None else None
            seen.append((status, body, page_status))
            assert proc.poll() is None, f"server exited early:\n{log.read_text()}"
            time.sleep(0.05)
        else:
            raise AssertionError(f"/ready never answered 200; last answers {seen[-3:]}\n{log.read_text()}")
        yield AppServer(url, port, proc, log, seen)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise AssertionError(f"the server did not stop on SIGTERM within 20 s\n{log.read_text()}") from None
