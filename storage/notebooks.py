"""Jupyter notebooks (``.ipynb``) as the Markdown the chunker reads.

Tutorials and how-tos are often published as notebooks. Their Markdown cells are the prose and
their code cells the examples, so a notebook becomes its Markdown cells with each code cell as a
fenced block in the notebook's language. Outputs are left out: they are results of one run
(tables, tracebacks, base64 images), not documentation a reader asks about.
"""

from __future__ import annotations

import json
from typing import Any


class NotANotebook(ValueError):
    """The file is not a notebook we can read; ``str(exc)`` says why."""


def to_markdown(text: str) -> str:
    try:
        notebook = json.loads(text)
    except json.JSONDecodeError as exc:
        raise NotANotebook(f"not valid notebook JSON (line {exc.lineno})") from None
    cells = notebook.get("cells") if isinstance(notebook, dict) else None
    if not isinstance(cells, list):
        raise NotANotebook("no cells: not a Jupyter notebook (nbformat 4)")
    language = _language(notebook.get("metadata"))
    parts: list[str] = []
    for cell in cells:
        if not isinstance(cell, dict):
            continue
        source = _source(cell.get("source"))
        if not source.strip():
            continue
        if cell.get("cell_type") == "markdown":
            parts.append(source)
        elif cell.get("cell_type") == "code":
            parts.append(f"```{language}\n{source.rstrip()}\n```")
    return "\n\n".join(parts) + "\n"


def _source(source: Any) -> str:
    """A cell's source is a string or a list of lines (nbformat allows both)."""
    if isinstance(source, list):
        return "".join(str(line) for line in source)
    return source if isinstance(source, str) else ""


def _language(metadata: Any) -> str:
    if not isinstance(metadata, dict):
        return ""
    for key, field in (("language_info", "name"), ("kernelspec", "language")):
        section = metadata.get(key)
        if isinstance(section, dict) and isinstance(section.get(field), str):
            return section[field]
    return ""
