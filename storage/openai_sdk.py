"""The openai SDK, imported without the API types it re-exports but this project never uses.

``import openai`` runs ``openai/types/__init__.py``, which imports the request and response
types of every API the SDK covers (Responses, Realtime, Evals, vector stores, ...) only to
re-export them: about 0.17 s and 9 MB of every process that talks to OpenAI, which here means
chat completions and embeddings. Those type packages only re-export, so storage.lazyimport
defers them: a type is imported on first use, and the SDK's own modules import the ones they
need from their submodules as usual. Import the SDK as ``from storage.openai_sdk import
openai``; tests/test_lazy_imports.py holds the proof.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from storage.lazyimport import defer_reexports


def type_packages() -> list[str]:
    """The SDK's ``openai.types`` packages, found on disk without importing the SDK."""
    spec = importlib.util.find_spec("openai")
    if spec is None or not spec.submodule_search_locations:
        return []
    root = Path(next(iter(spec.submodule_search_locations)))
    return sorted(
        ".".join(("openai", *init.parent.relative_to(root).parts))
        for init in (root / "types").rglob("__init__.py")
    )


defer_reexports(type_packages())

import openai  # noqa: E402  (after the deferral above)

__all__ = ["openai"]
