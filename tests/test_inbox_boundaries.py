"""The inbox is the only door to the ledger (issue 11, item 9): no adapter module imports
``storage.events``; exactly-once lives in the core once, not in each platform's code."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_no_adapter_imports_the_ledger() -> None:
    modules = sorted((ROOT / "adapters").rglob("*.py"))
    assert len(modules) > 10  # the scan really looks at the adapters
    offenders = [
        str(path.relative_to(ROOT))
        for path in modules
        if any(
            name == "storage.events" or name.startswith("storage.events.")
            for name in _imports(path)
        )
    ]
    assert offenders == []


def test_the_scan_would_catch_an_offender(tmp_path: Path) -> None:
    for source in (
        "from storage import events\n",
        "import storage.events\n",
        "from storage.events import claim_event\n",
    ):
        module = tmp_path / "m.py"
        module.write_text(source, encoding="utf-8")
        assert {"storage.events", "storage.events.claim_event"} & _imports(module)
