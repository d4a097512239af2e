"""The project's exception types. Each carries a message fit to show an operator in one line."""

from __future__ import annotations


class SupportbotError(Exception):
    """Base class: ``str(exc)`` is a one-line, human explanation."""


class ConfigError(SupportbotError):
    """A missing or invalid setting; names the environment variable."""


class PlatformUnreachableError(SupportbotError):
    """A chat platform's API could not be reached at start; names its base URL (never a token)."""


class DatabaseError(SupportbotError):
    """The database cannot be reached, or its schema does not match the code."""


class KnowledgeBaseError(SupportbotError):
    """The knowledge base is missing, unreadable, or was built with a different embedder."""


class IngestError(SupportbotError):
    """An ingest run could not proceed (missing path, nothing to read, ...)."""


class ModelError(SupportbotError):
    """The language model failed after retries (timeout, rate limit, server error)."""
