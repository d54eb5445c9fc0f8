"""sdm pull against curl and aria2c, on a local nginx serving a 1 GiB file.

Two cases, each tool's runs interleaved (the machine is noisy) and every output
checked by sha256:
  throttled:   nginx limit_rate 20m per connection (sendfile_max_chunk 64k, or
               nginx lets the first 2 MiB of each request through unthrottled)
  unthrottled: plain loopback

Needs nginx, curl and aria2c on PATH (Debian: apt-get install nginx curl aria2)
and sdm installed. Prints a Markdown table; see benchmarks/README.md.

    python benchmarks/pull_bench.py --size-mib 1024 --rounds 3
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NGINX_CONF = """
daemon off;
worker_processes 2;
pid {work}/nginx.pid;
error_log {work}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    sendfile_max_chunk 64k;
    tcp_nopush on;
    keepalive_requests 100000;
    client_body_temp_path {work}/tmp;
    proxy_temp_path {work}/tmp;
    fastcgi_temp_path {work}/tmp;
    uwsgi_temp_path {work}/tmp;
    scgi_temp_path {work}/tmp;
    types {{ application/octet-stream safetensors; }}
    server {{
        listen 127.0.0.1:{fast};
        root {work}/www;
    }}
    server {{
        listen 127.0.0.1:{slow};
        root {work}/www;
        limit_rate 20m;
    }}
}}
"""


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_file(path: Path, size_mib: int) -> str:
    """A valid safetensors file of exactly size_mib MiB: one U8 tensor of random bytes."""
    import json
    import struct

    total = size_mib * 1024 * 1024
    for guess in range(64, 256):
        numel = total - 8 - guess
        header = json.dumps({"noise": {"dtype": "U8", "shape": [numel], "data_offsets": [0, numel]}}).encode()
        if len(header) <= guess:
            header = header.ljust(guess, b" ")
            break
    digest = hashlib.sha256()
    with open(path, "wb") as fh:
        prefix = struct.pack("<Q", len(header)) + header
        digest.update(prefix)
        fh.write(prefix)
        left = numel
        while left:
            chunk = os.urandom(min(left, 1024 * 1024))
            digest.update(chunk)
            fh.write(chunk)
            left -= len(chunk)
    return digest.hexdigest()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(8 * 1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB, via GNU time) of one command."""
    full = ["/usr/bin/time", "-f", "MAXRSS=%M", *cmd]
    start = time.perf_counter()
    result = subprocess.run(full, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed:\n{result.stdout}\n{result.stderr}")
    rss = int(re.findall(r"MAXRSS=(\d+)", result.stderr)[-1])
    return elapsed, rss


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--sdm", default=shutil.which("sdm") or "sdm")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="sdm-bench-"))
    work.chmod(0o755)  # nginx's workers run as another user
    (work / "www").mkdir()
    (work / "tmp").mkdir()
    name = "model.safetensors"
    expected = make_file(work / "www" / name, args.size_mib)
    (work / "www").chmod(0o755)
    (work / "www" / name).chmod(0o644)
    size = args.size_mib * 1024 * 1024
    fast, slow = free_port(), free_port()
    (work / "nginx.conf").write_text(NGINX_CONF.format(work=work, fast=fast, slow=slow))
    nginx = subprocess.Popen(["nginx", "-c", str(work / "nginx.conf"), "-p", str(work)])
    time.sleep(1.0)
    out = work / "out"
    env = dict(
        os.environ,
        SDM_HOME=str(work / "store"),
        SDM_CONFIG_DIR=str(work / "cfg"),
        SDM_CACHE_DIR=str(work / "cache"),
        NO_COLOR="1",
    )
    n = str(args.connections)
    try:
        results: dict[tuple[str, str], list[tuple[float, int]]] = {}
        for case, port in (("throttled", slow), ("unthrottled", fast)):
            url = f"http://127.0.0.1:{port}/{name}"
            tools = {
                "curl": (["curl", "-sS", "-o", str(out / name), url], out / name),
                f"aria2c -x{n} -s{n} -k1M": (
                    [
                        "aria2c",
                        "--console-log-level=warn",
                        "--summary-interval=0",
                        f"-x{n}",
                        f"-s{n}",
                        "-k1M",
                        "--file-allocation=none",
                        "--allow-overwrite=true",
                        "-d",
                        str(out),
                        "-o",
                        name,
                        url,
                    ],
                    out / name,
                ),
                f"sdm pull -c {n}": (
                    [args.sdm, "pull", url, "--type", "checkpoint", "-c", n, "--force", "--quiet"],
                    work / "store" / "checkpoints" / name,
                ),
            }
            if case == "throttled":
                tools.pop("curl")  # one connection at 20 MB/s: not a comparison worth the minutes
            else:
                tools["sdm pull (default -c 8)"] = (
                    [args.sdm, "pull", url, "--type", "checkpoint", "--force", "--quiet"],
                    work / "store" / "checkpoints" / name,
                )
            for _ in range(args.rounds):
                for tool, (cmd, target) in tools.items():
                    # Every tool writes a new file: none pays for deleting the last round's.
                    shutil.rmtree(out, ignore_errors=True)
                    shutil.rmtree(work / "store" / "checkpoints", ignore_errors=True)
                    out.mkdir()
                    elapsed, rss = timed(cmd, env)
                    got = sha256_of(target)
                    if got != expected:
                        raise SystemExit(f"{tool} wrote a file with sha256 {got}")
                    results.setdefault((case, tool), []).append((elapsed, rss))
        print(
            f"file: {args.size_mib} MiB, rounds: {args.rounds}, interleaved; "
            "median wall time, MB/s = 10^6 bytes/s, peak RSS\n"
        )
        print("| case | tool | median s | min-max s | MB/s | peak RSS MiB | vs aria2c |")
        print("|---|---|---|---|---|---|---|")
        for case in ("throttled", "unthrottled"):
            base = statistics.median(e for e, _ in results[(case, f"aria2c -x{n} -s{n} -k1M")])
            for (c, tool), runs in results.items():
                if c != case:
                    continue
                med = statistics.median(e for e, _ in runs)
                low, high = min(e for e, _ in runs), max(e for e, _ in runs)
                rss = max(r for _, r in runs) / 1024
                print(
                    f"| {case} | {tool} | {med:.2f} | {low:.2f}-{high:.2f} | "
                    f"{size / med / 1e6:.0f} | {rss:.0f} | {base / med:.2f}x |"
                )
        # The reading is 16 x 20 MB/s (aria2c "about 84%"); nginx's 20m is 20 MiB/s.
        for (c, tool), runs in results.items():
            if c == "throttled":
                rate = size / statistics.median(e for e, _ in runs)
                print(
                    f"\n{tool}: {100 * rate / (args.connections * 20e6):.1f}% of "
                    f"{args.connections} x 20 MB/s, {100 * rate / (args.connections * 20 * 2**20):.1f}%"
                    f" of {args.connections} x 20 MiB/s",
                    end="",
                )
        print()
    finally:
        nginx.terminate()
        nginx.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
