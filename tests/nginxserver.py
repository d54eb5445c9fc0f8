"""A real nginx on a loopback port with a temporary config, for the fleet recipes' tests and
benchmarks/fleet. The server blocks are docs/fleet.md's recipes, with paths filled in."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
SKIP_REASON = "nginx is not installed (.ci/run installs it with apt-get where it can)"

# Recipe 1: a static server in front of a `sdm mirror build` tree.
SERVE_TREE = """
    server {{
        listen 127.0.0.1:{port};
        root {tree};
        location /sha256/ {{
            default_type application/octet-stream;
            add_header Cache-Control "public, max-age=31536000, immutable";
        }}
    }}
"""

# Recipe 2: a caching proxy for a rack, in front of a mirror (or of the bucket behind it).
# slice: the cache keeps 8 MiB pieces, so sdm's ranged reads are served from it too;
# proxy_cache_lock: concurrent misses of one piece go upstream once.
CACHING_PROXY = """
    proxy_cache_path {cache} levels=1:2 keys_zone=sdm_mirror:10m max_size=50g inactive=90d
                     use_temp_path=off;
    server {{
        listen 127.0.0.1:{port};
        location /sha256/ {{
            slice 8m;
            proxy_cache sdm_mirror;
            proxy_cache_key $uri$slice_range;
            proxy_set_header Range $slice_range;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_cache_valid 200 206 90d;
            proxy_cache_lock on;
            proxy_cache_lock_age 10m;
            proxy_cache_lock_timeout 10m;
            proxy_pass {upstream};
        }}
    }}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Nginx:
    def __init__(self, prefix: Path, servers: str, workers: int = 1) -> None:
        assert NGINX is not None, SKIP_REASON
        self.prefix = prefix
        prefix.mkdir(parents=True, exist_ok=True)
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (prefix / "tmp" / sub).mkdir(parents=True, exist_ok=True)
        temp = " ".join(
            f"{name}_temp_path {prefix}/tmp/{sub};"
            for name, sub in (("client_body", "body"), ("proxy", "proxy"), ("fastcgi", "fastcgi"))
        )
        temp += f" uwsgi_temp_path {prefix}/tmp/uwsgi; scgi_temp_path {prefix}/tmp/scgi;"
        # As root, workers would run as nobody and not read a private temp folder.
        user = "user root root;" if os.geteuid() == 0 else ""
        conf = f"""
{user}
worker_processes {workers};
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log {prefix}/access.log;
    sendfile on;
    {temp}
{servers}
}}
"""
        (prefix / "nginx.conf").write_text(conf)
        check = subprocess.run(
            [NGINX, "-t", "-p", str(prefix), "-c", str(prefix / "nginx.conf")], capture_output=True
        )
        assert check.returncode == 0, check.stderr.decode()
        self.proc = subprocess.Popen(
            [NGINX, "-p", str(prefix), "-c", str(prefix / "nginx.conf")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self._wait_listening(servers)

    def _wait_listening(self, servers: str) -> None:
        port = int(servers.split("listen 127.0.0.1:", 1)[1].split(";", 1)[0])
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return
            except OSError:
                assert self.proc.poll() is None, (self.prefix / "error.log").read_text()
                time.sleep(0.05)
        raise AssertionError("nginx did not start listening")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
