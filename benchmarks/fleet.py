"""benchmarks/fleet: 8 machines install the same 10-file manifest (docs/fleet.md).

Cases, side by side in one run, round by round:
  direct  - 8 machines (separate SDM_HOMEs, at once) pull from the upstream mirror directly
  proxy   - the same through one nginx caching proxy (slice + proxy_cache_lock), cold cache
  shared  - 8 processes (SDM_HOST_ID m0..m7) pulling into ONE store folder, upstream directly
The upstream is a fake content mirror whose sending is throttled as one shared link
(--upstream-mbps), standing in for the WAN. Reported: bytes the upstream sent as a multiple of
the set (goal 1.0x), and wall time from the first start to the last exit.

    python benchmarks/fleet.py --rounds 3
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from fakemirror import ContentMirror  # noqa: E402
from nginxserver import CACHING_PROXY, NGINX, Nginx, free_port  # noqa: E402


def model_file(seed: int, mib: float) -> bytes:
    from safetensors.numpy import save

    rng = np.random.default_rng(seed)
    data = rng.integers(0, 2**16, int(mib * 1024 * 1024) // 2, dtype=np.uint16).view(np.float16)
    return save({"model.diffusion_model.out.2.weight": data})


def setup(work: Path, files: int, mib: float) -> tuple[list[bytes], Path, Path]:
    blobs = [model_file(i, mib) for i in range(files)]
    models, manifest = [], []
    for i, data in enumerate(blobs):
        sha = hashlib.sha256(data).hexdigest()
        name = f"m{i}.safetensors"
        source = {"hf": {"repo": f"bench/m{i}", "path": name}}
        variant = {"name": "v1", "source": source, "filename": name, "format": "safetensors", "sha256": sha}
        models.append(
            {"id": f"m{i}", "name": f"m{i}", "type": "checkpoint", "base": "sd15", "variants": [variant]}
        )
        manifest.append(
            {"spec": f"m{i}", "variant": "v1", "type": "checkpoint", "sha256": sha, "filename": name}
        )
    catalog, spec = work / "catalog.yaml", work / "models.yaml"
    catalog.write_text(yaml.safe_dump({"models": models}))
    spec.write_text(yaml.safe_dump({"models": manifest}))
    return blobs, catalog, spec


def run_machines(
    sdm: list[str], spec: Path, env: dict[str, str], homes: list[Path], hosts: list[str]
) -> float:
    started = time.monotonic()
    procs = [
        subprocess.Popen(
            [*sdm, "pull", "-f", str(spec), "--frozen", "--quiet"],
            env={**env, "SDM_HOME": str(home), "SDM_HOST_ID": host},
            stderr=subprocess.PIPE,
            text=True,
        )
        for home, host in zip(homes, hosts, strict=True)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        if proc.returncode != 0:
            raise SystemExit(f"a machine failed: {err}")
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--machines", type=int, default=8)
    parser.add_argument("--files", type=int, default=10)
    parser.add_argument("--size-mib", type=float, default=4.0)
    parser.add_argument(
        "--upstream-mbps", type=float, default=100.0, help="upstream link, MB/s (0: unthrottled)"
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sdm", default=None, help="the sdm executable (default: this Python's -m sdm)")
    args = parser.parse_args()
    if NGINX is None:
        raise SystemExit("nginx is needed: apt-get install nginx")
    sdm = [args.sdm] if args.sdm else [sys.executable, "-m", "sdm"]
    results: dict[str, list[tuple[float, float]]] = {"direct": [], "proxy": [], "shared": []}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        blobs, catalog, spec = setup(work, args.files, args.size_mib)
        total = sum(len(b) for b in blobs)
        base_env = {
            **os.environ,
            "SDM_CATALOG": str(catalog),
            "SDM_CONFIG_DIR": str(work / "config"),
            "SDM_CACHE_DIR": str(work / "cache"),
            "HF_ENDPOINT": "http://127.0.0.1:9",  # no hub: every byte must come through the mirror
        }
        for rnd in range(args.rounds):
            for case in ("direct", "proxy", "shared"):
                upstream = ContentMirror(rate=args.upstream_mbps * 1e6 or None)
                for data in blobs:
                    upstream.add(data)
                mirror, server = upstream.url, None
                if case == "proxy":
                    port = free_port()
                    prefix = work / f"nginx-{rnd}"
                    block = CACHING_PROXY.format(port=port, cache=prefix / "cache", upstream=upstream.url)
                    server = Nginx(prefix, block, workers=2)
                    mirror = f"http://127.0.0.1:{port}"
                n = args.machines
                shared = work / f"shared-{rnd}"
                homes = [shared] * n if case == "shared" else [work / f"{case}-{rnd}-{i}" for i in range(n)]
                try:
                    wall = run_machines(
                        sdm, spec, {**base_env, "SDM_MIRRORS": mirror}, homes, [f"m{i}" for i in range(n)]
                    )
                finally:
                    if server is not None:
                        server.stop()
                    upstream.close()
                results[case].append((wall, upstream.bytes_served() / total))
                ratio = upstream.bytes_served() / total
                print(f"round {rnd + 1} {case:7s} wall {wall:6.2f} s  upstream {ratio:4.2f}x the set")
    direct = statistics.median(w for w, _ in results["direct"])
    print(
        f"\n{args.machines} machines, {args.files} files x {args.size_mib} MiB ({total / 1e6:.0f} MB), "
        f"upstream link {args.upstream_mbps} MB/s, {args.rounds} rounds (median):"
    )
    print("| case | wall s (median) | min-max s | upstream bytes / set | wall vs direct |")
    print("|---|---|---|---|---|")
    for case, rows in results.items():
        walls = [w for w, _ in rows]
        ratio = statistics.median(r for _, r in rows)
        med = statistics.median(walls)
        spread = f"{min(walls):.2f}-{max(walls):.2f}"
        print(f"| {case} | {med:.2f} | {spread} | {ratio:.2f}x | {direct / med:.2f}x faster |")


if __name__ == "__main__":
    main()
