"""Deferred re-exports: a package whose ``__init__`` only re-exports names from its submodules
imports each submodule on first use of one of its names instead of all of them up front.

Why: lancedb imports ``lance_namespace``, which imports ``lance_namespace_urllib3_client``, the
generated client for LanceDB's REST namespace server. Its ``__init__`` imports every API module
(each method wrapped in pydantic's ``validate_call``) and every model just to re-export them:
about 0.4 s of ``supportbot ask`` and 14 MB of every process, for a server we never talk to
(a local folder or object store needs none of it). The models lancedb does use still import as
usual, from their own modules.

Only a package whose ``__init__`` holds nothing but a docstring, ``from x import y`` statements
and literal assignments (``__version__ = "1.0"``) is deferred; that is checked with ``ast`` when
the package is imported, so a future version that adds code there is imported normally.
``pkg.Name`` and ``from pkg import Name`` keep working: the name resolves on first access
(a PEP 562 module ``__getattr__``). tests/test_lazy_imports.py holds the proof.
"""

from __future__ import annotations

import ast
import importlib
import importlib.machinery
import importlib.util
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

_lock = threading.Lock()
_finder: _ReexportFinder | None = None


def defer_reexports(packages: Sequence[str]) -> None:
    """Defer the re-exports of these packages from the next time they are imported (a package
    already imported, or one whose ``__init__`` does more than re-export, is left alone)."""
    global _finder
    with _lock:
        if _finder is None:
            _finder = _ReexportFinder()
            sys.meta_path.insert(0, _finder)
        _finder.packages.update(packages)


def reexport_table(source: str, package: str) -> tuple[dict[str, tuple[str, str]], dict[str, Any]]:
    """``{name: (module, attribute)}`` and the literal constants of a re-export-only
    ``__init__``; ValueError if it holds anything else."""
    names: dict[str, tuple[str, str]] = {}
    constants: dict[str, Any] = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.ImportFrom) and node.module:
            module = importlib.util.resolve_name("." * node.level + node.module, package)
            for alias in node.names:
                if alias.name == "*":
                    raise ValueError("star import")
                names[alias.asname or alias.name] = (module, alias.name)
        elif (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
        ):
            constants[node.targets[0].id] = ast.literal_eval(node.value)  # ValueError if not
        elif not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)):
            raise ValueError(f"line {node.lineno}: {type(node).__name__}")
    return names, constants


class _ReexportFinder:
    """First on ``sys.meta_path``; answers only for the named packages."""

    def __init__(self) -> None:
        self.packages: set[str] = set()

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname not in self.packages:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or not spec.origin or spec.submodule_search_locations is None:
            return None
        try:
            names, constants = reexport_table(Path(spec.origin).read_text("utf-8"), fullname)
        except (OSError, SyntaxError, ValueError):
            return None  # not (or no longer) a pure re-export: import it the usual way
        spec.loader = _ReexportLoader(names, constants)
        return spec


class _ReexportLoader:
    def __init__(self, names: dict[str, tuple[str, str]], constants: dict[str, Any]) -> None:
        self.names = names
        self.constants = constants

    def create_module(self, spec: Any) -> None:
        return None  # the default module object

    def exec_module(self, module: ModuleType) -> None:
        names = self.names

        def __getattr__(name: str) -> Any:
            try:
                source, attribute = names[name]
            except KeyError:
                raise AttributeError(
                    f"module {module.__name__!r} has no attribute {name!r}"
                ) from None
            value = getattr(importlib.import_module(source), attribute)
            setattr(module, name, value)  # later lookups are plain attribute reads
            return value

        def __dir__() -> list[str]:
            return sorted(set(module.__dict__) | set(names))

        module.__dict__.update(self.constants)
        module.__getattr__ = __getattr__  # type: ignore[attr-defined]
        module.__dir__ = __dir__  # type: ignore[method-assign]
        module.__dict__.setdefault(
            "__all__", [n for n in (*names, *self.constants) if not n.startswith("_")]
        )
