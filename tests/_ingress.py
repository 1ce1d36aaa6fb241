"""A real reverse proxy in front of the admin app, doing what the SPCS ingress does.

The SPCS ingress authenticates the visitor and adds ``Sf-Context-Current-User`` to every request it
forwards — the page's GET and the ``/_stcore/stream`` WebSocket upgrade alike (the app reads the
user from the WebSocket request). A browser cannot be trusted to add a header to a WebSocket
upgrade (Playwright's ``extra_http_headers`` does not), so the browser tests talk only to this proxy:
Debian's nginx, one listening port per identity, each setting the header on everything it forwards
(a header the client sent under that name is replaced, as the ingress does).

``.ci/run`` installs nginx; without it the browser tests fail with the command that installs it.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests._net import free_port

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
USER_HEADER = "Sf-Context-Current-User"

SERVER_BLOCK = """
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://127.0.0.1:{upstream};
            proxy_http_version 1.1;
            proxy_set_header Host $host;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
{identity}
            proxy_buffering off;
            proxy_read_timeout 3600s;
            proxy_send_timeout 3600s;
        }}
    }}
"""

CONFIG = """
daemon off;
master_process off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 512; }}
http {{
    access_log {dir}/access.log;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    map $http_upgrade $connection_upgrade {{
        default upgrade;
        ''      close;
    }}
{servers}
}}
"""


@dataclass(frozen=True)
class Ingress:
    """The proxy's address for each identity: ``urls["alice"]`` forwards as user alice."""

    urls: Mapping[str, str]
    folder: Path

    def access_log(self) -> str:
        path = self.folder / "access.log"
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""


def nginx_config(folder: Path, upstream: int, identities: Mapping[str, tuple[int, Sequence[str]]]) -> str:
    """nginx.conf: per identity a port whose requests carry these header values (two values: sent twice)."""
    blocks = []
    for port, values in identities.values():
        identity = "\n".join(f'            proxy_set_header {USER_HEADER} "{v}";' for v in values)
        blocks.append(SERVER_BLOCK.format(port=port, upstream=upstream, identity=identity))
    return CONFIG.format(dir=folder, servers="".join(blocks))


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


@contextmanager
def ingress(folder: Path, upstream: int, identities: Mapping[str, Sequence[str]]) -> Iterator[Ingress]:
    """Run nginx in front of ``127.0.0.1:upstream``; ``identities`` maps a name to the header values it sends."""
    if not Path(NGINX).exists():
        raise AssertionError("nginx is needed for the browser tests: apt-get update && apt-get install -y nginx")
    folder.mkdir(parents=True, exist_ok=True)
    ports = {name: (free_port(), tuple(values)) for name, values in identities.items()}
    conf = folder / "nginx.conf"
    conf.write_text(nginx_config(folder, upstream, ports), encoding="utf-8")
    check = subprocess.run([NGINX, "-t", "-q", "-p", str(folder), "-c", str(conf)], capture_output=True, text=True)
    assert check.returncode == 0, f"nginx rejected its config:\n{check.stderr}\n{conf.read_text()}"
    log = open(folder / "nginx.out", "wb")  # noqa: SIM115 - closed in finally, after nginx stopped
    proc = subprocess.Popen([NGINX, "-p", str(folder), "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while not all(_listening(port) for port, _ in ports.values()):
            assert proc.poll() is None, f"nginx exited: {(folder / 'nginx.out').read_text()}{(folder / 'error.log').read_text()}"
            assert time.monotonic() < deadline, "nginx did not listen within 20 s"
            time.sleep(0.05)
        yield Ingress({name: f"http://127.0.0.1:{port}" for name, (port, _) in ports.items()}, folder)
    finally:
        proc.send_signal(signal.SIGQUIT)  # graceful: finish open requests, then exit
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
