"""sdm convert against torch.load + safetensors.torch.save_file, on a 2 GB checkpoint.

Needs torch in the running Python (the venv that has sdm and numpy):
    pip install torch==2.13.0 && python benchmarks/convert_bench.py --gib 2 --rounds 3

Both paths run in their own process, interleaved round by round, timed and with
peak RSS from GNU time. The outputs are checked tensor for tensor, once.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TORCH_PATH = """
import sys, torch
from safetensors.torch import save_file
sd = torch.load(sys.argv[1], map_location="cpu", weights_only=True)["state_dict"]
if sys.argv[3] == "fp16":
    sd = {k: v.half() if v.is_floating_point() else v for k, v in sd.items()}
save_file({k: v.contiguous() for k, v in sd.items()}, sys.argv[2])
"""


def make_checkpoint(path: Path, gib: float) -> int:
    import torch

    tensor_mib = 32
    count = int(gib * 1024 / tensor_mib)
    numel = tensor_mib * 1024 * 1024 // 4
    state = {
        f"model.diffusion_model.block.{i}.weight": torch.randn(numel // 1024, 1024) for i in range(count)
    }
    state["cond_stage_model.position_ids"] = torch.arange(77).reshape(1, 77)
    torch.save({"state_dict": state, "global_step": 1}, path)
    return count + 1


def timed(cmd: list[str]) -> tuple[float, float]:
    start = time.perf_counter()
    result = subprocess.run(["/usr/bin/time", "-f", "MAXRSS=%M", *cmd], capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{result.stdout}\n{result.stderr}")
    return elapsed, int(re.findall(r"MAXRSS=(\d+)", result.stderr)[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gib", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sdm", default=shutil.which("sdm") or "sdm")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sdm-convert-"))
    try:
        src = work / "model.ckpt"
        tensors = make_checkpoint(src, args.gib)
        size = src.stat().st_size
        runs: dict[str, list[tuple[float, float]]] = {}
        for mode in ("fp32", "fp16"):
            flags = ["--fp16"] if mode == "fp16" else []
            tools = {
                f"sdm convert {' '.join(flags)}".strip(): [
                    args.sdm,
                    "convert",
                    str(src),
                    "-o",
                    str(work / "sdm.safetensors"),
                    "--force",
                    *flags,
                ],
                f"torch.load + save_file ({mode})": [
                    sys.executable,
                    "-c",
                    TORCH_PATH,
                    str(src),
                    str(work / "torch.safetensors"),
                    mode,
                ],
            }
            for _ in range(args.rounds):
                for name, cmd in tools.items():
                    runs.setdefault(name, []).append(timed(cmd))
            check(work / "sdm.safetensors", work / "torch.safetensors")
        print(
            f"checkpoint: {size / 1e9:.2f} GB, {tensors} tensors (largest 32 MiB), "
            f"{args.rounds} interleaved rounds, medians\n"
        )
        print("| tool | median s | peak RSS MiB |")
        print("|---|---|---|")
        for name, values in runs.items():
            print(
                f"| {name} | {statistics.median(v[0] for v in values):.2f} | "
                f"{max(v[1] for v in values):.0f} |"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


def check(ours: Path, theirs: Path) -> None:
    import torch
    from safetensors import safe_open

    with safe_open(str(ours), framework="pt") as a, safe_open(str(theirs), framework="pt") as b:
        assert set(a.keys()) == set(b.keys())
        for key in a.keys():  # noqa: SIM118
            assert torch.equal(a.get_tensor(key), b.get_tensor(key)), key


if __name__ == "__main__":
    main()
