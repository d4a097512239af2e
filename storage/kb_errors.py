"""The knowledge base's error type, in a module of its own so that code which only handles it
(the agent's tools) need not import the knowledge base (numpy, pyarrow, lancedb)."""

from __future__ import annotations


class KnowledgeError(Exception):
    """The knowledge base cannot do what was asked; ``str(exc)`` is one line for an operator."""
