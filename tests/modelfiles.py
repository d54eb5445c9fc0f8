"""Small model files made by the tests: safetensors with numpy, torch-style zip checkpoints.

The checkpoint writer emits the pickle opcodes that torch.save writes
(OrderedDict of _rebuild_tensor_v2 calls with persistent storage ids), without
torch and without pickling any object of ours.
"""

from __future__ import annotations

import io
import struct
import zipfile

import numpy as np

DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64}


def safetensors_bytes(tensors: dict[str, np.ndarray], metadata: dict[str, str] | None = None) -> bytes:
    from safetensors.numpy import save

    return save({k: np.ascontiguousarray(v) for k, v in tensors.items()}, metadata=metadata)


def sd15_like(seed: int = 0, n: int = 4, width: int = 64) -> bytes:
    """A small safetensors file with SD 1.5-style key names."""
    rng = np.random.default_rng(seed)
    tensors = {
        f"model.diffusion_model.input_blocks.{i}.0.weight": rng.standard_normal((width, width)).astype(
            np.float16
        )
        for i in range(n)
    }
    tensors["cond_stage_model.transformer.text_model.embeddings.position_ids"] = np.arange(
        77, dtype=np.int64
    ).reshape(1, 77)
    return safetensors_bytes(tensors, {"format": "pt"})


def big_safetensors(size_mib: int, seed: int = 1) -> bytes:
    """About size_mib MiB of one F16 tensor: for segmented-download tests."""
    rng = np.random.default_rng(seed)
    numel = size_mib * 1024 * 1024 // 2
    data = rng.integers(0, 2**16, numel, dtype=np.uint16).view(np.float16)
    return safetensors_bytes({"model.diffusion_model.out.2.weight": data})


# --- torch zip checkpoints, written opcode by opcode ---------------------------------


def _unicode(s: str) -> bytes:
    raw = s.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def _int(n: int) -> bytes:
    return b"J" + struct.pack("<i", n)


def _tuple(items: list[bytes]) -> bytes:
    return b"(" + b"".join(items) + b"t"


def _global(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def checkpoint_bytes(
    tensors: dict[str, np.ndarray],
    archive: str = "archive",
    wrap_state_dict: bool = True,
    extra: bytes = b"",
    wrap_key: str = "state_dict",
) -> bytes:
    """A zip checkpoint in torch.save's layout: data.pkl, data/N, version, byteorder."""
    # uint16 arrays stand for bfloat16 bits (numpy has no bfloat16 of its own)
    storage_type = {
        np.dtype(np.float32): "FloatStorage",
        np.dtype(np.float16): "HalfStorage",
        np.dtype(np.int64): "LongStorage",
        np.dtype(np.uint16): "BFloat16Storage",
    }
    body = b""
    for index, (name, array) in enumerate(tensors.items()):
        array = np.ascontiguousarray(array)
        pid = (
            _tuple(
                [
                    _unicode("storage"),
                    _global("torch", storage_type[array.dtype]),
                    _unicode(str(index)),
                    _unicode("cpu"),
                    _int(array.size),
                ]
            )
            + b"Q"
        )
        strides = [s // array.itemsize for s in array.strides]
        args = _tuple(
            [
                pid,
                _int(0),
                _tuple([_int(d) for d in array.shape]),
                _tuple([_int(s) for s in strides]),
                b"\x89",
                _global("collections", "OrderedDict") + b")R",
            ]
        )
        body += _unicode(name) + _global("torch._utils", "_rebuild_tensor_v2") + args + b"R"
    state = _global("collections", "OrderedDict") + b")R(" + body + b"u"
    if wrap_state_dict:
        pickle_bytes = b"\x80\x02}(" + _unicode(wrap_key) + state + extra + b"u."
    else:
        pickle_bytes = b"\x80\x02" + state + b"."
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr(f"{archive}/data.pkl", pickle_bytes)
        zf.writestr(f"{archive}/byteorder", "little")
        for index, array in enumerate(tensors.values()):
            zf.writestr(f"{archive}/data/{index}", np.ascontiguousarray(array).tobytes())
        zf.writestr(f"{archive}/version", "3\n")
    return buffer.getvalue()


def small_checkpoint(seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    return checkpoint_bytes(
        {
            "model.diffusion_model.input_blocks.0.0.weight": rng.standard_normal((8, 4)).astype(np.float16),
            "model.diffusion_model.out.2.bias": rng.standard_normal(4).astype(np.float16),
        }
    )


def _tensor_reduce(index: int, array: np.ndarray, legacy: bool = False) -> bytes:
    storage_type = {
        np.dtype(np.float32): "FloatStorage",
        np.dtype(np.float16): "HalfStorage",
        np.dtype(np.int64): "LongStorage",
    }[array.dtype]
    fields = [
        _unicode("storage"),
        _global("torch", storage_type),
        _unicode(str(index)),
        _unicode("cpu"),
        _int(array.size),
    ]
    if legacy:
        fields.append(b"N")  # view metadata
    pid = _tuple(fields) + b"Q"
    strides = [s // array.itemsize for s in array.strides]
    args = _tuple(
        [
            pid,
            _int(0),
            _tuple([_int(d) for d in array.shape]),
            _tuple([_int(s) for s in strides]),
            b"\x89",
            _global("collections", "OrderedDict") + b")R",
        ]
    )
    return _global("torch._utils", "_rebuild_tensor_v2") + args + b"R"


def embedding_bytes(vector: np.ndarray, token: str = "myembedding") -> bytes:
    """An A1111 textual-inversion .pt: a plain dict with string_to_param, in torch's zip."""
    body = (
        _unicode("string_to_token")
        + b"}"
        + _unicode("*")
        + _int(265)
        + b"s"
        + _unicode("string_to_param")
        + b"}"
        + _unicode("*")
        + _tensor_reduce(0, vector)
        + b"s"
        + _unicode("name")
        + _unicode(token)
        + _unicode("step")
        + _int(3000)
        + _unicode("sd_checkpoint")
        + _unicode("6ce0161689")
        + _unicode("sd_checkpoint_name")
        + _unicode("v1-5-pruned-emaonly")
    )
    pickle_bytes = b"\x80\x02}(" + body + b"u."
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr(f"{token}/data.pkl", pickle_bytes)
        zf.writestr(f"{token}/data/0", np.ascontiguousarray(vector).tobytes())
        zf.writestr(f"{token}/version", "3\n")
    return buffer.getvalue()


def legacy_checkpoint_bytes(tensors: dict[str, np.ndarray]) -> bytes:
    """torch's pre-1.6 format: five pickles, then each storage as count + bytes."""
    import pickle

    magic = pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2)
    version = pickle.dumps(1001, protocol=2)
    sys_info = pickle.dumps(
        {"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}},
        protocol=2,
    )
    body = b"".join(
        _unicode(name) + _tensor_reduce(i, a, legacy=True) for i, (name, a) in enumerate(tensors.items())
    )
    obj = b"\x80\x02" + _global("collections", "OrderedDict") + b")R(" + body + b"u."
    keys = pickle.dumps([str(i) for i in range(len(tensors))], protocol=2)
    storages = b"".join(
        struct.pack("<q", a.size) + np.ascontiguousarray(a).tobytes() for a in tensors.values()
    )
    return magic + version + sys_info + obj + keys + storages


def zip_with(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def lora_like(seed: int = 0, context: int = 768, rank: int = 4) -> bytes:
    """A kohya-style LoRA: lora_down/lora_up/alpha per module (SD 1.5 when context is 768)."""
    rng = np.random.default_rng(seed)
    base = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k"
    tensors = {
        f"{base}.lora_down.weight": rng.standard_normal((rank, context)).astype(np.float16),
        f"{base}.lora_up.weight": rng.standard_normal((320, rank)).astype(np.float16),
        f"{base}.alpha": np.array(rank, dtype=np.float16),
    }
    return safetensors_bytes(tensors)


def vae_like(seed: int = 0, latent: int = 4) -> bytes:
    rng = np.random.default_rng(seed)
    return safetensors_bytes(
        {
            "encoder.conv_in.weight": rng.standard_normal((32, 3, 3, 3)).astype(np.float32),
            "decoder.conv_in.weight": rng.standard_normal((64, latent, 3, 3)).astype(np.float32),
            "quant_conv.weight": rng.standard_normal((8, 8, 1, 1)).astype(np.float32),
        }
    )


def hypernetwork_bytes(seed: int = 0, sizes: tuple[int, ...] = (320, 640, 768, 1280)) -> bytes:
    """An A1111 hypernetwork .pt: integer keys, each a pair of small layer state dicts."""
    rng = np.random.default_rng(seed)
    arrays: list[np.ndarray] = []
    body = b""
    for size in sizes:
        pair = b""
        for _ in range(2):
            layers = b""
            for name, shape in (("linear.0.weight", (size * 2, size)), ("linear.0.bias", (size * 2,))):
                arrays.append(rng.standard_normal(shape).astype(np.float32))
                layers += _unicode(name) + _tensor_reduce(len(arrays) - 1, arrays[-1])
            pair += _global("collections", "OrderedDict") + b")R(" + layers + b"u"
        body += _int(size) + b"(" + pair + b"t"
    body += (
        _unicode("layer_structure")
        + b"]("
        + _int(1)
        + _int(2)
        + _int(1)
        + b"e"
        + _unicode("activation_func")
        + _unicode("linear")
        + _unicode("is_layer_norm")
        + b"\x89"
        + _unicode("name")
        + _unicode("cyber")
        + _unicode("step")
        + _int(35)
    )
    pickle_bytes = b"\x80\x02}(" + body + b"u."
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("cyber/data.pkl", pickle_bytes)
        for index, array in enumerate(arrays):
            zf.writestr(f"cyber/data/{index}", array.tobytes())
        zf.writestr("cyber/version", "3\n")
    return buffer.getvalue()
