"""The resolver's choices as a matrix: requests against candidate sets, no network, no CLI."""

from __future__ import annotations

import pytest

from sdm.errors import BadInput
from sdm.resolve import Candidate, Request, choose, vocab_from_filename

FULL = Candidate("full", "ckpt", "fp32", "full")
PRUNED_CKPT = Candidate("pruned-ckpt", "ckpt", "fp32", "pruned")
PRUNED_ST = Candidate("pruned", "safetensors", "fp32", "pruned")
EMA_FP16 = Candidate("emaonly-fp16", "safetensors", "fp16", "ema-only", default=True)
BF16 = Candidate("bf16", "safetensors", "bf16", None)
FP8 = Candidate("fp8", "safetensors", "fp8", None)
ALL = [FULL, PRUNED_CKPT, PRUNED_ST, EMA_FP16, BF16, FP8]


@pytest.mark.parametrize(
    "request_, expected",
    [
        (Request(), "emaonly-fp16"),  # the default, safetensors
        (Request(precision="fp32"), "pruned"),  # safetensors over pickle, pruned over full
        (Request(precision="fp32", format="ckpt"), "pruned-ckpt"),  # pickle only when asked
        (Request(weights="full"), "full"),
        (Request(weights="pruned", precision="fp16"), "emaonly-fp16"),  # ema-only counts as pruned
        (Request(precision="bf16"), "bf16"),
        (Request(precision="fp8"), "fp8"),
        (Request(variant="full"), "full"),  # an exact name wins over everything
    ],
)
def test_choice_matrix(request_, expected):
    assert choose(ALL, request_, "m").candidate.name == expected


@pytest.mark.parametrize(
    "request_",
    [
        Request(precision="fp16", weights="full"),
        Request(variant="nope"),
        Request(format="ckpt", precision="fp8"),
    ],
)
def test_no_match_names_what_exists(request_):
    with pytest.raises(BadInput) as caught:
        choose(ALL, request_, "m")
    assert caught.value.hint and "emaonly-fp16" in caught.value.hint


def test_reasons_say_why():
    reasons = choose([FULL, PRUNED_ST], Request(precision="fp32"), "m").reasons
    assert any("safetensors preferred" in r for r in reasons)
    assert any("pruned preferred over full" in r for r in reasons)
    assert "the only file" in choose([FULL], Request(), "m").reasons


@pytest.mark.parametrize(
    "name, expected",
    [
        ("v1-5-pruned-emaonly.safetensors", ("safetensors", None, "ema-only")),
        ("flux1-dev-fp8.safetensors", ("safetensors", "fp8", None)),
        ("t5xxl_fp8_e4m3fn.safetensors", ("safetensors", "fp8", None)),
        ("model.fp16.sft", ("safetensors", "fp16", None)),
        ("RealESRGAN_x4plus.pth", ("pth", None, None)),
        ("sd-v1-4-full-ema.ckpt", ("ckpt", None, "full")),
        ("x-bf16-pruned.bin", ("bin", "bf16", "pruned")),
        ("q8_0.gguf", ("gguf", None, None)),
    ],
)
def test_vocabulary_from_file_names(name, expected):
    assert vocab_from_filename(name) == expected
